//! Passing the client's identity on to an upstream: the RFC 9440 and
//! RFC 8705 forms of a certificate, and the request headers a client may
//! not send on its own behalf.
//!
//! Pure Rust; the nginx side (the directive and the phase handler that
//! removes the headers) is in `forward/clear.rs`.

use data_encoding::{BASE64, BASE64URL_NOPAD};

#[cfg(all(feature = "nginx", not(test)))]
pub(crate) mod clear;

/// An RFC 8941 Byte Sequence: `:`, standard base64 with padding, `:`.
pub fn byte_sequence(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(BASE64.encode_len(bytes.len()) + 2);
    out.push(':');
    BASE64.encode_append(bytes, &mut out);
    out.push(':');
    out
}

/// An RFC 8941 List of Byte Sequences, members separated by `, `; empty
/// for no members.
pub fn byte_sequence_list<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut out = String::new();
    for item in items {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push(':');
        BASE64.encode_append(item, &mut out);
        out.push(':');
    }
    out
}

/// The `x5t#S256` confirmation of RFC 8705: the certificate's SHA-256
/// in base64url without padding.
pub fn x5t_s256(fingerprint: &[u8; 32]) -> String {
    BASE64URL_NOPAD.encode(fingerprint)
}

/// The request headers removed before a request is passed on, by name,
/// case-insensitive; a name ending in `*` stands for every name that
/// begins with what precedes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderNames {
    patterns: Vec<Pattern>,
    /// The patterns' first bytes (lower case, ASCII), one bit each: most
    /// of a request's headers are told apart by their first byte alone,
    /// which the precontent handler tests for every header of every
    /// request (see bench/NOTES.md, change 17).
    firsts: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    /// Lower case.
    name: Vec<u8>,
    prefix: bool,
}

/// The names removed where `mtls_clear_request_headers` is not set: the
/// RFC 9440 headers, and the `X-Client-` family the README and the
/// examples in nginx-conf/ use.
pub const DEFAULT_NAMES: [&str; 3] = ["Client-Cert", "Client-Cert-Chain", "X-Client-*"];

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("not a header name")]
    Invalid,
    #[error("\"*\" may only end a name that has a prefix")]
    Wildcard,
    #[error("is a header nginx itself processes")]
    Known,
    #[error("matches \"{0}\", a header nginx itself processes")]
    MatchesKnown(String),
}

impl HeaderNames {
    /// No header at all (`off`).
    pub fn none() -> HeaderNames {
        HeaderNames::default()
    }

    /// The names in [`DEFAULT_NAMES`].
    pub fn default_names() -> HeaderNames {
        let mut names = HeaderNames::none();
        for name in DEFAULT_NAMES {
            // The defaults are valid names, and none of them is nginx's.
            let _ = names.add(name, &[]);
        }
        names
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Adds `name` (or `prefix*`). `known` holds the headers nginx itself
    /// processes (its `ngx_http_headers_in`): its request fields point at
    /// them, so removing one from the list would leave a stale copy
    /// behind; they are refused.
    pub fn add(&mut self, name: &str, known: &[&[u8]]) -> Result<(), NameError> {
        let (stem, prefix) = match name.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (name, false),
        };
        if stem.contains('*') || (stem.is_empty() && prefix) {
            return Err(NameError::Wildcard);
        }
        if stem.is_empty() || !stem.bytes().all(is_tchar) {
            return Err(NameError::Invalid);
        }
        let pattern = Pattern {
            name: stem.to_ascii_lowercase().into_bytes(),
            prefix,
        };
        if let Some(k) = known.iter().find(|k| pattern.matches(k)) {
            return Err(if prefix {
                NameError::MatchesKnown(String::from_utf8_lossy(k).into_owned())
            } else {
                NameError::Known
            });
        }
        if !self.patterns.contains(&pattern) {
            // Not empty, and tchars are ASCII.
            self.firsts |= 1 << pattern.name[0];
            self.patterns.push(pattern);
        }
        Ok(())
    }

    /// Whether a header of this name is removed.
    pub fn matches(&self, name: &[u8]) -> bool {
        match name.first() {
            Some(&b) if b < 128 && self.firsts & (1 << b.to_ascii_lowercase()) != 0 => {
                self.patterns.iter().any(|p| p.matches(name))
            }
            _ => false,
        }
    }
}

