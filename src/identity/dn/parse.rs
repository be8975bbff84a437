//! The RFC 4514 form of a DN, as `mtls_allow_dn` and `mtls_issuer` take it.
//!
//! Parsing is strict where RFC 4514 leaves room for guessing: RDNs are
//! separated by `,` only (never `;`), no space is allowed around `,`, `+` or
//! `=` nor unescaped at either end of a value, and control characters must be
//! escaped.

use super::oid::encode_oid;
use super::value::decode_ber;
use super::{Ava, AvaValue, Dn, DnError, Rdn, ATTRIBUTE_NAMES};
use crate::hex;

impl Dn {
    /// Parses the RFC 4514 form, which lists the RDNs in reverse DER order.
    /// A `#` value is the hex of a BER TLV; string types in it are decoded.
    /// The value `#` alone is the text "#", as OpenSSL prints it.
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        if s.is_empty() {
            return Err(DnError::Empty);
        }
        Parser { input: s, pos: 0 }.dn()
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn at_value_end(&self) -> bool {
        matches!(self.peek(), None | Some(b',' | b'+'))
    }

    fn dn(mut self) -> Result<Dn, DnError> {
        let mut rdns = vec![self.rdn()?];
        while self.bump() == Some(b',') {
            rdns.push(self.rdn()?);
        }
        rdns.reverse();
        Ok(Dn(rdns))
    }

    fn rdn(&mut self) -> Result<Rdn, DnError> {
        let mut avas = vec![self.ava()?];
        while self.peek() == Some(b'+') {
            self.pos += 1;
            avas.push(self.ava()?);
        }
        Ok(Rdn::new(avas))
    }

    fn ava(&mut self) -> Result<Ava, DnError> {
        let oid = self.attribute_type()?;
        let value = if self.peek() == Some(b'#') {
            self.pos += 1;
            self.hex_value()?
        } else {
            AvaValue::Text(self.string_value()?)
        };
        Ok(Ava { oid, value })
    }

    fn attribute_type(&mut self) -> Result<String, DnError> {
        let start = self.pos;
        while self.peek() != Some(b'=') {
            if self.at_value_end() {
                return match &self.input[start..self.pos] {
                    "" => Err(DnError::EmptyType),
                    token => Err(DnError::MissingEquals(token.to_owned())),
                };
            }
            self.pos += 1;
        }
        let token = &self.input[start..self.pos];
        self.pos += 1;
        resolve_type(token)
    }

    fn hex_value(&mut self) -> Result<AvaValue, DnError> {
        let start = self.pos;
        while !self.at_value_end() {
            self.pos += 1;
        }
        match &self.input[start..self.pos] {
            // OpenSSL prints the one-character value "#" unescaped.
            "" => Ok(AvaValue::Text("#".to_owned())),
            hex => decode_ber(&hex::decode(hex).ok_or(DnError::InvalidHex)?),
        }
    }

    fn string_value(&mut self) -> Result<String, DnError> {
        if self.peek() == Some(b' ') {
            return Err(DnError::UnescapedSpace);
        }
        let mut bytes = Vec::new();
        let mut trailing_space = false;
        while let Some(byte) = self.peek() {
            if matches!(byte, b',' | b'+') {
                break;
            }
            self.pos += 1;
            trailing_space = byte == b' ';
            match byte {
                b'\\' => bytes.push(self.escape()?),
                b'"' | b';' | b'<' | b'>' | 0..=0x1f | 0x7f => {
                    return Err(DnError::UnescapedChar(char::from(byte)))
                }
                _ => bytes.push(byte),
            }
        }
        if trailing_space {
            return Err(DnError::UnescapedSpace);
        }
        String::from_utf8(bytes).map_err(|_| DnError::InvalidUtf8)
    }

