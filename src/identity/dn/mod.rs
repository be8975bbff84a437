//! Distinguished names: the RFC 4514 parser used for configuration
//! (`parse.rs`), the decoder for the DER names in certificates
//! (`value.rs`, read with [`super::der`]), OIDs and the DER that orders
//! attributes (`oid.rs`), and the RFC 4514 printer used for variables and
//! logs (`print.rs`).
//!
//! Names are compared structurally (attribute type OIDs and decoded values),
//! never as printed strings. The printed form is the one nginx shows in
//! `$ssl_client_s_dn` (OpenSSL's `XN_FLAG_RFC2253`), and it parses back to the
//! same `Dn`.

mod oid;
mod parse;
mod print;
mod value;

#[cfg(test)]
mod testutil;

pub use print::escape_value;

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
    /// The values of the attributes of type `oid`, in DER order.
    pub fn values_of<'a>(&'a self, oid: &'a str) -> impl Iterator<Item = &'a AvaValue> + 'a {
        self.0
            .iter()
            .flat_map(|rdn| &rdn.0)
            .filter(move |ava| ava.oid == oid)
            .map(|ava| &ava.value)
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
