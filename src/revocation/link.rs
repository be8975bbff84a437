//! A certificate as revocation looks it up: the keys of its issuer and of
//! its serial in the tables, read from the certificate OpenSSL verified.

use openssl::x509::{X509Ref, X509};

use super::cdp::CdpUrl;
use super::{issuer_key, IssuerKey, Key};
use crate::identity::serial::Serial;
use crate::identity::x509;

/// A certificate of a verified chain, as revocation sees it.
#[derive(Clone, Debug)]
pub struct Link {
    pub issuer_key: IssuerKey,
    pub serial: Serial,
    pub is_ca: bool,
    /// Its key in CRL tables.
    pub crl_key: Key,
    /// Its CRL Distribution Points, read only where the configuration
    /// discovers CRLs from them.
    pub cdp: Box<[CdpUrl]>,
}

impl Link {
    /// The link of `cert`; `None` where its issuer or serial cannot be
    /// read. The issuer is hashed from the Name's own bytes and the serial
    /// taken as the certificate encodes it, as a CRL's issuer and entries
    /// are, so that an issuer OpenSSL would encode otherwise, or a serial a
    /// CA encoded as negative, still finds its entry.
    /// With `cdp`, also its CRL Distribution Points.
    pub fn of(cert: &X509Ref, is_ca: bool, cdp: bool) -> Option<Link> {
        let issuer_key = issuer_key(x509::name_der(cert.issuer_name())?);
        let serial = x509::serial(cert)?;
        let crl_key = Key::crl(&issuer_key, serial.as_bytes());
        Some(Link {
            issuer_key,
            serial,
            is_ca,
            crl_key,
            cdp: if cdp {
                crate::identity::cdp::crl_urls(cert)
                    .iter()
                    .map(|u| CdpUrl::new(u))
                    .collect()
            } else {
                Box::default()
            },
        })
    }
}

/// The CA links of a resumed session's chain, where OpenSSL kept none:
/// each issuer found among the configured CA certificates `cas`, from the
/// leaf's up to a self-issued root. An issuer that is not found ends the
/// chain there; its certificate then goes unchecked only if it is not
/// among the CAs at all, which a verified chain rules out for
/// `ssl_client_certificate` setups.
pub fn rebuild_chain(leaf: &Link, cas: &[X509], cdp: bool) -> Vec<Link> {
    let mut issuer = leaf.issuer_key;
    let mut links = Vec::new();
    while links.len() < 15 {
        let Some(ca) = cas.iter().find(|ca| {
            x509::name_der(ca.subject_name()).is_some_and(|der| issuer_key(der) == issuer)
        }) else {
            break;
        };
        let Some(link) = Link::of(ca, true, cdp) else {
            break;
        };
        if link.issuer_key == issuer {
            break; // self-issued: the root, which nothing revokes
        }
        issuer = link.issuer_key;
        links.push(link);
    }
    links
}

#[cfg(test)]
mod tests {
    use super::{rebuild_chain, Link};
    use crate::revocation::crl::parse;
    use crate::revocation::testca::{CrlSpec, TestCa};
    use crate::revocation::{issuer_key, Key, Table};

    /// A certificate's link finds its issuer and its entry in a CRL table
    /// as the CRL's loader wrote them.
    #[test]
    fn a_link_finds_its_crl_entry() {
        let ca = TestCa::new("Test CA");
        let revoked = [&[0x01][..], &[0x8f, 0x01], &[0x7f; 20]];
        let spec = CrlSpec {
            serials: revoked.iter().map(|s| s.to_vec()).collect(),
            ..CrlSpec::default()
        };
        let loaded = parse(&ca.crl(&spec), "crl", ca.cas()).unwrap();
        let table = Table::new(&loaded.table).unwrap();
        let valid = [&[0x02][..], &[0x8f, 0x02], &[0x7f; 19]];
        for (serials, want) in [(revoked, true), (valid, false)] {
            for serial in serials {
                let link = Link::of(&ca.issue(serial), false, false).unwrap();
                assert_eq!(link.issuer_key, issuer_key(&ca.name_der()));
                assert!(table.issuer(&link.issuer_key).is_some());
                let key = Key::crl(&link.issuer_key, link.serial.as_bytes());
                assert_eq!(link.crl_key, key, "{serial:x?}");
                assert_eq!(table.holds(link.crl_key), want, "{serial:x?}");
                assert!(!link.is_ca);
            }
        }
    }

    /// Up from the leaf to the root, which is left out, whatever the order
    /// of the CA certificates; an issuer that is not among them ends it.
    #[test]
    fn chain_rebuilt_from_the_cas() {
        let root = TestCa::new("Root");
        let one = root.intermediate("One", 11);
        let two = one.intermediate("Two", 12);
        let leaf = Link::of(&two.issue(&[5]), false, false).unwrap();
        let all = [two.cert.clone(), root.cert.clone(), one.cert.clone()];
        let links = rebuild_chain(&leaf, &all, false);
        let serials: Vec<_> = links.iter().map(|l| l.serial.as_bytes().to_vec()).collect();
        assert_eq!(serials, [[12], [11]]);
        assert!(links.iter().all(|l| l.is_ca));
        assert_eq!(links[0].issuer_key, issuer_key(&one.name_der()));
        assert_eq!(links[1].issuer_key, issuer_key(&root.name_der()));
        let without_one = [two.cert.clone(), root.cert.clone()];
        assert_eq!(rebuild_chain(&leaf, &without_one, false).len(), 1);
        assert!(rebuild_chain(&leaf, root.cas(), false).is_empty());
        let by_root = Link::of(&root.issue(&[6]), false, false).unwrap();
        assert!(rebuild_chain(&by_root, &all, false).is_empty());
    }
}