impl Pattern {
    fn matches(&self, name: &[u8]) -> bool {
        let n = self.name.len();
        if self.prefix {
            name.len() >= n && name[..n].eq_ignore_ascii_case(&self.name)
        } else {
            name.eq_ignore_ascii_case(&self.name)
        }
    }
}

/// RFC 9110's `tchar`, the characters of a header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Examples of RFC 9440 and RFC 8941: the empty sequence, padding.
    #[test]
    fn byte_sequences() {
        assert_eq!(byte_sequence(b""), "::");
        assert_eq!(byte_sequence(b"f"), ":Zg==:");
        assert_eq!(byte_sequence(b"fo"), ":Zm8=:");
        assert_eq!(byte_sequence(b"foo"), ":Zm9v:");
        assert_eq!(byte_sequence(&[0xfb, 0xff]), ":+/8=:");
        assert_eq!(byte_sequence_list([]), "");
        assert_eq!(byte_sequence_list([&b"f"[..]]), ":Zg==:");
        assert_eq!(
            byte_sequence_list([&b"f"[..], &b"foo"[..], &[0xfb, 0xff][..]]),
            ":Zg==:, :Zm9v:, :+/8=:"
        );
    }

    /// RFC 8705's form: URL-safe alphabet, no padding, 43 characters.
    #[test]
    fn thumbprint() {
        let mut fp = [0u8; 32];
        fp[0] = 0xfb;
        fp[1] = 0xff;
        fp[31] = 0x3e;
        let t = x5t_s256(&fp);
        assert_eq!(t.len(), 43);
        assert!(t.starts_with("-_8A"), "{t}");
        assert!(!t.contains('=') && !t.contains('+') && !t.contains('/'));
        assert_eq!(
            x5t_s256(&crate::identity::fingerprint::sha256(b"abc")),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn names() {
        let known: [&[u8]; 3] = [b"Host", b"X-Forwarded-For", b"X-Real-IP"];
        let mut n = HeaderNames::none();
        assert!(!n.matches(b"client-cert"));
        n.add("Client-Cert", &known).unwrap();
        n.add("X-Client-*", &known).unwrap();
        n.add("x-client-*", &known).unwrap();
        assert_eq!(n.patterns.len(), 2, "the same pattern once");
        for yes in [
            &b"Client-Cert"[..],
            b"CLIENT-CERT",
            b"client-cert",
            b"X-Client-",
            b"x-client-cn",
            b"X-CLIENT-SPIFFE-ID",
        ] {
            assert!(n.matches(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"Client-Cert-Chain"[..],
            b"Client-Cer",
            b"X-Client",
            b"X-Clients",
            b"Client-Cert ",
            b"Cookie",
            b"X-Forwarded-For",
            b"",
            b"\xc3lient-Cert",
        ] {
            assert!(!n.matches(no), "{}", String::from_utf8_lossy(no));
        }
        // The first-byte filter: a name of any first byte is found.
        let mut d = HeaderNames::none();
        d.add("1-Id", &known).unwrap();
        d.add("~Id*", &known).unwrap();
        assert!(d.matches(b"1-id") && d.matches(b"~ID-2") && !d.matches(b"2-id"));
        let err = |name| HeaderNames::none().add(name, &known).unwrap_err();
        assert_eq!(err("*"), NameError::Wildcard);
        assert_eq!(err("X-*-CN"), NameError::Wildcard);
        assert_eq!(err("X-Client-**"), NameError::Wildcard);
        assert_eq!(err(""), NameError::Invalid);
        assert_eq!(err("Client Cert"), NameError::Invalid);
        assert_eq!(err("Client-Cert:"), NameError::Invalid);
        assert_eq!(err("x-real-ip"), NameError::Known);
        assert_eq!(
            err("X-*"),
            NameError::MatchesKnown("X-Forwarded-For".into())
        );
        assert_eq!(err("Ho*"), NameError::MatchesKnown("Host".into()));
    }

    #[test]
    fn defaults() {
        let d = HeaderNames::default_names();
        assert!(d.matches(b"client-cert") && d.matches(b"Client-Cert-Chain"));
        assert!(d.matches(b"X-Client-DN") && d.matches(b"x-client-cert-sha256"));
        assert!(!d.matches(b"X-Device-ID") && !d.matches(b"X-Forwarded-For"));
        assert!(HeaderNames::none().is_empty() && !d.is_empty());
    }
}
