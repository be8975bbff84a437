//! Distinguished names: the RFC 4514 parser used for configuration, the
//! decoder for the DER names in certificates (read with [`super::der`]),
//! and the RFC 4514 printer used for variables and logs.
//!
//! Names are compared structurally (attribute type OIDs and decoded values),
//! never as printed strings. The printed form is the one nginx shows in
//! `$ssl_client_s_dn` (OpenSSL's `XN_FLAG_RFC2253`), and it parses back to the
//! same `Dn`.
//!
//! Parsing is strict where RFC 4514 leaves room for guessing: RDNs are
//! separated by `,` only (never `;`), no space is allowed around `,`, `+` or
//! `=` nor unescaped at either end of a value, and control characters must be
//! escaped.

use std::cmp::Ordering;
use std::fmt;

use x509_parser::asn1_rs::{Any, FromBer, Tag};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::der::{self, Tlv};

pub const OID_CN: &str = "2.5.4.3";
/// The content octets of [`OID_CN`].
const OID_CN_DER: &[u8] = b"\x55\x04\x03";

/// Attribute types printed and parsed by name, with OpenSSL's short names
/// (the names `XN_FLAG_RFC2253` prints). Other types use the dotted OID.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("CN", OID_CN),
    ("SN", "2.5.4.4"),
    ("serialNumber", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("street", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("description", "2.5.4.13"),
    ("businessCategory", "2.5.4.15"),
    ("postalAddress", "2.5.4.16"),
    ("postalCode", "2.5.4.17"),
    ("postOfficeBox", "2.5.4.18"),
    ("telephoneNumber", "2.5.4.20"),
    ("name", "2.5.4.41"),
    ("GN", "2.5.4.42"),
    ("initials", "2.5.4.43"),
    ("generationQualifier", "2.5.4.44"),
    ("x500UniqueIdentifier", "2.5.4.45"),
    ("dnQualifier", "2.5.4.46"),
    ("houseIdentifier", "2.5.4.51"),
    ("pseudonym", "2.5.4.65"),
    ("role", "2.5.4.72"),
    ("organizationIdentifier", "2.5.4.97"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("mail", "0.9.2342.19200300.100.1.3"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    ("unstructuredName", "1.2.840.113549.1.9.2"),
    ("unstructuredAddress", "1.2.840.113549.1.9.8"),
    ("jurisdictionL", "1.3.6.1.4.1.311.60.2.1.1"),
    ("jurisdictionST", "1.3.6.1.4.1.311.60.2.1.2"),
    ("jurisdictionC", "1.3.6.1.4.1.311.60.2.1.3"),
];

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AvaValue {
    /// A string value, decoded: UTF8String, BMPString (UTF-16),
    /// UniversalString (UTF-32), and the one-byte string types (Printable,
    /// IA5, Numeric, Visible, Teletex) as ISO-8859-1 like OpenSSL.
    Text(String),
    /// Any other value, or a string that does not decode: its whole TLV,
    /// DER-encoded.
    Der(Vec<u8>),
}

/// An attribute type and value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ava {
    /// Dotted decimal OID.
    pub oid: String,
    pub value: AvaValue,
}

/// A relative distinguished name. Its AVAs are kept in a canonical order
/// (see [`Rdn::new`]) so that equality is set equality.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rdn(pub Vec<Ava>);

/// A distinguished name in DER order: the most significant RDN first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dn(pub Vec<Rdn>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DnError {
    #[error("empty DN")]
    Empty,
    #[error("missing attribute type")]
    EmptyType,
    #[error("missing '=' after {0:?}")]
    MissingEquals(String),
    #[error("unknown attribute type {0:?}")]
    UnknownType(String),
    #[error("invalid OID {0:?}")]
    InvalidOid(String),
    #[error("unescaped space around a separator or at either end of a value")]
    UnescapedSpace,
    #[error("unescaped {0:?} in value")]
    UnescapedChar(char),
    #[error("unterminated escape")]
    UnterminatedEscape,
    #[error("invalid escape {0:?}")]
    InvalidEscape(String),
    #[error("invalid hex string")]
    InvalidHex,
    #[error("hex value is not a single BER TLV")]
    InvalidBer,
    #[error("escaped bytes are not valid UTF-8")]
    InvalidUtf8,
}

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

    /// Decodes a certificate's name; never fails. Text keeps every
    /// character, NUL included. A malformed OID becomes `invalid-oid:HEX`.
    pub fn from_x509(name: &X509Name<'_>) -> Dn {
        let rdns = name
            .iter_rdn()
            .map(|rdn| Rdn::new(rdn.iter().map(Ava::from_x509).collect()));
        Dn(rdns.collect())
    }

    /// Decodes a name's DER, as [`Dn::from_x509`] decodes x509-parser's
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

    /// The values of the attributes of type `oid`, in DER order.
    pub fn values_of<'a>(&'a self, oid: &'a str) -> impl Iterator<Item = &'a AvaValue> + 'a {
        self.0
            .iter()
            .flat_map(|rdn| &rdn.0)
            .filter(move |ava| ava.oid == oid)
            .map(|ava| &ava.value)
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc4514())
    }
}

