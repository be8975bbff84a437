//! CRL Distribution Points, the part without nginx: which URL a
//! certificate names is the same URL for the allow list, the registry of
//! discovered URLs and the copies kept on disk ([`normalise`]), and which
//! configured prefix allows it ([`longest_prefix`]).
//!
//! A certificate must not make nginx fetch whatever it names: a URL is
//! only fetched under a prefix that the configuration allows, and
//! normalising refuses what could make a prefix mean more than it says
//! (user information, dot segments, encoded slashes and dots).

/// The longest URL accepted, in bytes: the size of a slot in shared memory.
pub const URL_MAX: usize = 1024;

/// Why a URL is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not an http:// or https:// URL")]
    Scheme,
    #[error("longer than {URL_MAX} bytes")]
    TooLong,
    #[error("has a character that is not printable ASCII")]
    Chars,
    #[error("has no valid host")]
    Host,
    #[error("has user information")]
    UserInfo,
    #[error("has an invalid port")]
    Port,
    #[error("has a fragment")]
    Fragment,
    #[error("has a dot segment, or an encoded dot, slash or backslash, in its path")]
    Path,
}

/// Whether `url` is an http:// or https:// URL, by its scheme alone: the
/// ones a distribution point may have the loader fetch (others, such as
/// `ldap://`, are skipped without a word).
pub fn is_http(url: &str) -> bool {
    let lower = |n: usize| {
        url.get(..n)
            .is_some_and(|s| s.eq_ignore_ascii_case(&"https://"[..n]))
    };
    lower(8)
        || url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

/// `url` in the one form it is compared and stored in: scheme and host in
/// lower case, the scheme's default port dropped, the path `/` where it is
/// empty. Refuses what could make the path under a prefix name another
/// path on the server.
pub fn normalise(url: &str) -> Result<String, UrlError> {
    if url.len() > URL_MAX {
        return Err(UrlError::TooLong);
    }
    if !url.bytes().all(|b| (0x21..0x7f).contains(&b)) || url.contains('\\') {
        return Err(UrlError::Chars);
    }
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::Scheme)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err(UrlError::Scheme),
    };
    if rest.contains('#') {
        return Err(UrlError::Fragment);
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(end);
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let (host, port) = split_host_port(authority)?;
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let lower = path.to_ascii_lowercase();
    if path.split('/').any(|s| s == "." || s == "..")
        || ["%2e", "%2f", "%5c", "%00"]
            .iter()
            .any(|e| lower.contains(e))
    {
        return Err(UrlError::Path);
    }
    let mut out = String::with_capacity(url.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host.to_ascii_lowercase());
    if let Some(port) = port.filter(|&p| p != default_port) {
        out.push(':');
        out.push_str(port);
    }
    out.push_str(if path.is_empty() { "/" } else { path });
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    if out.len() > URL_MAX {
        return Err(UrlError::TooLong);
    }
    Ok(out)
}

/// The host and the port of an authority, the port without its leading
/// zeros.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UrlError> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']').ok_or(UrlError::Host)?;
        let literal = &v6[..close];
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(UrlError::Host);
        }
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(UrlError::Host),
        };
        (&authority[..close + 2], port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let label =
            |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if host.is_empty() || !host.trim_end_matches('.').split('.').all(label) {
            return Err(UrlError::Host);
        }
        (host.trim_end_matches('.'), port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            let digits = p.trim_start_matches('0');
            match p.parse::<u32>() {
                Ok(1..=65535) if p.bytes().all(|b| b.is_ascii_digit()) => Some(digits),
                _ => return Err(UrlError::Port),
            }
        }
    };
    Ok((host, port))
}

/// The value of the longest prefix in `list` that `url`, normalised, starts
/// with; `None` where none does. Prefixes are normalised as URLs are.
pub fn longest_prefix<'a, T>(list: &'a [(String, T)], url: &str) -> Option<&'a T> {
    list.iter()
        .filter(|(prefix, _)| url.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, value)| value)
}

/// A 64-bit FNV-1a hash of a URL: compared before the bytes in the
/// registry that workers scan.
pub fn hash(url: &[u8]) -> u64 {
    url.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A distribution point of a certificate, as a worker keeps it for the
/// connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdpUrl {
    /// Normalised where it could be, as written where not.
    pub url: String,
    pub error: Option<UrlError>,
    pub hash: u64,
}

