//! The RFC 4514 form of a DN, printable ASCII only, as nginx prints
//! `$ssl_client_s_dn`.

use std::fmt;

use super::{Ava, AvaValue, Dn, ATTRIBUTE_NAMES};
use crate::hex;

impl Dn {
    /// The RFC 4514 form, printable ASCII only, as OpenSSL prints it with
    /// `XN_FLAG_RFC2253`: RDNs and the AVAs inside them in reverse DER order,
    /// short names for known types, `#` and DER hex for values that are not
    /// text and for every value of a dotted type (text as UTF8String).
    pub fn to_rfc4514(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.0.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, ava) in rdn.0.iter().rev().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                ava.write_rfc4514(&mut out);
            }
        }
        out
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc4514())
    }
}

impl Ava {
    fn write_rfc4514(&self, out: &mut String) {
        let name = ATTRIBUTE_NAMES.iter().find(|(_, oid)| *oid == self.oid);
        match (name, &self.value) {
            (Some((name, _)), AvaValue::Text(text)) => {
                out.push_str(name);
                out.push('=');
                escape_into(out, text);
            }
            (Some((name, _)), value) => {
                out.push_str(name);
                out.push_str("=#");
                out.push_str(&hex::upper_hex(&value.to_der()));
            }
            // RFC 4514 2.4: a dotted type takes the BER value in hex.
            (None, value) => {
                escape_into(out, &self.oid);
                out.push_str("=#");
                out.push_str(&hex::upper_hex(&value.to_der()));
            }
        }
    }
}

/// One attribute value escaped as in [`Dn::to_rfc4514`], for `$mtls_cn`.
pub fn escape_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Escapes like OpenSSL's `ASN1_STRFLGS_RFC2253`: a backslash before RFC 4514's
/// specials, `\XX` for every byte outside printable ASCII.
pub(super) fn escape_into(out: &mut String, text: &str) {
    let last = text.len().wrapping_sub(1);
    for (i, byte) in text.bytes().enumerate() {
        match byte {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            // OpenSSL leaves a one-character "#" unescaped; RFC 4514 does not.
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                out.push('\\');
                out.push_str(&hex::upper_hex(&[byte]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use openssl::asn1::Asn1Object;

    #[test]
    fn print_escapes() {
        let cases = [
            ("alice", "alice"),
            ("a,b+c\"d\\e<f>g;h", r#"a\,b\+c\"d\\e\<f\>g\;h"#),
            ("a=b#c", "a=b#c"),
            ("#a", r"\#a"),
            ("#", r"\#"),
            (" a ", r"\ a\ "),
            (" ", r"\ "),
            ("a  b", "a  b"),
            ("é", r"\C3\A9"),
            ("\0\r\n\t\x7f", r"\00\0D\0A\09\7F"),
            ("", ""),
        ];
        for (value, printed) in cases {
            assert_eq!(cn(text(value)).to_rfc4514(), format!("CN={printed}"));
        }
    }

    #[test]
    fn lone_hash_is_escaped_unlike_openssl() {
        let (parsed, openssl) = subject(&openssl_name(&[("CN", "#", true)]));
        assert_eq!(openssl, "CN=#");
        assert_eq!(parsed.to_rfc4514(), r"CN=\#");
        assert_eq!(dn(&openssl), parsed);
    }

    #[test]
    fn print_der_values_and_unknown_types() {
        assert_eq!(cn(AvaValue::Der(vec![2, 1, 5])).to_rfc4514(), "CN=#020105");
        let unknown = Dn(vec![Rdn(vec![ava("1.2.3.4", text("abc"))])]);
        assert_eq!(unknown.to_rfc4514(), "1.2.3.4=#0C03616263");
        let unknown = Dn(vec![Rdn(vec![ava("1.2.3.4", AvaValue::Der(vec![4, 0]))])]);
        assert_eq!(unknown.to_rfc4514(), "1.2.3.4=#0400");
        let long = cn(text(&"x".repeat(200)));
        assert_eq!(Dn::parse(&long.to_rfc4514()), Ok(long.clone()));
        let multi = dn("CN=alice+UID=42,O=Example,C=US");
        assert_eq!(multi.to_rfc4514(), "UID=42+CN=alice,O=Example,C=US");
    }

    #[test]
    fn round_trip_handpicked() {
        for value in TRICKY {
            assert_round_trip(&cn(text(value)));
            assert_round_trip(&Dn(vec![Rdn::new(vec![
                ava(OID_CN, text(value)),
                ava("1.2.3.4", text(value)),
            ])]));
        }
        for der in [
            &[2u8, 1, 5][..],
            &[0x0c, 1, 0xff],
            &[0x1e, 1, 0],
            &[0xa0, 0],
            &[0x1f, 0x81, 0, 0],
        ] {
            assert_round_trip(&cn(AvaValue::Der(der.to_vec())));
        }
    }

    #[test]
    fn round_trip_generated() {
        let oids: Vec<&str> = ATTRIBUTE_NAMES
            .iter()
            .map(|(_, oid)| *oid)
            .chain([
                "1.2.3.4",
                "2.999.1",
                "2.25.329800735698586629295641978511506172918",
            ])
            .collect();
        let chars = [
            'a', 'Z', '0', ' ', '#', ',', '+', '"', '\\', '<', '>', ';', '=', '\0', '\n', '\x7f',
            'é', '€', '😀', '\u{80}', '\u{fffd}',
        ];
        let ders: [&[u8]; 6] = [
            &[2, 1, 5],
            &[4, 0],
            &[0x30, 3, 2, 1, 1],
            &[0xa0, 1, 0],
            &[0x0c, 2, 0xc3, 0x28],
            &[0x1f, 0x81, 0, 0],
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let rdns = (0..1 + rng.below(4)).map(|_| {
                let avas = (0..1 + rng.below(3)).map(|_| {
                    let value = if rng.below(5) == 0 {
                        AvaValue::Der(rng.pick(&ders).to_vec())
                    } else {
                        AvaValue::Text((0..rng.below(7)).map(|_| *rng.pick(&chars)).collect())
                    };
                    ava(rng.pick::<&str>(&oids), value)
                });
                Rdn::new(avas.collect())
            });
            assert_round_trip(&Dn(rdns.collect()));
        }
    }

    #[test]
    fn attribute_names_are_openssl_short_names() {
        for (i, (name, oid)) in ATTRIBUTE_NAMES.iter().enumerate() {
            let nid = Asn1Object::from_str(oid).unwrap().nid();
            assert_eq!(nid.short_name().unwrap(), *name);
            let later = &ATTRIBUTE_NAMES[i + 1..];
            assert!(!later
                .iter()
                .any(|(n, o)| n.eq_ignore_ascii_case(name) || o == oid));
        }
    }
}