impl Rdn {
    /// Sorts the AVAs into the order of their DER encodings, the order of a
    /// DER `SET OF`, so that a certificate's RDN prints in OpenSSL's order.
    pub fn new(mut avas: Vec<Ava>) -> Rdn {
        avas.sort_by(|a, b| a.der_order(b));
        Rdn(avas)
    }
}

impl Ava {
    fn from_x509(atv: &AttributeTypeAndValue<'_>) -> Ava {
        Ava::new(atv.attr_type().as_bytes(), tlv_of(atv.attr_value()))
    }

    /// The attribute of type `oid` (content octets) and `value`.
    fn new(oid: &[u8], value: Tlv<'_>) -> Ava {
        // Not a dotted OID, so it matches no rule; OpenSSL rejects such names.
        let dotted = decode_oid(oid).unwrap_or_else(|| format!("invalid-oid:{}", hex_upper(oid)));
        Ava {
            oid: dotted,
            value: decode_value(value),
        }
    }

    /// Text values are taken as UTF8String: the original string type is not
    /// kept, so two AVAs differing only in it may print in another order.
    fn der_order(&self, other: &Ava) -> Ordering {
        self.der_key()
            .cmp(&other.der_key())
            .then_with(|| self.cmp(other))
    }

    fn der_key(&self) -> Vec<u8> {
        let oid = encode_oid(&self.oid).unwrap_or_else(|| self.oid.as_bytes().to_vec());
        let mut content = encode_tlv(der::UNIVERSAL, false, Tag::Oid.0, &oid);
        content.extend(self.value.to_der());
        encode_tlv(der::UNIVERSAL, true, Tag::Sequence.0, &content)
    }

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
                out.push_str(&hex_upper(&value.to_der()));
            }
            // RFC 4514 2.4: a dotted type takes the BER value in hex.
            (None, value) => {
                escape_into(out, &self.oid);
                out.push_str("=#");
                out.push_str(&hex_upper(&value.to_der()));
            }
        }
    }
}

impl AvaValue {
    fn to_der(&self) -> Vec<u8> {
        match self {
            AvaValue::Text(text) => {
                encode_tlv(der::UNIVERSAL, false, Tag::Utf8String.0, text.as_bytes())
            }
            AvaValue::Der(der) => der.clone(),
        }
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
            hex => decode_ber(&decode_hex(hex).ok_or(DnError::InvalidHex)?),
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
            Some(high) if high.is_ascii_hexdigit() => match self.bump() {
                None => Err(DnError::UnterminatedEscape),
                Some(low) if low.is_ascii_hexdigit() => Ok((hex_digit(high) << 4) | hex_digit(low)),
                Some(_) => Err(invalid(self)),
            },
            Some(_) => Err(invalid(self)),
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

fn decode_ber(der: &[u8]) -> Result<AvaValue, DnError> {
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

fn decode_value(value: Tlv<'_>) -> AvaValue {
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

fn encode_tlv(class: u8, constructed: bool, tag: u32, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 16);
    let identifier = (class << 6) | (u8::from(constructed) << 5);
    match u8::try_from(tag) {
        Ok(short) if short < 0x1f => out.push(identifier | short),
        _ => {
            out.push(identifier | 0x1f);
            push_base128(&mut out, tag.into());
        }
    }
    match u8::try_from(content.len()) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let len = content.len().to_be_bytes();
            let skip = len.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (len.len() - skip) as u8);
            out.extend_from_slice(&len[skip..]);
        }
    }
    out.extend_from_slice(content);
    out
}

fn push_base128(out: &mut Vec<u8>, value: u128) {
    let groups = (128 - value.leading_zeros()).div_ceil(7).max(1);
    for i in (0..groups).rev() {
        let group = (value >> (7 * i)) as u8 & 0x7f;
        out.push(if i == 0 { group } else { group | 0x80 });
    }
}

