//! SHA-256 certificate fingerprints, as `mtls_allow_fingerprint`, deny
//! lists and `$mtls_fingerprint` write them.

use crate::hex::nibble;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("must be \"sha256:\" followed by 64 hexadecimal digits")]
    Form,
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
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, FingerprintError> {
    let hex = text
        .get(..7)
        .filter(|prefix| prefix.eq_ignore_ascii_case("sha256:"))
        .map(|_| &text[7..])
        .ok_or(FingerprintError::Form)?;
    let nibbles: Vec<u8> = hex
        .bytes()
        .filter(|&b| b != b':')
        .map(|b| nibble(b).ok_or(FingerprintError::Form))
        .collect::<Result<_, _>>()?;
    if nibbles.len() != 64 {
        return Err(FingerprintError::Form);
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(nibbles.chunks(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::{lower_hex, upper_hex};

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
            assert_eq!(parse_fingerprint(bad), Err(FingerprintError::Form), "{bad}");
        }
    }
}
