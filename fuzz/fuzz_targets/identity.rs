//! A certificate's identity, read from DER as the access phase reads a client
//! certificate (OpenSSL decodes it, the module reads its parts): it must
//! never panic, and what it yields must be consistent with the
//! configuration side: the subject and issuer print as printable ASCII that
//! parses back to the same DN, the serial prints as hex that parses back,
//! and rules written from the certificate's own values (CN, DN, each SAN,
//! SPIFFE ID, fingerprint, serial) match it. Where x509-parser decodes the
//! whole certificate, the parts read agree with its reading.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::hex::lower_hex;
use ngx_http_mtls_module::identity::dn::Dn;
use ngx_http_mtls_module::identity::fingerprint::parse_fingerprint;
use ngx_http_mtls_module::identity::san::{SanRule, Sans};
use ngx_http_mtls_module::identity::serial::Serial;
use ngx_http_mtls_module::identity::spiffe::{SpiffeId, SpiffePattern};
use ngx_http_mtls_module::identity::{rfc3339, Identity};
use ngx_http_mtls_module::policy::{IdentityRules, Peer, Policy, Reason};
use ngx_http_mtls_module::revocation::{issuer_key, Key, Link};

fuzz_target!(|data: &[u8]| {
    let Ok(id) = Identity::from_der(data) else {
        return;
    };
    let readable = |rules: &IdentityRules| rules.matches(&id) == Ok(true);
    if let Ok(subject) = id.subject() {
        check_dn(subject);
        let mut rules = IdentityRules::default();
        rules.add_dn(subject.clone());
        assert!(readable(&rules));
    }
    if let Ok(Some(cn)) = id.cn() {
        let mut rules = IdentityRules::default();
        rules.add_cn(cn);
        assert!(readable(&rules), "{cn:?}");
    }
    if let Ok(issuer) = id.issuer() {
        check_dn(issuer);
    }
    if let Ok(not_after) = id.not_after() {
        rfc3339(not_after);
    }
    check_whole(data, &id);

    if let Ok(serial) = id.serial() {
        let printed = serial.to_string();
        assert_eq!(Serial::parse(&printed).as_ref(), Ok(serial), "{printed}");
        let denied = Policy {
            deny_serials: Some(
                [serial.clone()]
                    .into_iter()
                    .collect::<std::collections::HashSet<_>>()
                    .into(),
            ),
            ..Policy::default()
        };
        assert_eq!(
            denied.decide(&Peer::Verified(&id), |_| Ok(())),
            Err(Reason::SerialDenied)
        );
    }

    if let Ok(fingerprint) = id.fingerprint() {
        let printed = format!("sha256:{}", lower_hex(fingerprint));
        assert_eq!(parse_fingerprint(&printed), Ok(*fingerprint));
        let mut rules = IdentityRules::default();
        rules.add_fingerprint(*fingerprint);
        assert!(readable(&rules));
    }

    // Each SAN written as a rule matches, where it is a valid rule value
    // (but for a certificate's literal `*.parent`, which as a rule is a
    // wildcard: it must not match the literal name, see san_rule).
    if let Ok(id_sans) = id.sans() {
        let sans = id_sans.dns.iter().map(|v| format!("dns:{v}"));
        let sans = sans.chain(id_sans.email.iter().map(|v| format!("email:{v}")));
        let sans = sans.chain(id_sans.uri.iter().map(|v| format!("uri:{v}")));
        let sans = sans.chain(id_sans.ip.iter().map(|v| format!("ip:{v}")));
        for text in sans {
            if let Some(rule) = SanRule::parse(&text)
                .ok()
                .filter(|r| !matches!(r, SanRule::DnsWildcard(_)))
            {
                let mut rules = IdentityRules::default();
                rules.add_san(rule);
                assert!(readable(&rules), "{text}");
            }
        }
    }

    if let Ok(Some(sid)) = id.spiffe_id() {
        assert_eq!(
            id.sans().map(|s| s.uri.as_slice()),
            Ok(&[sid.as_str().to_owned()][..])
        );
        assert_eq!(SpiffeId::parse(sid.as_str()).as_ref(), Ok(sid));
        let mut rules = IdentityRules::default();
        rules.add_spiffe(SpiffePattern::parse(sid.as_str()).unwrap());
        assert!(readable(&rules));
    }
});

/// The parts read from OpenSSL's decoding are x509-parser's reading of the
/// whole DER certificate, where it reads one: the names, the serial,
/// notAfter and the SANs; and so are revocation's keys (the issuer's, a
/// hash of the issuer's bytes, and the serial's).
fn check_whole(der: &[u8], id: &Identity) {
    let Ok((_, whole)) = x509_parser::parse_x509_certificate(der) else {
        return;
    };
    assert_eq!(id.subject().ok(), Some(&Dn::from_x509(whole.subject())));
    assert_eq!(id.issuer().ok(), Some(&Dn::from_x509(whole.issuer())));
    let key = issuer_key(whole.issuer().as_raw());
    let serial = Serial::from_der_content(whole.raw_serial());
    assert_eq!(id.serial().ok(), Some(&serial));
    let link =
        Link::of(id.cert(), false, true).expect("a link where x509-parser reads the certificate");
    assert_eq!((link.issuer_key, &link.serial), (key, &serial));
    assert_eq!(link.crl_key, Key::crl(&key, serial.as_bytes()));
    assert_eq!(
        id.not_after().ok(),
        Some(whole.validity().not_after.timestamp())
    );
    if let Ok(Some(san)) = whole.subject_alternative_name() {
        let sans = Sans::from_general_names(&san.value.general_names);
        assert_eq!(id.sans().ok(), Some(&sans));
    }
}

/// Prints as printable ASCII that parses back, unless empty or holding an
/// OID x509-parser could not decode (which prints as `invalid-oid:HEX`, to
/// match no rule).
fn check_dn(dn: &Dn) {
    let printed = dn.to_rfc4514();
    assert!(
        printed.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "{printed:?}"
    );
    let invalid_oid =
        dn.0.iter()
            .flat_map(|rdn| &rdn.0)
            .any(|ava| ava.oid.starts_with("invalid-oid:"));
    if dn.0.is_empty() || invalid_oid {
        return;
    }
    assert_eq!(Dn::parse(&printed).as_ref(), Ok(dn), "{printed:?}");
}