impl CdpUrl {
    pub fn new(raw: &str) -> CdpUrl {
        let (url, error) = match normalise(raw) {
            Ok(url) => (url, None),
            Err(e) => (raw.chars().take(URL_MAX).collect(), Some(e)),
        };
        CdpUrl {
            hash: hash(url.as_bytes()),
            url,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised() {
        let n = |u: &str| normalise(u);
        assert_eq!(
            n("http://PKI.Example.COM/ca.crl").unwrap(),
            "http://pki.example.com/ca.crl"
        );
        assert_eq!(
            n("HTTP://pki.example.com:80/a/B.crl").unwrap(),
            "http://pki.example.com/a/B.crl"
        );
        assert_eq!(
            n("https://pki.example.com:443").unwrap(),
            "https://pki.example.com/"
        );
        assert_eq!(
            n("https://pki.example.com:0443/x").unwrap(),
            "https://pki.example.com/x"
        );
        assert_eq!(
            n("http://pki.example.com:8080/x").unwrap(),
            "http://pki.example.com:8080/x"
        );
        assert_eq!(
            n("https://pki.example.com:80/x").unwrap(),
            "https://pki.example.com:80/x"
        );
        assert_eq!(
            n("http://127.0.0.1:8081/crl/ca.crl").unwrap(),
            "http://127.0.0.1:8081/crl/ca.crl"
        );
        assert_eq!(n("http://[::1]:8081/c").unwrap(), "http://[::1]:8081/c");
        assert_eq!(n("http://[::1]/c").unwrap(), "http://[::1]/c");
        assert_eq!(
            n("http://pki.example.com./c").unwrap(),
            "http://pki.example.com/c"
        );
        assert_eq!(
            n("http://pki.example.com?x=1").unwrap(),
            "http://pki.example.com/?x=1"
        );
        assert_eq!(
            n("http://pki.example.com/c?a=../b").unwrap(),
            "http://pki.example.com/c?a=../b"
        );
    }

    #[test]
    fn refused() {
        let e = |u: &str| normalise(u).unwrap_err();
        assert_eq!(e("ldap://ldap.example.com/cn=CA"), UrlError::Scheme);
        assert_eq!(e("file:///etc/passwd"), UrlError::Scheme);
        assert_eq!(e("pki.example.com/ca.crl"), UrlError::Scheme);
        assert_eq!(e("http://user:pw@pki.example.com/"), UrlError::UserInfo);
        assert_eq!(
            e("http://pki.example.com@evil.example/"),
            UrlError::UserInfo
        );
        assert_eq!(e("http://pki.example.com/crl/../admin"), UrlError::Path);
        assert_eq!(e("http://pki.example.com/crl/./x"), UrlError::Path);
        assert_eq!(e("http://pki.example.com/crl/.."), UrlError::Path);
        assert_eq!(e("http://pki.example.com/crl/%2E%2e/admin"), UrlError::Path);
        assert_eq!(e("http://pki.example.com/crl%2fx"), UrlError::Path);
        assert_eq!(e("http://pki.example.com/crl\\x"), UrlError::Chars);
        assert_eq!(e("http://pki.example.com/a b"), UrlError::Chars);
        assert_eq!(e("http://pki.example.com/caf\u{e9}"), UrlError::Chars);
        assert_eq!(e("http://pki.example.com/a#b"), UrlError::Fragment);
        assert_eq!(e("http:///ca.crl"), UrlError::Host);
        assert_eq!(e("http://pki_example.com/"), UrlError::Host);
        assert_eq!(e("http://pki..example.com/"), UrlError::Host);
        assert_eq!(e("http://[::1/"), UrlError::Host);
        assert_eq!(e("http://pki.example.com:/"), UrlError::Port);
        assert_eq!(e("http://pki.example.com:70000/"), UrlError::Port);
        assert_eq!(e("http://pki.example.com:0/"), UrlError::Port);
        assert_eq!(e("http://pki.example.com:+80/"), UrlError::Port);
        assert_eq!(
            e(&format!("http://a/{}", "x".repeat(URL_MAX))),
            UrlError::TooLong
        );
    }

    #[test]
    fn schemes() {
        assert!(is_http("http://a/"));
        assert!(is_http("HTTPS://a/"));
        assert!(!is_http("ldap://a/"));
        assert!(!is_http("http:/a"));
        assert!(!is_http(""));
    }

    #[test]
    fn prefixes() {
        let list = vec![
            ("http://pki.example.com/".to_owned(), 1),
            ("http://pki.example.com/crl/".to_owned(), 2),
            ("https://pki.example.com/".to_owned(), 3),
        ];
        assert_eq!(
            longest_prefix(&list, "http://pki.example.com/ca.crl"),
            Some(&1)
        );
        assert_eq!(
            longest_prefix(&list, "http://pki.example.com/crl/ca.crl"),
            Some(&2)
        );
        assert_eq!(
            longest_prefix(&list, "https://pki.example.com/crl/ca.crl"),
            Some(&3)
        );
        // The host ends at the prefix's slash.
        assert_eq!(
            longest_prefix(&list, "http://pki.example.com.evil.example/ca.crl"),
            None
        );
        assert_eq!(
            longest_prefix(&list, "http://pki.example.com:8080/ca.crl"),
            None
        );
        assert_eq!(
            longest_prefix(&list, "http://other.example.com/ca.crl"),
            None
        );
        let none: Vec<(String, u8)> = Vec::new();
        assert_eq!(longest_prefix(&none, "http://pki.example.com/"), None);
    }

    #[test]
    fn kept_per_connection() {
        let u = CdpUrl::new("HTTP://PKI.example.com:80/ca.crl");
        assert_eq!(u.url, "http://pki.example.com/ca.crl");
        assert_eq!(u.error, None);
        assert_eq!(u.hash, hash(b"http://pki.example.com/ca.crl"));
        let bad = CdpUrl::new("http://pki.example.com/../x");
        assert_eq!(bad.url, "http://pki.example.com/../x");
        assert_eq!(bad.error, Some(UrlError::Path));
        assert_ne!(hash(b"a"), hash(b"b"));
    }
}
