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
use ngx_http_mtls_module::hex::{lower_hex, parse_fingerprint, Serial};
use ngx_http_mtls_module::identity::dn::Dn;
use ngx_http_mtls_module::identity::san::{SanRule, Sans};
use ngx_http_mtls_module::identity::spiffe::{SpiffeId, SpiffePattern};
use ngx_http_mtls_module::identity::{rfc3339, Identity};
use ngx_http_mtls_module::policy::{IdentityRules, Peer, Policy, Reason};
use ngx_http_mtls_module::revocation::issuer_key;

fuzz_target!(|data: &[u8]| {
    let Ok(id) = Identity::from_der(data) else {
        return;
    };
    check_dn(&id.subject);
    check_dn(&id.issuer);
    check_whole(data, &id);
    rfc3339(id.not_after);

    let serial = id.serial.to_string();
    assert_eq!(Serial::parse(&serial).as_ref(), Ok(&id.serial), "{serial}");
    let denied = Policy {
        deny_serials: Some(
            [id.serial.clone()]
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

    let fingerprint = format!("sha256:{}", lower_hex(id.fingerprint()));
    assert_eq!(parse_fingerprint(&fingerprint), Ok(*id.fingerprint()));
    let mut rules = IdentityRules::default();
    rules.add_fingerprint(*id.fingerprint());
    assert!(rules.matches(&id));

    if let Some(cn) = &id.cn {
        let mut rules = IdentityRules::default();
        rules.add_cn(cn);
        assert!(rules.matches(&id), "{cn:?}");
    }
    let mut rules = IdentityRules::default();
    rules.add_dn(id.subject.clone());
    assert!(rules.matches(&id));

    // Each SAN written as a rule matches, where it is a valid rule value
    // (but for a certificate's literal `*.parent`, which as a rule is a
    // wildcard: it must not match the literal name, see san_rule).
    let sans = id.sans.dns.iter().map(|v| format!("dns:{v}"));
    let sans = sans.chain(id.sans.email.iter().map(|v| format!("email:{v}")));
    let sans = sans.chain(id.sans.uri.iter().map(|v| format!("uri:{v}")));
    let sans = sans.chain(id.sans.ip.iter().map(|v| format!("ip:{v}")));
    for text in sans {
        if let Some(rule) = SanRule::parse(&text)
            .ok()
            .filter(|r| !matches!(r, SanRule::DnsWildcard(_)))
        {
            let mut rules = IdentityRules::default();
            rules.add_san(rule);
            assert!(rules.matches(&id), "{text}");
        }
    }

    if let Some(sid) = &id.spiffe_id {
        assert_eq!(id.sans.uri, [sid.as_str()]);
        assert_eq!(SpiffeId::parse(sid.as_str()).as_ref(), Ok(sid));
        let mut rules = IdentityRules::default();
        rules.add_spiffe(SpiffePattern::parse(sid.as_str()).unwrap());
        assert!(rules.matches(&id));
    }
});

/// The parts read from OpenSSL's decoding are x509-parser's reading of the
/// whole DER certificate, where it reads one: the names (and the issuer
/// key, a hash of the issuer's bytes), the serial, notAfter and the SANs.
fn check_whole(der: &[u8], id: &Identity) {
    let Ok((_, whole)) = x509_parser::parse_x509_certificate(der) else {
        return;
    };
    assert_eq!(id.subject, Dn::from_x509(whole.subject()));
    assert_eq!(id.issuer, Dn::from_x509(whole.issuer()));
    assert_eq!(id.issuer_key, issuer_key(whole.issuer().as_raw()));
    assert_eq!(id.serial, Serial::from_der_content(whole.raw_serial()));
    assert_eq!(id.not_after, whole.validity().not_after.timestamp());
    if let Ok(Some(san)) = whole.subject_alternative_name() {
        assert_eq!(id.sans, Sans::from_general_names(&san.value.general_names));
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