/// The content octets of a dotted OID; `None` unless it is canonical
/// (no leading zeros) and encodable, with arcs up to 128 bits.
fn encode_oid(dotted: &str) -> Option<Vec<u8>> {
    let arcs = dotted
        .split('.')
        .map(parse_arc)
        .collect::<Option<Vec<u128>>>()?;
    let [first, second, rest @ ..] = arcs.as_slice() else {
        return None;
    };
    if *first > 2 || (*first < 2 && *second > 39) {
        return None;
    }
    let mut out = Vec::new();
    push_base128(&mut out, second.checked_add(first * 40)?);
    rest.iter().for_each(|&arc| push_base128(&mut out, arc));
    Some(out)
}

fn parse_arc(arc: &str) -> Option<u128> {
    let canonical =
        arc.bytes().all(|b| b.is_ascii_digit()) && (arc == "0" || !arc.starts_with('0'));
    canonical.then(|| arc.parse().ok()).flatten()
}

/// The dotted form of an OID's content octets; `None` if they are malformed
/// or an arc exceeds 128 bits.
fn decode_oid(der: &[u8]) -> Option<String> {
    if !matches!(der.last(), Some(last) if last & 0x80 == 0) {
        return None;
    }
    // Written digit by digit into one string: this runs for every
    // attribute of a client certificate's names.
    let mut out = String::with_capacity(der.len() * 3 + 2);
    for (i, chunk) in der.split_inclusive(|b| b & 0x80 == 0).enumerate() {
        if chunk.first() == Some(&0x80) {
            return None;
        }
        let arc = chunk.iter().try_fold(0u128, |acc, b| {
            acc.checked_mul(128).map(|acc| acc | u128::from(b & 0x7f))
        })?;
        if i == 0 {
            let (a, b) = match arc {
                0..=39 => (0, arc),
                40..=79 => (1, arc - 40),
                _ => (2, arc - 80),
            };
            push_decimal(&mut out, a);
            out.push('.');
            push_decimal(&mut out, b);
        } else {
            out.push('.');
            push_decimal(&mut out, arc);
        }
    }
    Some(out)
}

fn push_decimal(out: &mut String, mut n: u128) {
    let mut digits = [0u8; 39];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// One attribute value escaped as in [`Dn::to_rfc4514`], for `$mtls_cn`.
pub fn escape_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Escapes like OpenSSL's `ASN1_STRFLGS_RFC2253`: a backslash before RFC 4514's
/// specials, `\XX` for every byte outside printable ASCII.
fn escape_into(out: &mut String, text: &str) {
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
                out.push_str(&hex_upper(&[byte]));
            }
        }
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

