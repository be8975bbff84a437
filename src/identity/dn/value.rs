//! Attribute values and names as certificates carry them: the DER of a
//! Name decoded into a [`Dn`], each string type into text.

use x509_parser::asn1_rs::{Any, FromBer, Tag};
#[cfg(any(test, fuzzing))]
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::oid::{decode_oid, encode_tlv};
use super::{Ava, AvaValue, Dn, DnError, Rdn, OID_CN_DER};
use crate::hex;
use crate::identity::der::{self, Tlv};

impl Dn {
    /// Decodes a name as x509-parser read it; never fails. Text keeps
    /// every character, NUL included. A malformed OID becomes
    /// `invalid-oid:HEX`. The module itself reads names with
    /// [`Dn::from_der`]; this is the oracle the tests and fuzz targets
    /// (`cargo fuzz` builds with `--cfg fuzzing`) hold it to.
    #[cfg(any(test, fuzzing))]
    pub fn from_x509(name: &X509Name<'_>) -> Dn {
        let rdns = name
            .iter_rdn()
            .map(|rdn| Rdn::new(rdn.iter().map(Ava::from_x509).collect()));
        Dn(rdns.collect())
    }

    /// Decodes a name's DER, as `Dn::from_x509` decodes x509-parser's
    /// reading of it wherever OpenSSL decodes the name too (the fuzz
    /// target `name_der` checks it); `None` unless `der` is exactly one
    /// Name. Stricter than x509-parser, which ignores what follows a
    /// malformed RDN.
    pub fn from_der(der: &[u8]) -> Option<Dn> {
        let mut rdns = Vec::new();
        let mut avas = Vec::new();
        der::attributes(der, |attribute| {
            if attribute.first && !avas.is_empty() {
                rdns.push(Rdn::new(std::mem::take(&mut avas)));
            }
            avas.push(Ava::new(attribute.oid, attribute.value));
        })?;
        if !avas.is_empty() {
            rdns.push(Rdn::new(avas));
        }
        Some(Dn(rdns))
    }

    /// The text of the one CN of a name's DER, as [`Dn::from_der`] decodes
    /// it: `Some(None)` where there is no CN, more than one, or one that is
    /// not text; `None` unless `der` is exactly one Name. Nothing else of
    /// the name is decoded.
    pub fn single_cn_from_der(der: &[u8]) -> Option<Option<String>> {
        let (mut cn, mut count) = (None, 0);
        der::attributes(der, |attribute| {
            if attribute.oid == OID_CN_DER {
                cn = Some(attribute.value);
                count += 1;
            }
        })?;
        Some(match (cn, count) {
            (Some(value), 1) => match decode_value(value) {
                AvaValue::Text(text) => Some(text),
                AvaValue::Der(_) => None,
            },
            _ => None,
        })
    }
}

impl Ava {
    #[cfg(any(test, fuzzing))]
    fn from_x509(atv: &AttributeTypeAndValue<'_>) -> Ava {
        Ava::new(atv.attr_type().as_bytes(), tlv_of(atv.attr_value()))
    }

    /// The attribute of type `oid` (content octets) and `value`.
    fn new(oid: &[u8], value: Tlv<'_>) -> Ava {
        // Not a dotted OID, so it matches no rule; OpenSSL rejects such names.
        let dotted =
            decode_oid(oid).unwrap_or_else(|| format!("invalid-oid:{}", hex::upper_hex(oid)));
        Ava {
            oid: dotted,
            value: decode_value(value),
        }
    }
}

pub(super) fn decode_ber(der: &[u8]) -> Result<AvaValue, DnError> {
    match Any::from_ber(der) {
        Ok((rest, any)) if rest.is_empty() && any.header.length().is_definite() => {
            Ok(decode_value(tlv_of(&any)))
        }
        _ => Err(DnError::InvalidBer),
    }
}

/// An element x509-parser read, as the module's DER reader gives it.
fn tlv_of<'a>(any: &Any<'a>) -> Tlv<'a> {
    Tlv {
        class: any.header.class() as u8,
        constructed: any.header.is_constructed(),
        tag: any.header.tag().0,
        content: any.data,
    }
}

pub(super) fn decode_value(value: Tlv<'_>) -> AvaValue {
    if value.class == der::UNIVERSAL && !value.constructed {
        if let Some(text) = decode_string(Tag(value.tag), value.content) {
            return AvaValue::Text(text);
        }
    }
    AvaValue::Der(encode_tlv(
        value.class,
        value.constructed,
        value.tag,
        value.content,
    ))
}

