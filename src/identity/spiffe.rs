//! SPIFFE IDs (X.509-SVID) and the `mtls_allow_spiffe` patterns.
//!
//! A SPIFFE ID is `spiffe://` + trust domain + path; the trust domain is
//! lower-case letters, digits, `.`, `-` and `_` (no port, no user info); the
//! path is a sequence of `/segment` with letters, digits, `.`, `-` and `_`,
//! no empty, `.` or `..` segment and no trailing `/`; no query or fragment.

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error("not a SPIFFE ID: scheme must be \"spiffe://\"")]
    Scheme,
    #[error("not a SPIFFE ID: invalid trust domain")]
    TrustDomain,
    #[error("not a SPIFFE ID: invalid path")]
    Path,
    #[error("not a SPIFFE ID: longer than 2048 bytes")]
    Length,
}

const SCHEME: &str = "spiffe://";
const MAX_LEN: usize = 2048;

/// A valid SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpiffeId(String);

impl SpiffeId {
    pub fn parse(text: &str) -> Result<SpiffeId, SpiffeError> {
        if text.len() > MAX_LEN {
            return Err(SpiffeError::Length);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(SpiffeError::Scheme)?;
        let (domain, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let domain_ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !domain_ok {
            return Err(SpiffeError::TrustDomain);
        }
        if !path.is_empty() && !path[1..].split('/').all(is_segment) {
            return Err(SpiffeError::Path);
        }
        Ok(SpiffeId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The IDs this one lies below, from the trust domain down to its parent:
    /// `spiffe://td/a/b` gives `spiffe://td` and `spiffe://td/a`.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        let path_start = self.0[SCHEME.len()..]
            .find('/')
            .map_or(self.0.len(), |i| SCHEME.len() + i);
        self.0[path_start..]
            .match_indices('/')
            .map(move |(i, _)| &self.0[..path_start + i])
    }
}

/// Lets sets of IDs be probed with the ancestors of an ID, which are `&str`.
impl core::borrow::Borrow<str> for SpiffeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

fn is_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// One `mtls_allow_spiffe` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpiffePattern {
    Exact(SpiffeId),
    /// `ID/*`: any ID below `ID`, segment-wise.
    Below(SpiffeId),
}

impl SpiffePattern {
    pub fn parse(text: &str) -> Result<SpiffePattern, SpiffeError> {
        match text.strip_suffix("/*") {
            Some(parent) => SpiffeId::parse(parent).map(SpiffePattern::Below),
            None => SpiffeId::parse(text).map(SpiffePattern::Exact),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        for id in [
            "spiffe://example.org",
            "spiffe://example.org/ns/prod/sa/web",
            "spiffe://a-b_c.1/x.y-z_0",
        ] {
            assert_eq!(SpiffeId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn invalid_ids() {
        let cases = [
            ("http://example.org/a", SpiffeError::Scheme),
            ("SPIFFE://example.org/a", SpiffeError::Scheme),
            ("spiffe://", SpiffeError::TrustDomain),
            ("spiffe://Example.org/a", SpiffeError::TrustDomain),
            ("spiffe://example.org:8080/a", SpiffeError::TrustDomain),
            ("spiffe://user@example.org/a", SpiffeError::TrustDomain),
            ("spiffe://example.org?x", SpiffeError::TrustDomain),
            ("spiffe://example.org/", SpiffeError::Path),
            ("spiffe://example.org/a/", SpiffeError::Path),
            ("spiffe://example.org/a//b", SpiffeError::Path),
            ("spiffe://example.org/a/../b", SpiffeError::Path),
            ("spiffe://example.org/./b", SpiffeError::Path),
            ("spiffe://example.org/a?x", SpiffeError::Path),
            ("spiffe://example.org/a#x", SpiffeError::Path),
            ("spiffe://example.org/a%20b", SpiffeError::Path),
        ];
        for (id, err) in cases {
            assert_eq!(SpiffeId::parse(id), Err(err), "{id}");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(MAX_LEN));
        assert_eq!(SpiffeId::parse(&long), Err(SpiffeError::Length));
    }

    #[test]
    fn ancestors_are_segment_wise() {
        let id = SpiffeId::parse("spiffe://td/ns/a/b").unwrap();
        let got: Vec<&str> = id.ancestors().collect();
        assert_eq!(got, ["spiffe://td", "spiffe://td/ns", "spiffe://td/ns/a"]);
        let root = SpiffeId::parse("spiffe://td").unwrap();
        assert_eq!(root.ancestors().count(), 0);
    }

    #[test]
    fn patterns() {
        assert_eq!(
            SpiffePattern::parse("spiffe://td/ns/*"),
            Ok(SpiffePattern::Below(
                SpiffeId::parse("spiffe://td/ns").unwrap()
            ))
        );
        assert_eq!(
            SpiffePattern::parse("spiffe://td/*"),
            Ok(SpiffePattern::Below(
                SpiffeId::parse("spiffe://td").unwrap()
            ))
        );
        assert!(SpiffePattern::parse("spiffe://td/a*").is_err());
        assert!(SpiffePattern::parse("spiffe://td/*/b").is_err());
    }
}
