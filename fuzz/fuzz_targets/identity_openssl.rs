//! Differential: for a DER certificate that both the module (x509-parser)
//! and OpenSSL accept, they agree on the subject, the issuer and the SANs.
//!
//! What "agree" means:
//! - DNs: the same RDNs in the same order, each the same multiset of
//!   attributes, compared as dotted OID and value (see
//!   `ngx_http_mtls_module_fuzz::openssl_dn`): text must be equal character
//!   for character, and a value must be text for both or for neither. The
//!   order of attributes inside an RDN is not compared: the module sorts
//!   them into DER's SET OF order, OpenSSL keeps the encoded order.
//! - The printed form: where every attribute is single-valued, of a type the
//!   module prints by name, and text other than "#" alone, the module's
//!   RFC 4514 form is byte for byte OpenSSL's `XN_FLAG_RFC2253` output,
//!   what nginx shows in `$ssl_client_s_dn`. (The module escapes a lone "#",
//!   which OpenSSL does not; it prints unknown types as a dotted OID with the
//!   value re-encoded as UTF8String, where OpenSSL keeps the original string
//!   type; it sorts multi-valued RDNs: all three parse back the same.)
//! - SANs: the DNS names, email addresses, URIs and IP addresses, each in
//!   certificate order, are OpenSSL's values, normalized as the module
//!   does (DNS names in lower case, an email domain in lower case), with IP
//!   addresses of other lengths than 4 or 16 bytes left out, which the
//!   module ignores. Not compared where OpenSSL finds the certificate's
//!   extensions invalid: such a certificate never verifies in nginx.
#![no_main]

use foreign_types::ForeignTypeRef;
use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::identity::dn::{AvaValue, Dn};
use ngx_http_mtls_module::identity::Identity;
use ngx_http_mtls_module_fuzz::{comparable, openssl_dn, openssl_rfc2253, openssl_sans};
use openssl::x509::{X509NameRef, X509};

fuzz_target!(|data: &[u8]| {
    let Ok(id) = Identity::from_der(data) else {
        return;
    };
    let Ok(cert) = X509::from_der(data) else {
        return;
    };
    // OpenSSL's d2i accepts a prefix; the module wants the whole input.
    if cert.to_der().ok().as_deref() != Some(data) {
        return;
    }
    if let Ok(subject) = id.subject() {
        compare_dn("subject", subject, cert.subject_name());
    }
    if let Ok(issuer) = id.issuer() {
        compare_dn("issuer", issuer, cert.issuer_name());
    }

    // A certificate whose extensions OpenSSL cannot read never verifies.
    if extensions_invalid(&cert) {
        return;
    }
    let Ok(id_sans) = id.sans() else {
        return;
    };
    let Some(sans) = openssl_sans(&cert) else {
        assert!(
            id_sans.dns.is_empty() && id_sans.email.is_empty() && id_sans.uri.is_empty(),
            "SANs OpenSSL does not see: {id_sans:?}"
        );
        return;
    };
    // x509-parser reads a value that is not UTF-8 as an invalid name, which
    // the module skips: it can match no rule, all printable ASCII.
    let of_type = |t: i32| {
        sans.iter()
            .filter(move |(ty, _)| *ty == t)
            .filter_map(|(_, v)| String::from_utf8(v.clone()).ok())
    };
    let dns: Vec<String> = of_type(2).map(|v| v.to_ascii_lowercase()).collect();
    let email: Vec<String> = of_type(1)
        .map(|v| match v.rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
            None => v,
        })
        .collect();
    let uri: Vec<String> = of_type(6).collect();
    let ip: Vec<std::net::IpAddr> = sans
        .iter()
        .filter(|(ty, _)| *ty == 7)
        .filter_map(|(_, v)| match v.len() {
            4 => Some(<[u8; 4]>::try_from(v.as_slice()).unwrap().into()),
            16 => Some(<[u8; 16]>::try_from(v.as_slice()).unwrap().into()),
            _ => None,
        })
        .collect();
    assert_eq!(id_sans.dns, dns);
    assert_eq!(id_sans.email, email);
    assert_eq!(id_sans.uri, uri);
    assert_eq!(id_sans.ip, ip);
});

fn compare_dn(what: &str, ours: &Dn, name: &X509NameRef) {
    let Some(theirs) = openssl_dn(name) else {
        return;
    };
    assert_eq!(
        comparable(ours),
        comparable(&theirs),
        "{what}: {ours:?} vs OpenSSL {theirs:?}"
    );
    let simple = ours.0.iter().all(|rdn| {
        rdn.0.len() == 1
            && !Dn(vec![rdn.clone()])
                .to_rfc4514()
                .starts_with(|c: char| c.is_ascii_digit())
            && matches!(&rdn.0[0].value, AvaValue::Text(t) if t != "#")
    });
    if simple {
        if let Some(printed) = openssl_rfc2253(name) {
            assert_eq!(ours.to_rfc4514(), printed, "{what}");
        }
    }
}

fn extensions_invalid(cert: &X509) -> bool {
    // SAFETY: `cert` is alive for this call; OpenSSL caches the flags under
    // its own lock.
    let flags = unsafe { openssl_sys::X509_get_extension_flags(cert.as_ptr()) };
    flags & openssl_sys::EXFLAG_INVALID != 0
}