fn hex_digit(byte: u8) -> u8 {
    char::from(byte).to_digit(16).map_or(0, |d| d as u8)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(
        hex.as_bytes()
            .chunks_exact(2)
            .map(|pair| (hex_digit(pair[0]) << 4) | hex_digit(pair[1]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::{c_int, c_long, c_ulong, CString};
    use std::ptr;
    use std::sync::OnceLock;

    use openssl::asn1::{Asn1Object, Asn1Time, Asn1Type};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::x509::{X509Name as OpensslName, X509};
    use x509_parser::prelude::{parse_x509_certificate, FromDer};

    const UID: &str = "0.9.2342.19200300.100.1.1";

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn text(s: &str) -> AvaValue {
        AvaValue::Text(s.to_owned())
    }

    fn ava(oid: &str, value: AvaValue) -> Ava {
        Ava {
            oid: oid.to_owned(),
            value,
        }
    }

    fn cn(value: AvaValue) -> Dn {
        Dn(vec![Rdn(vec![ava(OID_CN, value)])])
    }

    fn printable(s: &str) -> bool {
        s.bytes().all(|b| (0x20..0x7f).contains(&b))
    }

    fn assert_round_trip(dn: &Dn) {
        let printed = dn.to_rfc4514();
        assert!(printable(&printed), "{printed:?}");
        assert_eq!(printed, dn.to_string());
        assert_eq!(Dn::parse(&printed).as_ref(), Ok(dn), "{printed:?}");
    }

    // DER builders for names that OpenSSL's API cannot make.

    fn tlv(identifier: u8, content: &[u8]) -> Vec<u8> {
        encode_tlv(
            identifier >> 6,
            identifier & 0x20 != 0,
            u32::from(identifier & 0x1f),
            content,
        )
    }

    fn atv(oid: &str, value: &[u8]) -> Vec<u8> {
        let oid = tlv(0x06, &encode_oid(oid).unwrap());
        tlv(0x30, &[oid, value.to_vec()].concat())
    }

    fn name_der(rdns: &[&[Vec<u8>]]) -> Vec<u8> {
        let sets: Vec<u8> = rdns
            .iter()
            .flat_map(|set| tlv(0x31, &set.concat()))
            .collect();
        tlv(0x30, &sets)
    }

    fn utf8(s: &str) -> Vec<u8> {
        tlv(0x0c, s.as_bytes())
    }

    fn bmp(s: &str) -> Vec<u8> {
        let units: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
        tlv(0x1e, &units)
    }

    fn universal(s: &str) -> Vec<u8> {
        let chars: Vec<u8> = s.chars().flat_map(|c| u32::from(c).to_be_bytes()).collect();
        tlv(0x1c, &chars)
    }

    /// `None` unless every character is in ISO-8859-1.
    fn latin1(identifier: u8, s: &str) -> Option<Vec<u8>> {
        let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c).ok()).collect();
        Some(tlv(identifier, &bytes?))
    }

    /// x509-parser's reading of a name, which is also the module's own,
    /// and whose CN is the one the module reads alone.
    fn decode(der: &[u8]) -> Dn {
        let (rest, name) = X509Name::from_der(der).unwrap();
        assert!(rest.is_empty());
        let dn = Dn::from_x509(&name);
        assert_eq!(Dn::from_der(der).as_ref(), Some(&dn));
        let cn = single_cn(&dn).map(str::to_owned);
        assert_eq!(Dn::single_cn_from_der(der), Some(cn));
        dn
    }

    // Certificates and OpenSSL's view of them.

    fn key() -> &'static PKey<Private> {
        static KEY: OnceLock<PKey<Private>> = OnceLock::new();
        KEY.get_or_init(|| {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
        })
    }

    fn certificate(subject_der: &[u8]) -> Vec<u8> {
        let name = OpensslName::from_der(subject_der).unwrap();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        builder.set_subject_name(&name).unwrap();
        builder.set_issuer_name(&name).unwrap();
        builder.set_pubkey(key()).unwrap();
        builder
            .set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        builder.sign(key(), MessageDigest::sha256()).unwrap();
        builder.build().to_der().unwrap()
    }

    /// The subject of a certificate made with this name, as `from_x509` and
    /// as OpenSSL (nginx's `$ssl_client_s_dn`) see it. The module's own
    /// reading of it, and of its CN alone, is x509-parser's.
    fn subject(subject_der: &[u8]) -> (Dn, String) {
        let der = certificate(subject_der);
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let dn = Dn::from_x509(cert.subject());
        let id = crate::identity::Identity::from_der(&der).unwrap();
        assert_eq!(id.subject(), Ok(&dn));
        assert_eq!(id.cn(), Ok(single_cn(&dn)), "{dn:?}");
        let openssl_subject = X509::from_der(&der)
            .unwrap()
            .subject_name()
            .to_der()
            .unwrap();
        (dn, openssl_rfc2253(&openssl_subject))
    }

    /// The CN as a CN rule reads it: the one CN, if it is text.
    fn single_cn(dn: &Dn) -> Option<&str> {
        let mut cns = dn.values_of(OID_CN);
        match (cns.next(), cns.next()) {
            (Some(AvaValue::Text(cn)), None) => Some(cn),
            _ => None,
        }
    }

    fn assert_like_openssl(subject_der: &[u8]) -> Dn {
        let (dn, openssl) = subject(subject_der);
        assert_eq!(dn.to_rfc4514(), openssl, "{dn:?}");
        assert_round_trip(&dn);
        dn
    }

    fn openssl_rfc2253(name_der: &[u8]) -> String {
        extern "C" {
            fn X509_NAME_print_ex(
                out: *mut openssl_sys::BIO,
                name: *const openssl_sys::X509_NAME,
                indent: c_int,
                flags: c_ulong,
            ) -> c_int;
        }
        const XN_FLAG_RFC2253: c_ulong = 0x0111_0317;
        // SAFETY: `name` and `bio` are created here, checked for NULL and
        // freed once; `d2i` reads no more than `name_der.len()` bytes; the
        // memory BIO's buffer is read while the BIO is alive and only when
        // it is non-empty.
        unsafe {
            let mut input = name_der.as_ptr();
            let name =
                openssl_sys::d2i_X509_NAME(ptr::null_mut(), &mut input, name_der.len() as c_long);
            assert!(!name.is_null());
            let bio = openssl_sys::BIO_new(openssl_sys::BIO_s_mem());
            assert!(!bio.is_null());
            let written = X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
            let mut data = ptr::null_mut();
            let len = usize::try_from(openssl_sys::BIO_get_mem_data(bio, &mut data)).unwrap();
            let printed = if len == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec()
            };
            openssl_sys::BIO_free_all(bio);
            openssl_sys::X509_NAME_free(name);
            assert!(written >= 0);
            String::from_utf8(printed).unwrap()
        }
    }

    /// A name built by OpenSSL from UTF-8 values, in DER form (so with its
    /// multi-valued RDNs sorted by OpenSSL). `true` starts a new RDN, `false`
    /// adds to the previous one.
    fn openssl_name(entries: &[(&str, &str, bool)]) -> Vec<u8> {
        // SAFETY: `name` is created here, checked for NULL and freed once;
        // the field and value pointers are valid for the lengths given; the
        // output buffer has exactly the length i2d_X509_NAME reports.
        unsafe {
            let name = openssl_sys::X509_NAME_new();
            assert!(!name.is_null());
            for &(field, value, new_rdn) in entries {
                let field = CString::new(field).unwrap();
                let added = openssl_sys::X509_NAME_add_entry_by_txt(
                    name,
                    field.as_ptr(),
                    openssl_sys::MBSTRING_UTF8,
                    value.as_ptr(),
                    c_int::try_from(value.len()).unwrap(),
                    -1,
                    if new_rdn { 0 } else { -1 },
                );
                assert_eq!(added, 1, "{field:?}");
            }
            let len = openssl_sys::i2d_X509_NAME(name, ptr::null_mut());
            let mut der = vec![0; usize::try_from(len).unwrap()];
            let mut out = der.as_mut_ptr();
            assert_eq!(openssl_sys::i2d_X509_NAME(name, &mut out), len);
            openssl_sys::X509_NAME_free(name);
            der
        }
    }

    /// xorshift64*, for reproducible generated names.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    const TRICKY: &[&str] = &[
        "alice",
        "Alice Smith",
        "a,b",
        "a+b",
        "a\"b",
        "a\\b",
        "<x>",
        "a;b",
        "a=b",
        "#hash",
        "mid#dle",
        "x#",
        " lead",
        "trail ",
        " ",
        "  ",
        "",
        "é",
        "caf\u{e9} cr\u{e8}me",
        "日本",
        "😀",
        "tab\there",
        "cr\rlf\n",
        "\0",
        "alice\0evil",
        "del\x7f",
        "\u{80}\u{ff}",
    ];

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
        assert_eq!(cn_of(&name_der(&[&[o.clone()], &[cn("a")]])), some("a"));
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

    #[test]
    fn oids_decode_to_dotted_decimal() {
        let big = u128::MAX.to_string();
        for dotted in [
            "0.0",
            "0.39",
            "1.0",
            "1.39",
            "2.0",
            "2.39",
            "2.40",
            "2.999.1",
            "2.5.4.3",
            "1.2.840.113549.1.9.1",
            "0.9.2342.19200300.100.1.25",
            &format!("1.3.{big}.7"),
        ] {
            let der = encode_oid(dotted).unwrap();
            assert_eq!(decode_oid(&der).as_deref(), Some(dotted), "{der:02x?}");
        }
        // An arc past u128, a non-minimal arc, a truncated one, none.
        let past = [&[0x83][..], &[0xff; 18], &[0x7f]].concat();
        for der in [&past[..], b"\x55\x80\x04", b"\x55\x84", b""] {
            assert_eq!(decode_oid(der), None, "{der:02x?}");
        }
    }

    #[test]
    fn x509_malformed_oids_match_nothing() {
        for oid in [
            &[][..],
            &[0x55, 0x04, 0x83],
            &[0x55, 0x80, 0x04, 0x03],
            &[0xff; 20],
        ] {
            let raw = name_der(&[&[tlv(0x30, &[tlv(0x06, oid), utf8("a")].concat())]]);
            let parsed = decode(&raw);
            let Rdn(avas) = &parsed.0[0];
            assert!(avas[0].oid.starts_with("invalid-oid:"), "{:?}", avas[0].oid);
            assert!(printable(&parsed.to_rfc4514()));
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
