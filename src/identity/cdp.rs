//! The CRL Distribution Points of a certificate: the http:// and https://
//! URIs of its distribution points' full names, as written. Other names
//! (`ldap://`, directory names, names relative to the issuer) are skipped:
//! the loader fetches none of them.

use openssl::x509::X509Ref;

use crate::revocation::cdp::is_http;

/// The http(s) URLs that `cert`'s CRL Distribution Points extension names,
/// in its order, without repeats; empty without the extension.
pub fn crl_urls(cert: &X509Ref) -> Vec<String> {
    let Some(points) = cert.crl_distribution_points() else {
        return Vec::new();
    };
    let mut urls: Vec<String> = Vec::new();
    for point in &points {
        let Some(names) = point.distpoint().and_then(|d| d.fullname()) else {
            continue;
        };
        for uri in names.iter().filter_map(|n| n.uri()) {
            if is_http(uri) && !urls.iter().any(|u| u == uri) {
                urls.push(uri.to_owned());
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::crl_urls;
    use crate::revocation::testca::TestCa;

    #[test]
    fn urls_of_a_certificate() {
        let ca = TestCa::new("CDP CA");
        assert!(crl_urls(&ca.issue(&[1])).is_empty(), "no extension");
        let cert = ca.issue_with_cdp(
            &[2],
            &[
                "ldap://ldap.example.com/cn=CDP%20CA?certificateRevocationList",
                "http://pki.example.com/ca.crl",
                "HTTPS://pki.example.com/ca.crl",
                "http://pki.example.com/ca.crl",
            ],
        );
        assert_eq!(
            crl_urls(&cert),
            [
                "http://pki.example.com/ca.crl",
                "HTTPS://pki.example.com/ca.crl"
            ]
        );
    }
}