    /// Reads what follows a backslash.
    fn escape(&mut self) -> Result<u8, DnError> {
        let start = self.pos - 1;
        let invalid = |parser: &Self| {
            let text = &parser.input.as_bytes()[start..parser.pos];
            DnError::InvalidEscape(String::from_utf8_lossy(text).into_owned())
        };
        match self.bump() {
            None => Err(DnError::UnterminatedEscape),
            Some(c @ (b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' | b'=' | b'#' | b' ')) => {
                Ok(c)
            }
            Some(high) => {
                let Some(high) = hex::nibble(high) else {
                    return Err(invalid(self));
                };
                match self.bump().map(hex::nibble) {
                    None => Err(DnError::UnterminatedEscape),
                    Some(Some(low)) => Ok(high << 4 | low),
                    Some(None) => Err(invalid(self)),
                }
            }
        }
    }
}

/// Resolves a short name (in any case) or a dotted OID, optionally prefixed
/// with `OID.`.
fn resolve_type(token: &str) -> Result<String, DnError> {
    if token.is_empty() {
        return Err(DnError::EmptyType);
    }
    if token.starts_with(' ') || token.ends_with(' ') {
        return Err(DnError::UnescapedSpace);
    }
    let dotted = match token.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("OID.") => &token[4..],
        _ => token,
    };
    if dotted.starts_with(|c: char| c.is_ascii_digit()) || dotted.len() < token.len() {
        return match encode_oid(dotted) {
            Some(_) => Ok(dotted.to_owned()),
            None => Err(DnError::InvalidOid(token.to_owned())),
        };
    }
    ATTRIBUTE_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(token))
        .map(|(_, oid)| (*oid).to_owned())
        .ok_or_else(|| DnError::UnknownType(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

    #[test]
    fn parse_lists_rdns_in_reverse_der_order() {
        let parsed = dn("CN=alice,OU=ops,O=Example,C=US");
        let expected = Dn(vec![
            Rdn(vec![ava("2.5.4.6", text("US"))]),
            Rdn(vec![ava("2.5.4.10", text("Example"))]),
            Rdn(vec![ava("2.5.4.11", text("ops"))]),
            Rdn(vec![ava(OID_CN, text("alice"))]),
        ]);
        assert_eq!(parsed, expected);
    }

    #[test]
    fn parse_attribute_types() {
        let expected = dn("CN=alice");
        for s in [
            "cn=alice",
            "Cn=alice",
            "2.5.4.3=alice",
            "OID.2.5.4.3=alice",
            "oid.2.5.4.3=alice",
        ] {
            assert_eq!(dn(s), expected, "{s}");
        }
        for (name, oid) in ATTRIBUTE_NAMES {
            assert_eq!(dn(&format!("{name}=x")).0[0].0[0].oid, *oid);
            assert_eq!(
                dn(&format!("{}=x", name.to_uppercase())).0[0].0[0].oid,
                *oid
            );
        }
        assert_eq!(dn("1.2.3.4=x").0[0].0[0].oid, "1.2.3.4");
        assert_eq!(dn("0.39=x").0[0].0[0].oid, "0.39");
        let uuid = "2.25.329800735698586629295641978511506172918";
        assert_eq!(dn(&format!("{uuid}=x")).0[0].0[0].oid, uuid);
        assert_eq!(dn("sn=x").0[0].0[0].oid, "2.5.4.4");
        assert_eq!(dn("serialnumber=x").0[0].0[0].oid, "2.5.4.5");
    }

    #[test]
    fn parse_escapes() {
        let parsed = dn(r#"CN=a\,b\+c\"d\\e\<f\>g\;h\=i\#j\ k"#);
        assert_eq!(parsed, cn(text("a,b+c\"d\\e<f>g;h=i#j k")));
        assert_eq!(dn(r"CN=\ alice\ "), cn(text(" alice ")));
        assert_eq!(dn(r"CN=\20alice\20"), cn(text(" alice ")));
        assert_eq!(dn(r"CN=\#alice"), cn(text("#alice")));
        assert_eq!(dn("CN=a=b#c"), cn(text("a=b#c")));
        assert_eq!(dn("CN=a b"), cn(text("a b")));
    }

    #[test]
    fn parse_hex_escapes() {
        assert_eq!(dn(r"CN=caf\C3\A9"), cn(text("café")));
        assert_eq!(dn(r"CN=caf\c3\a9"), cn(text("café")));
        assert_eq!(dn("CN=café"), cn(text("café")));
        assert_eq!(dn(r"CN=\F0\9F\98\80"), cn(text("😀")));
        assert_eq!(dn(r"CN=alice\00evil"), cn(text("alice\0evil")));
        assert_eq!(dn(r"CN=\0D\0A"), cn(text("\r\n")));
    }

    #[test]
    fn parse_hex_values() {
        assert_eq!(dn("CN=#0C05616C696365"), dn("CN=alice"));
        assert_eq!(dn("CN=#0c05616c696365"), dn("CN=alice"));
        assert_eq!(dn("CN=#130161"), cn(text("a")));
        assert_eq!(dn("CN=#1E0400E90041"), cn(text("éA")));
        assert_eq!(dn("CN=#1C040001F600"), cn(text("😀")));
        assert_eq!(dn("CN=#1401E9"), cn(text("é")));
        // BER length in long form, re-encoded as DER.
        assert_eq!(dn("CN=#0C8105616C696365"), dn("CN=alice"));
        assert_eq!(dn("CN=#02810105"), cn(AvaValue::Der(vec![2, 1, 5])));
        assert_eq!(dn("CN=#020105"), cn(AvaValue::Der(vec![2, 1, 5])));
        assert_eq!(dn("CN=#0C01FF"), cn(AvaValue::Der(vec![0x0c, 1, 0xff])));
        assert_eq!(dn("CN=#2C00"), cn(AvaValue::Der(vec![0x2c, 0])));
        assert_eq!(dn("CN=#8C0161"), cn(AvaValue::Der(vec![0x8c, 1, 0x61])));
        assert_eq!(dn("CN=#,O=x").0[1], Rdn(vec![ava(OID_CN, text("#"))]));
    }

    #[test]
    fn parse_empty_value() {
        assert_eq!(dn("CN="), cn(text("")));
        assert_eq!(dn("CN=+O=x").0[0].0.len(), 2);
    }

    #[test]
    fn multi_valued_rdns_compare_as_sets() {
        let a = dn("CN=alice+UID=42,O=Example");
        assert_eq!(a, dn("UID=42+CN=alice,O=Example"));
        assert_eq!(a.0.len(), 2);
        assert_eq!(a.0[1].0.len(), 2);
        assert_ne!(a, dn("CN=alice,UID=42,O=Example"));
        assert_ne!(a, dn("CN=alice+UID=42+UID=42,O=Example"));
        let three = ["OU=a", "OU=b", "CN=c"];
        let expected = dn(&three.join("+"));
        for order in [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            let joined: Vec<_> = order.iter().map(|&i| three[i]).collect();
            assert_eq!(dn(&joined.join("+")), expected);
        }
    }

    #[test]
    fn rdn_order_matters() {
        assert_ne!(dn("CN=a,O=b"), dn("O=b,CN=a"));
        assert_ne!(dn("CN=a,O=b"), dn("CN=a+O=b"));
        assert_ne!(dn("CN=a,O=b"), dn("CN=a"));
        assert_ne!(dn("CN=alice"), dn("CN=Alice"));
        assert_ne!(dn("CN=alice"), dn(r"CN=alice\ "));
        assert_ne!(dn("CN=alice"), dn("2.5.4.4=alice"));
    }

    #[test]
    fn parse_errors() {
        use DnError::*;
        let cases: &[(&str, DnError)] = &[
            ("", Empty),
            ("=alice", EmptyType),
            ("CN=a,,O=b", EmptyType),
            ("CN=a,", EmptyType),
            (",CN=a", EmptyType),
            ("CN=a+", EmptyType),
            ("alice", MissingEquals("alice".into())),
            ("CN=a,O", MissingEquals("O".into())),
            ("CN=a+O,C=x", MissingEquals("O".into())),
            ("FOO=bar", UnknownType("FOO".into())),
            ("E=a@b", UnknownType("E".into())),
            ("givenName=x", UnknownType("givenName".into())),
            ("C N=x", UnknownType("C N".into())),
            ("1=x", InvalidOid("1".into())),
            ("1..2=x", InvalidOid("1..2".into())),
            ("1.02=x", InvalidOid("1.02".into())),
            ("1.2.=x", InvalidOid("1.2.".into())),
            ("3.1=x", InvalidOid("3.1".into())),
            ("1.40=x", InvalidOid("1.40".into())),
            ("1.2a=x", InvalidOid("1.2a".into())),
            ("OID.=x", InvalidOid("OID.".into())),
            ("OID.CN=x", InvalidOid("OID.CN".into())),
            (
                "1.2.340282366920938463463374607431768211456=x",
                InvalidOid("1.2.340282366920938463463374607431768211456".into()),
            ),
            ("CN= alice", UnescapedSpace),
            ("CN=alice ", UnescapedSpace),
            ("CN=alice ,O=x", UnescapedSpace),
            ("CN=a, O=b", UnescapedSpace),
            ("CN =a", UnescapedSpace),
            ("CN=a+ O=b", UnescapedSpace),
            ("CN=a\"b", UnescapedChar('"')),
            ("CN=a;O=b", UnescapedChar(';')),
            ("CN=<a", UnescapedChar('<')),
            ("CN=a>", UnescapedChar('>')),
            ("CN=a\nb", UnescapedChar('\n')),
            ("CN=a\0b", UnescapedChar('\0')),
            ("CN=a\x7f", UnescapedChar('\x7f')),
            ("CN=a\\", UnterminatedEscape),
            ("CN=a\\4", UnterminatedEscape),
            ("CN=a\\x", InvalidEscape("\\x".into())),
            ("CN=a\\4g", InvalidEscape("\\4g".into())),
            ("CN=a\\é", InvalidEscape("\\\u{fffd}".into())),
            ("CN=#0C0", InvalidHex),
            ("CN=#zz", InvalidHex),
            ("CN=#x0C00", InvalidHex),
            ("CN=#0C00 ", InvalidHex),
            ("CN=#0C00\\,", InvalidHex),
            ("CN=#0C0561", InvalidBer),
            ("CN=#0C00FF", InvalidBer),
            ("CN=#2C800C016100", InvalidBer),
            ("CN=#00", InvalidBer),
            ("CN=\\FF", InvalidUtf8),
            ("CN=\\C3", InvalidUtf8),
        ];
        for (input, error) in cases {
            assert_eq!(Dn::parse(input).as_ref(), Err(error), "{input:?}");
        }
    }

    #[test]
    fn error_messages() {
        let message = |s: &str| Dn::parse(s).unwrap_err().to_string();
        assert_eq!(message("FOO=bar"), "unknown attribute type \"FOO\"");
        assert_eq!(message("CN=a\\"), "unterminated escape");
        assert_eq!(message("CN=#0C0"), "invalid hex string");
        assert_eq!(message("CN=a\nb"), "unescaped '\\n' in value");
        assert_eq!(message("1.02=x"), "invalid OID \"1.02\"");
        assert_eq!(message("alice"), "missing '=' after \"alice\"");
    }

    #[test]
    fn values_of_in_der_order() {
        let parsed = dn("CN=b+UID=1,O=x,CN=a");
        let cns: Vec<_> = parsed.values_of(OID_CN).collect();
        assert_eq!(cns, [&text("a"), &text("b")]);
        assert_eq!(parsed.values_of(UID).count(), 1);
        assert_eq!(parsed.values_of("2.5.4.11").count(), 0);
    }
}
