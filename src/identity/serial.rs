//! Certificate serial numbers, in the forms `mtls_deny_serial`, deny
//! lists and `$mtls_serial` use.

use core::fmt;

use crate::hex::nibble;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    #[error("not a hexadecimal number")]
    Digit,
    #[error("empty value")]
    Empty,
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
    pub fn parse(text: &str) -> Result<Serial, SerialError> {
        let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        if digits.is_empty() {
            return Err(SerialError::Empty);
        }
        let nibbles = digits
            .iter()
            .map(|&b| nibble(b).ok_or(SerialError::Digit))
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
        assert_eq!(Serial::parse("12XZ"), Err(SerialError::Digit));
        assert_eq!(Serial::parse("-1"), Err(SerialError::Digit));
        assert_eq!(Serial::parse(""), Err(SerialError::Empty));
        assert_eq!(Serial::parse(":"), Err(SerialError::Empty));
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
}
