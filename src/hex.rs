//! Serial numbers and fingerprints in their configuration and variable forms.

use core::fmt;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("not a hexadecimal number")]
    Digit,
    #[error("empty value")]
    Empty,
    #[error("must be \"sha256:\" followed by 64 hexadecimal digits")]
    Fingerprint,
}

/// A certificate serial number as its magnitude, without leading zero bytes,
/// so that `0A`, `0a`, `00:0A` and `000a` are the same serial.
///
/// Kept inline up to [`INLINE`] bytes, on the heap beyond: a connection
/// keeps its certificate's serial, and an allocation that lives as long as
/// the connection costs the handshake more than copying a few bytes.
#[derive(Clone)]
pub struct Serial(Bytes);

/// RFC 5280 allows serials of up to 20 octets of content.
const INLINE: usize = 22;

#[derive(Clone)]
enum Bytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Serial {
    /// Parses the hexadecimal form used in configuration and deny lists:
    /// colons, case and leading zeros are ignored.
    pub fn parse(text: &str) -> Result<Serial, HexError> {
        let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        if digits.is_empty() {
            return Err(HexError::Empty);
        }
        let nibbles = digits
            .iter()
            .map(|&b| nibble(b).ok_or(HexError::Digit))
            .collect::<Result<Vec<u8>, _>>()?;
        let significant = nibbles
            .iter()
            .position(|&n| n != 0)
            .unwrap_or(nibbles.len());
        let nibbles = &nibbles[significant..];
        let mut bytes = Vec::with_capacity(nibbles.len().div_ceil(2));
        // An odd number of digits: the first byte holds a single nibble.
        let (head, tail) = nibbles.split_at(nibbles.len() % 2);
        bytes.extend(head.iter().copied());
        bytes.extend(tail.chunks(2).map(|pair| pair[0] << 4 | pair[1]));
        Ok(Serial::from_magnitude(&bytes))
    }

    /// The serial from a certificate's INTEGER content octets.
    pub fn from_der_content(raw: &[u8]) -> Serial {
        let significant = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
        Serial::from_magnitude(&raw[significant..])
    }

    /// From a magnitude without leading zero bytes.
    fn from_magnitude(magnitude: &[u8]) -> Serial {
        Serial(match u8::try_from(magnitude.len()) {
            Ok(len) if magnitude.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..magnitude.len()].copy_from_slice(magnitude);
                Bytes::Inline { len, bytes }
            }
            _ => Bytes::Heap(magnitude.into()),
        })
    }

    /// The magnitude, big-endian, without leading zero bytes (empty for zero).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Bytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Bytes::Heap(bytes) => bytes,
        }
    }
}

impl Default for Serial {
    fn default() -> Serial {
        Serial::from_magnitude(&[])
    }
}

impl PartialEq for Serial {
    fn eq(&self, other: &Serial) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Serial {}

impl core::hash::Hash for Serial {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

/// Upper-case hex, two digits per byte, as nginx prints `$ssl_client_serial`.
impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.as_bytes();
        if bytes.is_empty() {
            return f.write_str("00");
        }
        bytes.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// A SHA-256 certificate fingerprint.
pub type Fingerprint = [u8; 32];

/// SHA-256 of `data`, through OpenSSL's low-level interface: OpenSSL 3's
/// one-shot `SHA256()` fetches the algorithm from the provider store on
/// every call, several times the cost of hashing a certificate.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut hash = openssl::sha::Sha256::new();
    hash.update(data);
    hash.finish()
}

/// Parses `sha256:HEX`; colons and case in HEX are ignored.
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, HexError> {
    let hex = text
        .get(..7)
        .filter(|prefix| prefix.eq_ignore_ascii_case("sha256:"))
        .map(|_| &text[7..])
        .ok_or(HexError::Fingerprint)?;
    let nibbles: Vec<u8> = hex
        .bytes()
        .filter(|&b| b != b':')
        .map(|b| nibble(b).ok_or(HexError::Fingerprint))
        .collect::<Result<_, _>>()?;
    if nibbles.len() != 64 {
        return Err(HexError::Fingerprint);
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(nibbles.chunks(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Ok(out)
}

/// Lower-case hex without separators.
pub fn lower_hex(bytes: &[u8]) -> String {
    encode(bytes, b"0123456789abcdef")
}

/// Upper-case hex without separators, as OpenSSL prints DER values.
pub fn upper_hex(bytes: &[u8]) -> String {
    encode(bytes, b"0123456789ABCDEF")
}

fn encode(bytes: &[u8], digits: &[u8; 16]) -> String {
    bytes
        .iter()
        .flat_map(|b| [digits[usize::from(b >> 4)], digits[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// The bytes of an even number of hex digits, in either case.
pub fn decode(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// The value of one hex digit.
pub fn nibble(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_forms_are_equal() {
        let want = Serial::parse("0A1B").unwrap();
        for text in ["a1b", "A1B", "0a:1b", "000A1B", "0:a:1:b"] {
            assert_eq!(Serial::parse(text).unwrap(), want, "{text}");
        }
        assert_eq!(want.to_string(), "0A1B");
        assert_eq!(Serial::parse("1002").unwrap().to_string(), "1002");
    }

    #[test]
    fn serial_zero_and_errors() {
        assert_eq!(Serial::parse("0000").unwrap().to_string(), "00");
        assert_eq!(Serial::parse("12XZ"), Err(HexError::Digit));
        assert_eq!(Serial::parse("-1"), Err(HexError::Digit));
        assert_eq!(Serial::parse(""), Err(HexError::Empty));
        assert_eq!(Serial::parse(":"), Err(HexError::Empty));
    }

    #[test]
    fn serial_from_certificate_content() {
        // DER keeps a leading zero byte for positive numbers with the top bit set.
        assert_eq!(
            Serial::from_der_content(&[0x00, 0x80, 0x01]),
            Serial::parse("8001").unwrap()
        );
        assert_eq!(Serial::from_der_content(&[0x00]).to_string(), "00");
    }

    /// Inline up to 22 bytes, on the heap beyond: the same serial either
    /// way, equal however it was made.
    #[test]
    fn serial_lengths() {
        for len in [0, 1, 20, 21, 22, 23, 24, 64] {
            let bytes: Vec<u8> = (1..=len as u8).collect();
            let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
            let serial = Serial::from_der_content(&[&[0, 0][..], &bytes].concat());
            assert_eq!(serial.as_bytes(), &bytes[..], "{len}");
            assert_eq!(
                serial,
                Serial::parse(&format!("000{hex}")).unwrap_or_default()
            );
            assert_eq!(serial.clone(), serial, "{len}");
            let shown = if len == 0 { "00".to_string() } else { hex };
            assert_eq!(serial.to_string(), shown, "{len}");
        }
    }

    #[test]
    fn fingerprints() {
        let hex = "AB".repeat(32);
        let fp = parse_fingerprint(&format!("sha256:{hex}")).unwrap();
        assert_eq!(fp, [0xab; 32]);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&format!("SHA256:{colons}")).unwrap(), fp);
        assert_eq!(lower_hex(&fp), "ab".repeat(32));
        assert_eq!(upper_hex(&fp), "AB".repeat(32));
        for bad in [
            "sha256:abc",
            "md5:00",
            "ab",
            "sha256:",
            &format!("sha256:{}zz", "a".repeat(62)),
        ] {
            assert_eq!(parse_fingerprint(bad), Err(HexError::Fingerprint), "{bad}");
        }
    }
}
