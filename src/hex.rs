//! Hex digits: the one set of helpers for every hex form the module reads
//! or prints.

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
    fn both_cases_and_back() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff];
        assert_eq!(lower_hex(&bytes), "000fa5ff");
        assert_eq!(upper_hex(&bytes), "000FA5FF");
        assert_eq!(decode("000fA5FF").as_deref(), Some(&bytes[..]));
        assert_eq!(decode("").as_deref(), Some(&[][..]));
        for bad in ["0", "0g", "+1", " 1", "\u{e9}"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