fn decode_string(tag: Tag, data: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String => String::from_utf8(data.to_vec()).ok(),
        // One byte per character, read as ISO-8859-1 whatever the nominal
        // character set, as OpenSSL does.
        Tag::NumericString
        | Tag::PrintableString
        | Tag::TeletexString
        | Tag::Ia5String
        | Tag::VisibleString => Some(data.iter().copied().map(char::from).collect()),
        Tag::BmpString if data.len() % 2 == 0 => {
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units).collect::<Result<_, _>>().ok()
        }
        Tag::UniversalString if data.len() % 4 == 0 => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::oid::encode_oid;
    use super::super::testutil::*;
    use super::super::*;
    use super::*;
    use openssl::asn1::Asn1Type;
    use openssl::nid::Nid;
    use openssl::x509::X509Name as OpensslName;
    use x509_parser::prelude::FromDer;

    #[test]
    fn x509_openssl_built_names() {
        let mut builder = OpensslName::builder().unwrap();
        builder.append_entry_by_text("C", "US").unwrap();
        builder.append_entry_by_text("O", "Example").unwrap();
        builder.append_entry_by_text("OU", "ops").unwrap();
        builder
            .append_entry_by_nid_with_type(Nid::COMMONNAME, "alice", Asn1Type::PRINTABLESTRING)
            .unwrap();
        builder
            .append_entry_by_nid_with_type(Nid::COMMONNAME, "alice", Asn1Type::UTF8STRING)
            .unwrap();
        // A BMPString takes UTF-16BE bytes, here "alice".
        builder
            .append_entry_by_nid_with_type(Nid::COMMONNAME, "\0a\0l\0i\0c\0e", Asn1Type::BMPSTRING)
            .unwrap();
        builder
            .append_entry_by_text("emailAddress", "alice@example.com")
            .unwrap();
        builder.append_entry_by_text("DC", "example").unwrap();
        builder
            .append_entry_by_text("serialNumber", "1234")
            .unwrap();
        let der = builder.build().to_der().unwrap();
        let parsed = assert_like_openssl(&der);
        let expected = "serialNumber=1234,DC=example,emailAddress=alice@example.com,\
                        CN=alice,CN=alice,CN=alice,OU=ops,O=Example,C=US";
        assert_eq!(parsed, dn(expected));
        assert_eq!(parsed.to_rfc4514(), expected);
        assert_eq!(parsed.values_of(OID_CN).count(), 3);
    }

    #[test]
    fn x509_string_types() {
        let value = "caf\u{e9} + cr\u{e8}me";
        let encodings = [
            utf8(value),
            bmp(value),
            universal(value),
            latin1(0x14, value).unwrap(),
        ];
        for encoding in encodings {
            let parsed = assert_like_openssl(&name_der(&[&[atv(OID_CN, &encoding)]]));
            assert_eq!(parsed, cn(text(value)), "{encoding:02x?}");
        }
        for identifier in [0x12, 0x13, 0x16] {
            let der = name_der(&[&[atv(OID_CN, &tlv(identifier, b"12 34"))]]);
            assert_eq!(assert_like_openssl(&der), cn(text("12 34")));
        }
        // Out of charset: ISO-8859-1, as OpenSSL reads it.
        let latin = name_der(&[&[atv(OID_CN, &tlv(0x13, b"caf\xe9"))]]);
        assert_eq!(assert_like_openssl(&latin), cn(text("café")));
        // OpenSSL refuses VisibleString in names.
        let visible = name_der(&[&[atv(OID_CN, &tlv(0x1a, b"12 34"))]]);
        assert_eq!(decode(&visible), cn(text("12 34")));
        let astral = "\u{1f600}x";
        assert_eq!(
            assert_like_openssl(&name_der(&[&[atv(OID_CN, &universal(astral))]])),
            cn(text(astral))
        );
        let dn = decode(&name_der(&[&[atv(OID_CN, &bmp(astral))]]));
        assert_eq!(dn, cn(text(astral)));
    }

    /// A CN rule reads the CN alone: it is the subject's, whatever its
    /// value and wherever it is.
    #[test]
    fn x509_cn_read_alone() {
        let cn_of = |der: &[u8]| {
            let (dn, _) = subject(der);
            single_cn(&dn).map(str::to_owned)
        };
        let one = |value: &[u8]| name_der(&[&[atv(OID_CN, value)]]);
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(cn_of(&one(&tlv(0x14, b"\xe9t\xe9"))), some("été"));
        assert_eq!(cn_of(&one(&tlv(0x13, b"a*b"))), some("a*b"));
        assert_eq!(cn_of(&one(&utf8(""))), some(""));
        assert_eq!(cn_of(&one(b"\x0c\x81\x01a")), some("a"));
        // Not text: a SEQUENCE, a BIT STRING, and strings in the
        // constructed form (which OpenSSL reads as text).
        assert_eq!(cn_of(&one(&tlv(0x30, &utf8("a")))), None);
        assert_eq!(cn_of(&one(&tlv(0x03, b"\x00a"))), None);
        assert_eq!(
            cn_of(&one(&tlv(0x2c, &[utf8("al"), utf8("ice")].concat()))),
            None
        );
        let pieces = [tlv(0x13, b"al"), tlv(0x13, b"ice")].concat();
        assert_eq!(cn_of(&one(&tlv(0x33, &pieces))), None);
        // Where it sits, and how many there are.
        let o = atv("2.5.4.10", &utf8("Example"));
        let cn = |s: &str| atv(OID_CN, &utf8(s));
        assert_eq!(
            cn_of(&name_der(&[core::slice::from_ref(&o), &[cn("a")]])),
            some("a")
        );
        assert_eq!(cn_of(&name_der(&[&[o.clone(), cn("a")]])), some("a"));
        assert_eq!(cn_of(&name_der(&[&[cn("a"), cn("b")]])), None);
        assert_eq!(cn_of(&name_der(&[&[cn("a")], &[o.clone(), cn("a")]])), None);
        let not_text = atv(OID_CN, &tlv(0x30, &utf8("b")));
        assert_eq!(cn_of(&name_der(&[&[cn("a")], &[not_text]])), None);
        assert_eq!(cn_of(&name_der(&[&[o]])), None);
        assert_eq!(cn_of(&name_der(&[])), None);
        // A CN under another OID that prints the same is no CN.
        let other = atv("2.5.4.3.0", &utf8("a"));
        assert_eq!(decode(&name_der(&[&[other]])).values_of(OID_CN).count(), 0);
        // A name the module cannot read has no CN to read either.
        assert_eq!(Dn::single_cn_from_der(b"\x30\x02\x31\x00"), None);
    }

    #[test]
    fn x509_differential_sweep() {
        type Encoder = fn(&str) -> Option<Vec<u8>>;
        let types: [Encoder; 5] = [
            |s| Some(utf8(s)),
            |s| s.chars().all(|c| c <= '\u{ffff}').then(|| bmp(s)),
            |s| Some(universal(s)),
            |s| latin1(0x14, s),
            |s| s.is_ascii().then(|| tlv(0x13, s.as_bytes())),
        ];
        for value in TRICKY {
            for encode in types {
                let Some(encoding) = encode(value) else {
                    continue;
                };
                let der = name_der(&[
                    &[atv("2.5.4.6", &tlv(0x13, b"US"))],
                    &[atv(OID_CN, &encoding)],
                    &[atv("2.5.4.11", &encoding), atv(UID, &encoding)],
                ]);
                let parsed = assert_like_openssl(&der);
                let cns: Vec<_> = parsed.values_of(OID_CN).collect();
                assert_eq!(cns, [&text(value)]);
            }
        }
    }

    #[test]
    fn x509_comma_inside_cn_is_one_value() {
        let der = openssl_name(&[("CN", "alice,O=Example", true)]);
        let parsed = assert_like_openssl(&der);
        assert_eq!(parsed.to_rfc4514(), r"CN=alice\,O=Example");
        assert_ne!(parsed, dn("CN=alice,O=Example"));
        assert_ne!(parsed, dn("O=Example,CN=alice"));
        assert_eq!(parsed, cn(text("alice,O=Example")));
    }

    #[test]
    fn x509_two_cns() {
        let der = openssl_name(&[
            ("O", "Example", true),
            ("CN", "alice", true),
            ("CN", "bob", true),
        ]);
        let parsed = assert_like_openssl(&der);
        assert_eq!(parsed.to_rfc4514(), "CN=bob,CN=alice,O=Example");
        let cns: Vec<_> = parsed.values_of(OID_CN).collect();
        assert_eq!(cns, [&text("alice"), &text("bob")]);
        assert_ne!(parsed, dn("CN=alice,O=Example"));
        assert_ne!(parsed, dn("CN=alice,CN=bob,O=Example"));
    }

    #[test]
    fn x509_embedded_nul() {
        let der = openssl_name(&[("CN", "alice\0evil", true)]);
        let parsed = assert_like_openssl(&der);
        assert_eq!(parsed, cn(text("alice\0evil")));
        assert_ne!(parsed, dn("CN=alice"));
        assert_eq!(parsed.to_rfc4514(), r"CN=alice\00evil");
    }

    #[test]
    fn x509_multi_valued_rdns() {
        let der = openssl_name(&[
            ("C", "US", true),
            ("O", "Example", true),
            ("CN", "alice", true),
            ("UID", "42", false),
        ]);
        let parsed = assert_like_openssl(&der);
        assert_eq!(parsed, dn("CN=alice+UID=42,O=Example,C=US"));
        assert_eq!(parsed, dn("UID=42+CN=alice,O=Example,C=US"));
        assert_ne!(parsed, dn("CN=alice,UID=42,O=Example,C=US"));
        // Orders where DER's SET OF order (by encoding length first) differs
        // from the OID order, the same OID twice, and three values.
        let sets: [&[(&str, &str)]; 5] = [
            &[("CN", "a much longer common name"), ("C", "US")],
            &[("C", "US"), ("CN", "a much longer common name")],
            &[("OU", "b"), ("OU", "a"), ("OU", "ab")],
            &[("serialNumber", "1"), ("CN", "x y"), ("O", "zz")],
            &[("1.2.3.4", "x"), ("CN", "x"), ("emailAddress", "a@b")],
        ];
        for set in sets {
            let entries: Vec<_> = set
                .iter()
                .enumerate()
                .map(|(i, &(f, v))| (f, v, i == 0))
                .collect();
            let parsed = assert_like_openssl(&openssl_name(&entries));
            assert_eq!(parsed.0.len(), 1);
            let mut reversed: Vec<_> = set.iter().map(|(f, v)| format!("{f}={v}")).collect();
            reversed.reverse();
            assert_eq!(parsed, dn(&reversed.join("+")));
        }
    }

    #[test]
    fn x509_der_values() {
        let der = name_der(&[
            &[atv(OID_CN, &[3, 2, 0, 0xff])],
            &[atv("1.2.3.4", &utf8("abc"))],
            &[atv("1.2.3.5", &tlv(0x13, b"abc"))],
            &[atv("2.5.4.16", &tlv(0x30, &utf8("street")))],
        ]);
        let (parsed, openssl) = subject(&der);
        assert_eq!(
            openssl,
            "postalAddress=#30080C06737472656574,1.2.3.5=#1303616263,1.2.3.4=#0C03616263,CN=#030200FF"
        );
        // A dotted type's value prints as UTF8String whatever its string type.
        assert_eq!(
            parsed.to_rfc4514(),
            "postalAddress=#30080C06737472656574,1.2.3.5=#0C03616263,1.2.3.4=#0C03616263,CN=#030200FF"
        );
        assert_round_trip(&parsed);
        assert_eq!(parsed, dn(&openssl));
        assert_eq!(
            parsed.0[0],
            Rdn(vec![ava(OID_CN, AvaValue::Der(vec![3, 2, 0, 0xff]))])
        );
    }

    #[test]
    fn x509_undecodable_strings_are_der() {
        let values: [&[u8]; 7] = [
            &[0x0c, 2, 0xc3, 0x28],    // invalid UTF-8
            &[0x1e, 3, 0, 0x61, 0],    // odd BMPString
            &[0x1e, 2, 0xd8, 0x3d],    // lone surrogate
            &[0x1c, 2, 0, 0x61],       // short UniversalString
            &[0x1c, 4, 0, 0x11, 0, 0], // beyond U+10FFFF
            &[0x2c, 3, 0x0c, 1, 0x61], // constructed UTF8String
            &[0x8c, 1, 0x61],          // [12], not UTF8String
        ];
        for value in values {
            let parsed = decode(&name_der(&[&[atv(OID_CN, value)]]));
            assert_eq!(parsed, cn(AvaValue::Der(value.to_vec())));
            assert_round_trip(&parsed);
        }
    }

    /// Decodes whatever x509-parser accepts; checks that it prints as
    /// printable ASCII that parses back (unless an OID is malformed).
    fn check_any_name(der: &[u8]) -> bool {
        let Ok((_, name)) = X509Name::from_der(der) else {
            return false;
        };
        let parsed = Dn::from_x509(&name);
        let printed = parsed.to_rfc4514();
        assert!(printable(&printed), "{printed:?}");
        let avas = || parsed.0.iter().flat_map(|rdn| &rdn.0);
        if avas().all(|ava| encode_oid(&ava.oid).is_some()) && !parsed.0.is_empty() {
            assert_eq!(Dn::parse(&printed).as_ref(), Ok(&parsed), "{der:02x?}");
        }
        true
    }

    #[test]
    fn x509_never_panics() {
        let seed = name_der(&[
            &[atv("2.5.4.6", &tlv(0x13, b"US"))],
            &[atv(OID_CN, &bmp("é")), atv(UID, &universal("x"))],
            &[atv("1.2.3.4", &[0x1f, 0x81, 0, 0])],
        ]);
        let mut rng = Rng(42);
        let mut decoded = 0;
        for _ in 0..20_000 {
            let mut der = seed.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(der.len());
                der[at] = rng.below(256) as u8;
            }
            decoded += usize::from(check_any_name(&der));
        }
        assert!(decoded > 1000, "{decoded}");
        for _ in 0..20_000 {
            let len = rng.below(6);
            let mut value = vec![rng.below(256) as u8, len as u8];
            value.extend((0..len).map(|_| rng.below(256) as u8));
            check_any_name(&name_der(&[&[atv(OID_CN, &value)]]));
        }
    }
}
