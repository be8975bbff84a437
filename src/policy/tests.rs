//! Unit tests of the decision logic, on identities read from real
//! certificates: each test builds its certificates with OpenSSL (EC P-256,
//! self-signed, with whatever subject, issuer name, serial and extensions it
//! needs) and reads them back with `Identity::from_der`, exactly as the
//! module does at request time. Rules are built with the module's own
//! parsers, as the configuration does.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{c_int, CString};
use std::sync::{Arc, OnceLock};

use foreign_types::ForeignType;
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Extension, X509Name, X509};

use super::{IdentityRules, Peer, Policy, Reason, Unread};
use crate::hex::lower_hex;
use crate::identity::dn::Dn;
use crate::identity::fingerprint::parse_fingerprint;
use crate::identity::san::SanRule;
use crate::identity::serial::Serial;
use crate::identity::spiffe::{SpiffeId, SpiffePattern};
use crate::identity::Identity;

const CA1: &str = "CN=Clients CA,O=Example";
const CA2: &str = "CN=Partner CA,O=Partner";

// ---------------------------------------------------------------------------
// Certificates

#[derive(Clone, Copy)]
enum Usage {
    DigitalSignature,
    KeyCertSign,
    CrlSign,
}

enum San {
    Dns(&'static str),
    Email(&'static str),
    Uri(&'static str),
    Ip(&'static str),
}

/// One certificate to make. Names are lists of (field, value, starts a new
/// RDN), in DER order (most significant RDN first).
struct Cert {
    subject: Vec<(&'static str, String, bool)>,
    issuer: Vec<(&'static str, String, bool)>,
    serial: &'static str,
    sans: Vec<San>,
    /// A basicConstraints extension, with this `cA` value.
    basic_ca: Option<bool>,
    key_usage: Vec<Usage>,
    /// Extensions as (dotted OID, DER value), well formed or not.
    raw: Vec<(&'static str, &'static [u8])>,
}

impl Cert {
    /// No subject, issuer `CA1`, serial 01, no extensions.
    fn new() -> Cert {
        Cert {
            subject: Vec::new(),
            issuer: vec![
                ("O", "Example".into(), true),
                ("CN", "Clients CA".into(), true),
            ],
            serial: "01",
            sans: Vec::new(),
            basic_ca: None,
            key_usage: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// A certificate `CN=<cn>,O=Example`, issued by `CA1`.
    fn named(cn: &str) -> Cert {
        Cert::new().rdn("O", "Example").rdn("CN", cn)
    }

    /// Appends a new RDN to the subject.
    fn rdn(mut self, field: &'static str, value: &str) -> Cert {
        self.subject.push((field, value.to_owned(), true));
        self
    }

    /// Adds an attribute to the subject's last RDN (a multi-valued RDN).
    fn plus(mut self, field: &'static str, value: &str) -> Cert {
        self.subject.push((field, value.to_owned(), false));
        self
    }

    /// The issuer name, as (field, value) RDNs in DER order.
    fn issuer(mut self, rdns: &[(&'static str, &str)]) -> Cert {
        self.issuer = rdns.iter().map(|&(f, v)| (f, v.to_owned(), true)).collect();
        self
    }

    fn serial(mut self, hex: &'static str) -> Cert {
        self.serial = hex;
        self
    }

    fn san(mut self, san: San) -> Cert {
        self.sans.push(san);
        self
    }

    fn dns(self, name: &'static str) -> Cert {
        self.san(San::Dns(name))
    }

    fn email(self, email: &'static str) -> Cert {
        self.san(San::Email(email))
    }

    fn uri(self, uri: &'static str) -> Cert {
        self.san(San::Uri(uri))
    }

    fn ip(self, ip: &'static str) -> Cert {
        self.san(San::Ip(ip))
    }

    fn basic_constraints(mut self, ca: bool) -> Cert {
        self.basic_ca = Some(ca);
        self
    }

    fn key_usage(mut self, usage: &[Usage]) -> Cert {
        self.key_usage = usage.to_vec();
        self
    }

    fn extension(mut self, oid: &'static str, value: &'static [u8]) -> Cert {
        self.raw.push((oid, value));
        self
    }

    fn der(&self) -> Vec<u8> {
        let key = key();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        let serial = BigNum::from_hex_str(self.serial).unwrap();
        cert.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        cert.set_subject_name(&name(&self.subject)).unwrap();
        cert.set_issuer_name(&name(&self.issuer)).unwrap();
        cert.set_pubkey(key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        if let Some(ca) = self.basic_ca {
            let mut bc = BasicConstraints::new();
            bc.critical();
            if ca {
                bc.ca();
            }
            cert.append_extension(bc.build().unwrap()).unwrap();
        }
        if !self.key_usage.is_empty() {
            let mut ku = KeyUsage::new();
            ku.critical();
            for usage in &self.key_usage {
                match usage {
                    Usage::DigitalSignature => ku.digital_signature(),
                    Usage::KeyCertSign => ku.key_cert_sign(),
                    Usage::CrlSign => ku.crl_sign(),
                };
            }
            cert.append_extension(ku.build().unwrap()).unwrap();
        }
        if !self.sans.is_empty() {
            let mut ext = SubjectAlternativeName::new();
            for san in &self.sans {
                match *san {
                    San::Dns(v) => ext.dns(v),
                    San::Email(v) => ext.email(v),
                    San::Uri(v) => ext.uri(v),
                    San::Ip(v) => ext.ip(v),
                };
            }
            let ext = ext.build(&cert.x509v3_context(None, None)).unwrap();
            cert.append_extension(ext).unwrap();
        }
        for &(oid, value) in &self.raw {
            let oid = Asn1Object::from_str(oid).unwrap();
            let value = Asn1OctetString::new_from_bytes(value).unwrap();
            let ext = X509Extension::new_from_der(&oid, false, &value).unwrap();
            cert.append_extension(ext).unwrap();
        }
        cert.sign(key, MessageDigest::sha256()).unwrap();
        cert.build().to_der().unwrap()
    }

    fn identity(&self) -> Identity {
        Identity::from_der(self.der()).unwrap()
    }
}

/// One EC P-256 key for every certificate: signing is what makes a
/// certificate, not whose key it is.
fn key() -> &'static PKey<Private> {
    static KEY: OnceLock<PKey<Private>> = OnceLock::new();
    KEY.get_or_init(|| {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    })
}

/// An X509_NAME with these entries; `X509NameBuilder` cannot make
/// multi-valued RDNs, so the entries are added with OpenSSL's own call.
fn name(entries: &[(&'static str, String, bool)]) -> X509Name {
    // SAFETY: `raw` is checked for NULL and owned by `name` from then on
    // (freed once, on drop); the field is NUL-terminated and the value
    // pointer is valid for the length given.
    unsafe {
        let raw = openssl_sys::X509_NAME_new();
        assert!(!raw.is_null());
        let name = X509Name::from_ptr(raw);
        for (field, value, new_rdn) in entries {
            let field_c = CString::new(*field).unwrap();
            let added = openssl_sys::X509_NAME_add_entry_by_txt(
                raw,
                field_c.as_ptr(),
                openssl_sys::MBSTRING_UTF8,
                value.as_ptr(),
                c_int::try_from(value.len()).unwrap(),
                -1,
                if *new_rdn { 0 } else { -1 },
            );
            assert_eq!(added, 1, "{field}={value:?}");
        }
        name
    }
}

// ---------------------------------------------------------------------------
// Rules and policies

fn cn_rules(names: &[&str]) -> IdentityRules {
    let mut rules = IdentityRules::default();
    names.iter().for_each(|cn| rules.add_cn(cn));
    rules
}

fn dn_rules(dns: &[&str]) -> IdentityRules {
    let mut rules = IdentityRules::default();
    for dn in dns {
        rules.add_dn(Dn::parse(dn).unwrap_or_else(|e| panic!("{dn}: {e}")));
    }
    rules
}

fn san_rules(sans: &[&str]) -> IdentityRules {
    let mut rules = IdentityRules::default();
    for san in sans {
        rules.add_san(SanRule::parse(san).unwrap_or_else(|e| panic!("{san}: {e}")));
    }
    rules
}

fn spiffe_rules(patterns: &[&str]) -> IdentityRules {
    let mut rules = IdentityRules::default();
    for pattern in patterns {
        rules
            .add_spiffe(SpiffePattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}")));
    }
    rules
}

fn fingerprint_rules(fingerprints: &[&str]) -> IdentityRules {
    let mut rules = IdentityRules::default();
    for fp in fingerprints {
        rules.add_fingerprint(parse_fingerprint(fp).unwrap_or_else(|e| panic!("{fp}: {e}")));
    }
    rules
}

fn issuers(dns: &[&str]) -> Option<Arc<HashSet<Dn>>> {
    Some(Arc::new(
        dns.iter().map(|dn| Dn::parse(dn).unwrap()).collect(),
    ))
}

fn deny_serials(serials: &[&str]) -> Option<Arc<HashSet<Serial>>> {
    Some(Arc::new(
        serials.iter().map(|s| Serial::parse(s).unwrap()).collect(),
    ))
}

fn identity(rules: IdentityRules) -> Option<Arc<IdentityRules>> {
    Some(Arc::new(rules))
}

/// Decides for a verified certificate, with no revocation sources.
fn decide(policy: &Policy, cert: &Cert) -> Result<(), Reason> {
    policy.decide(&Peer::Verified(&cert.identity()), |_| Ok(()))
}

/// Asserts, for each (certificate, expected) pair, whether `rules` match it.
fn check(rules: &IdentityRules, cases: &[(&Cert, bool)]) {
    for (i, (cert, want)) in cases.iter().enumerate() {
        let id = cert.identity();
        assert_eq!(rules.matches(&id), Ok(*want), "case {i}: {id:?}");
    }
}

// ---------------------------------------------------------------------------
// mtls_allow_cn

#[test]
fn cn_exact_match_of_the_single_cn() {
    let alice = Cert::named("alice").identity();
    assert_eq!(alice.cn(), Ok(Some("alice")));
    assert!(cn_rules(&["alice"]).matches(&alice).unwrap());
    assert!(cn_rules(&["bob", "alice", "carol"])
        .matches(&alice)
        .unwrap());
    for other in [
        "Alice", "ALICE", "alice ", " alice", "alic", "alicee", "bob",
    ] {
        assert!(!cn_rules(&[other]).matches(&alice).unwrap(), "{other:?}");
    }
    // The CN may sit anywhere in the subject, also in a multi-valued RDN.
    let multi = Cert::new()
        .rdn("C", "US")
        .rdn("CN", "alice")
        .plus("UID", "42")
        .rdn("OU", "ops");
    assert_eq!(multi.identity().cn(), Ok(Some("alice")));
    check(&cn_rules(&["alice"]), &[(&multi, true)]);
}

#[test]
fn cn_two_cns_never_match() {
    let rules = cn_rules(&["alice", "bob"]);
    let separate = Cert::named("alice").rdn("CN", "bob");
    let same_rdn = Cert::new()
        .rdn("O", "Example")
        .rdn("CN", "alice")
        .plus("CN", "bob");
    let twice = Cert::named("alice").rdn("CN", "alice");
    for cert in [&separate, &same_rdn, &twice] {
        assert_eq!(cert.identity().cn(), Ok(None));
    }
    check(
        &rules,
        &[
            (&separate, false),
            (&same_rdn, false),
            (&twice, false),
            (&Cert::named("bob"), true),
        ],
    );
    check(&cn_rules(&["alice"]), &[(&twice, false)]);
}

#[test]
fn cn_with_embedded_nul_never_matches_a_rule_without_it() {
    let evil = Cert::named("alice\0evil");
    let rules = cn_rules(&["alice", "evil", "alice evil", "aliceevil", r"alice\0evil"]);
    check(&rules, &[(&evil, false), (&Cert::named("alice"), true)]);
    let trailing = Cert::named("alice\0");
    check(&cn_rules(&["alice"]), &[(&trailing, false)]);
}

#[test]
fn cn_absent_or_only_in_other_names() {
    let rules = cn_rules(&["alice"]);
    let no_cn = Cert::new().rdn("O", "Example").rdn("OU", "alice");
    assert_eq!(no_cn.identity().cn(), Ok(None));
    // The issuer's CN, a SAN, or an emailAddress in the subject is not the CN.
    let issuer_cn = Cert::named("bob").issuer(&[("CN", "alice")]);
    let san_only = Cert::named("bob").dns("alice").email("alice@example.com");
    check(
        &rules,
        &[(&no_cn, false), (&issuer_cn, false), (&san_only, false)],
    );
}

#[test]
fn cn_containing_a_dn_is_one_value() {
    let tricky = Cert::new().rdn("CN", "alice,O=Example");
    assert_eq!(tricky.identity().cn(), Ok(Some("alice,O=Example")));
    check(&cn_rules(&["alice"]), &[(&tricky, false)]);
    check(&cn_rules(&["alice,O=Example"]), &[(&tricky, true)]);
}

// ---------------------------------------------------------------------------
// mtls_allow_dn

#[test]
fn dn_structural_match() {
    let alice = Cert::new()
        .rdn("C", "US")
        .rdn("O", "Example")
        .rdn("OU", "ops")
        .rdn("CN", "alice");
    let matching = [
        "CN=alice,OU=ops,O=Example,C=US",
        "cn=alice,ou=ops,o=Example,c=US",
        "2.5.4.3=alice,OU=ops,O=Example,C=US",
        "CN=#0C05616C696365,OU=ops,O=Example,C=US",
        r"CN=\61lice,OU=ops,O=Example,C=US",
    ];
    for dn in matching {
        check(&dn_rules(&[dn]), &[(&alice, true)]);
    }
    let not_matching = [
        // RDN order matters.
        "C=US,O=Example,OU=ops,CN=alice",
        "CN=alice,O=Example,OU=ops,C=US",
        // Missing, extra or changed RDNs, values compared exactly.
        "CN=alice,O=Example,C=US",
        "CN=alice,OU=ops,O=Example,C=US,DC=com",
        "CN=alice",
        "CN=Alice,OU=ops,O=Example,C=US",
        "CN=alice,OU=ops,O=Example,C=us",
        // Two RDNs merged into one multi-valued RDN.
        "CN=alice+OU=ops,O=Example,C=US",
        // Another attribute type with the same value.
        "UID=alice,OU=ops,O=Example,C=US",
    ];
    for dn in not_matching {
        check(&dn_rules(&[dn]), &[(&alice, false)]);
    }
    // Several rules are OR'ed.
    check(
        &dn_rules(&["CN=bob,O=Example", "CN=alice,OU=ops,O=Example,C=US"]),
        &[(&alice, true), (&Cert::named("bob"), true)],
    );
}

#[test]
fn dn_multi_valued_rdn_is_order_insensitive() {
    let rules = dn_rules(&["CN=alice+UID=42,O=Example,C=US"]);
    let cn_first = Cert::new()
        .rdn("C", "US")
        .rdn("O", "Example")
        .rdn("CN", "alice")
        .plus("UID", "42");
    let uid_first = Cert::new()
        .rdn("C", "US")
        .rdn("O", "Example")
        .rdn("UID", "42")
        .plus("CN", "alice");
    let split = Cert::new()
        .rdn("C", "US")
        .rdn("O", "Example")
        .rdn("UID", "42")
        .rdn("CN", "alice");
    let split_other_way = Cert::new()
        .rdn("C", "US")
        .rdn("O", "Example")
        .rdn("CN", "alice")
        .rdn("UID", "42");
    let missing = Cert::new()
        .rdn("C", "US")
        .rdn("O", "Example")
        .rdn("CN", "alice");
    check(
        &rules,
        &[
            (&cn_first, true),
            (&uid_first, true),
            (&split, false),
            (&split_other_way, false),
            (&missing, false),
        ],
    );
    check(
        &dn_rules(&["UID=42+CN=alice,O=Example,C=US"]),
        &[(&cn_first, true), (&uid_first, true)],
    );
}

#[test]
fn dn_cn_with_comma_is_not_two_rdns() {
    let tricky = Cert::new().rdn("CN", "alice,O=Example");
    let real = Cert::new().rdn("O", "Example").rdn("CN", "alice");
    check(
        &dn_rules(&["CN=alice,O=Example"]),
        &[(&tricky, false), (&real, true)],
    );
    check(
        &dn_rules(&[r"CN=alice\,O=Example", r"CN=alice\2CO=Example"]),
        &[(&tricky, true), (&real, false)],
    );
}

#[test]
fn dn_escapes_and_nul() {
    let cafe = Cert::new().rdn("O", "Example").rdn("CN", "café");
    check(&dn_rules(&[r"CN=caf\C3\A9,O=Example"]), &[(&cafe, true)]);
    check(&dn_rules(&["CN=café,O=Example"]), &[(&cafe, true)]);
    check(&dn_rules(&["CN=cafe,O=Example"]), &[(&cafe, false)]);
    let nul = Cert::named("alice\0evil");
    check(&dn_rules(&["CN=alice,O=Example"]), &[(&nul, false)]);
    check(&dn_rules(&[r"CN=alice\00evil,O=Example"]), &[(&nul, true)]);
}

// ---------------------------------------------------------------------------
// mtls_allow_san

#[test]
fn san_dns_exact_case_insensitive() {
    let api = Cert::named("x").dns("API.Example.com");
    for rule in [
        "dns:api.example.com",
        "DNS:API.EXAMPLE.COM",
        "dns:Api.Example.Com",
    ] {
        check(&san_rules(&[rule]), &[(&api, true)]);
    }
    for rule in [
        "dns:example.com",
        "dns:api.example.co",
        "dns:api.example.com.evil",
        "dns:xapi.example.com",
        "dns:a.api.example.com",
    ] {
        check(&san_rules(&[rule]), &[(&api, false)]);
    }
    // Any one of the certificate's names is enough.
    let several = Cert::named("x").dns("one.example").dns("two.example");
    check(&san_rules(&["dns:two.example"]), &[(&several, true)]);
}

#[test]
fn san_dns_wildcard_one_label() {
    let rules = san_rules(&["dns:*.example.com"]);
    check(
        &rules,
        &[
            (&Cert::named("x").dns("a.example.com"), true),
            (&Cert::named("x").dns("A.EXAMPLE.COM"), true),
            (&Cert::named("x").dns("a-b_c.example.com"), true),
            (&Cert::named("x").dns("a.b.example.com"), false),
            (&Cert::named("x").dns("example.com"), false),
            (&Cert::named("x").dns(".example.com"), false),
            (&Cert::named("x").dns("aexample.com"), false),
            (&Cert::named("x").dns("a.example.com.evil"), false),
            (&Cert::named("x").dns("a.example.org"), false),
            (&Cert::named("x").dns("*.a.example.com"), false),
        ],
    );
    // A wildcard rule does not cover a deeper wildcard's names.
    check(
        &san_rules(&["dns:*.b.example.com"]),
        &[
            (&Cert::named("x").dns("a.b.example.com"), true),
            (&Cert::named("x").dns("a.example.com"), false),
        ],
    );
}

#[test]
fn san_dns_certificate_wildcard_is_literal() {
    let wild = Cert::named("x").dns("*.example.com");
    for rule in [
        "dns:*.example.com",
        "dns:*.com",
        "dns:a.example.com",
        "dns:example.com",
    ] {
        check(&san_rules(&[rule]), &[(&wild, false)]);
    }
}

#[test]
fn san_email_domain_case_insensitive_local_exact() {
    let ops = Cert::named("x").email("Ops@Example.COM");
    for rule in [
        "email:Ops@example.com",
        "email:Ops@EXAMPLE.com",
        "EMAIL:Ops@Example.COM",
    ] {
        check(&san_rules(&[rule]), &[(&ops, true)]);
    }
    for rule in [
        "email:ops@example.com",
        "email:OPS@example.com",
        "email:Ops@example.org",
        "email:Ops@sub.example.com",
        "email:xOps@example.com",
    ] {
        check(&san_rules(&[rule]), &[(&ops, false)]);
    }
    // An emailAddress attribute in the subject is not an email SAN.
    let in_subject = Cert::named("x").rdn("emailAddress", "Ops@example.com");
    check(
        &san_rules(&["email:Ops@example.com"]),
        &[(&in_subject, false)],
    );
}

#[test]
fn san_uri_exact() {
    let cert = Cert::named("x").uri("https://id.example.com/x");
    check(
        &san_rules(&["uri:https://id.example.com/x"]),
        &[(&cert, true)],
    );
    for rule in [
        "uri:https://id.example.com/x/",
        "uri:https://id.example.com/X",
        "uri:https://ID.example.com/x",
        "uri:HTTPS://id.example.com/x",
        "uri:https://id.example.com/",
        "uri:https://id.example.com/x?",
        "uri:http://id.example.com/x",
    ] {
        check(&san_rules(&[rule]), &[(&cert, false)]);
    }
}

#[test]
fn san_types_do_not_cross() {
    let cert = Cert::named("x")
        .dns("example.com")
        .email("a@example.com")
        .uri("https://example.com")
        .ip("192.0.2.1");
    for rule in [
        "email:example.com@x",
        "uri:example.com:x",
        "dns:a.example.com",
        "uri:mailto:a@example.com",
        "dns:192.0.2.1",
        "uri:https:example.com",
    ] {
        check(&san_rules(&[rule]), &[(&cert, false)]);
    }
}

#[test]
fn san_ip_exact_v4_and_v6() {
    let cert = Cert::named("x").ip("192.0.2.7").ip("2001:db8::1");
    for rule in ["ip:192.0.2.7", "ip:2001:db8::1", "ip:2001:0db8:0:0::1"] {
        check(&san_rules(&[rule]), &[(&cert, true)]);
    }
    for rule in [
        "ip:192.0.2.8",
        "ip:192.0.2.70",
        "ip:2001:db8::2",
        "ip:2001:db8::",
    ] {
        check(&san_rules(&[rule]), &[(&cert, false)]);
    }
}

#[test]
fn san_ip_cidr_several_prefix_lengths() {
    let rules = san_rules(&[
        "ip:10.0.0.0/8",
        "ip:192.168.0.0/16",
        "ip:203.0.113.128/25",
        "ip:198.51.100.5/30",
        "ip:192.0.2.7/32",
        "ip:100.64.0.0/10",
        "ip:2001:db8::/32",
        "ip:fe80::/10",
        "ip:2001:db9:ffff:ffff::1/127",
        "ip:::1",
    ]);
    let cases = [
        ("10.0.0.0", true),
        ("10.255.255.255", true),
        ("11.0.0.1", false),
        ("9.255.255.255", false),
        ("192.168.200.3", true),
        ("192.169.0.1", false),
        ("203.0.113.128", true),
        ("203.0.113.255", true),
        ("203.0.113.127", false),
        // 198.51.100.5/30 is the network 198.51.100.4/30.
        ("198.51.100.4", true),
        ("198.51.100.7", true),
        ("198.51.100.8", false),
        ("198.51.100.3", false),
        ("192.0.2.7", true),
        ("192.0.2.6", false),
        ("100.127.255.255", true),
        ("100.128.0.0", false),
        ("2001:db8::", true),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db9::1", false),
        ("2001:db7:ffff::1", false),
        ("fe80::1", true),
        ("febf:ffff::1", true),
        ("fec0::1", false),
        ("2001:db9:ffff:ffff::", true),
        ("2001:db9:ffff:ffff::1", true),
        ("2001:db9:ffff:ffff::2", false),
        ("::1", true),
        ("::2", false),
        ("::", false),
    ];
    let certs: Vec<_> = cases
        .iter()
        .map(|(ip, _)| Cert::named("x").ip(ip))
        .collect();
    let cases: Vec<_> = certs
        .iter()
        .zip(cases)
        .map(|(c, (_, want))| (c, want))
        .collect();
    check(&rules, &cases);
    // One matching address among several is enough.
    check(
        &rules,
        &[(&Cert::named("x").ip("8.8.8.8").ip("2001:db8:1::9"), true)],
    );
}

#[test]
fn san_ip_families_never_cross() {
    let v4_any = san_rules(&["ip:0.0.0.0/0"]);
    let v6_any = san_rules(&["ip:::/0"]);
    let v4 = Cert::named("x").ip("192.0.2.7");
    let mapped = Cert::named("x").ip("::ffff:192.0.2.7");
    let compat = Cert::named("x").ip("::192.0.2.7");
    let v6 = Cert::named("x").ip("2001:db8::1");
    check(
        &v4_any,
        &[
            (&v4, true),
            (&mapped, false),
            (&compat, false),
            (&v6, false),
        ],
    );
    check(
        &v6_any,
        &[(&v4, false), (&mapped, true), (&compat, true), (&v6, true)],
    );
    let exact = san_rules(&["ip:192.0.2.7", "ip:192.0.2.0/24"]);
    check(&exact, &[(&v4, true), (&mapped, false), (&compat, false)]);
    // A v6 network whose low bits spell the v4 address does not match it.
    let mapped_rule = san_rules(&["ip:::ffff:192.0.2.7", "ip:::ffff:0:0/96"]);
    check(&mapped_rule, &[(&v4, false), (&mapped, true)]);
}

// ---------------------------------------------------------------------------
// mtls_allow_spiffe

fn svid(uri: &'static str) -> Cert {
    Cert::named("workload")
        .basic_constraints(false)
        .key_usage(&[Usage::DigitalSignature])
        .uri(uri)
}

#[test]
fn spiffe_exact() {
    let rules = spiffe_rules(&["spiffe://td/ns/a"]);
    let a = svid("spiffe://td/ns/a");
    assert_eq!(
        a.identity().spiffe_id(),
        Ok(Some(&SpiffeId::parse("spiffe://td/ns/a").unwrap()))
    );
    check(
        &rules,
        &[
            (&a, true),
            (&svid("spiffe://td/ns/a/b"), false),
            (&svid("spiffe://td/ns"), false),
            (&svid("spiffe://td/ns/ab"), false),
            (&svid("spiffe://other/ns/a"), false),
            (&svid("spiffe://td.x/ns/a"), false),
            // Without extensions at all, a leaf is an SVID too.
            (&Cert::named("x").uri("spiffe://td/ns/a"), true),
            // Other SAN types alongside the one URI do not matter.
            (&svid("spiffe://td/ns/a").dns("a.example.com"), true),
        ],
    );
    check(
        &spiffe_rules(&["spiffe://td"]),
        &[
            (&svid("spiffe://td"), true),
            (&svid("spiffe://td/a"), false),
        ],
    );
}

#[test]
fn spiffe_below_is_segment_wise() {
    let rules = spiffe_rules(&["spiffe://td/ns/*"]);
    check(
        &rules,
        &[
            (&svid("spiffe://td/ns/a"), true),
            (&svid("spiffe://td/ns/a/b"), true),
            (&svid("spiffe://td/ns/a/b/c/d"), true),
            (&svid("spiffe://td/ns"), false),
            (&svid("spiffe://td/nsx/a"), false),
            (&svid("spiffe://td/n/a"), false),
            (&svid("spiffe://td/x/ns/a"), false),
            (&svid("spiffe://tdx/ns/a"), false),
            (&svid("spiffe://other/ns/a"), false),
            (&svid("spiffe://td"), false),
        ],
    );
    let root = spiffe_rules(&["spiffe://td/*"]);
    check(
        &root,
        &[
            (&svid("spiffe://td/a"), true),
            (&svid("spiffe://td/a/b"), true),
            (&svid("spiffe://td"), false),
            (&svid("spiffe://td.org/a"), false),
        ],
    );
    let mixed = spiffe_rules(&["spiffe://td/a/b/*", "spiffe://td/x"]);
    check(
        &mixed,
        &[
            (&svid("spiffe://td/a/b/c"), true),
            (&svid("spiffe://td/a/b"), false),
            (&svid("spiffe://td/a/c"), false),
            (&svid("spiffe://td/x"), true),
            (&svid("spiffe://td/x/y"), false),
        ],
    );
}

#[test]
fn spiffe_invalid_ids_never_match() {
    let rules = spiffe_rules(&["spiffe://td/*", "spiffe://td/ns/a"]);
    for uri in [
        "spiffe://TD/ns/a",
        "spiffe://td:443/ns/a",
        "spiffe://user@td/ns/a",
        "spiffe://td/ns/a/",
        "spiffe://td/ns//a",
        "spiffe://td/ns/../ns/a",
        "spiffe://td/ns/./a",
        "spiffe://td/ns/a?x=1",
        "spiffe://td/ns/a#f",
        "SPIFFE://td/ns/a",
        "https://td/ns/a",
    ] {
        let cert = svid(uri);
        assert_eq!(cert.identity().spiffe_id(), Ok(None), "{uri}");
        check(&rules, &[(&cert, false)]);
    }
}

#[test]
fn spiffe_two_uri_sans_never_qualify() {
    let rules = spiffe_rules(&["spiffe://td/ns/*", "spiffe://td/ns/a", "spiffe://td/ns/b"]);
    let two = svid("spiffe://td/ns/a").uri("spiffe://td/ns/b");
    let same_twice = svid("spiffe://td/ns/a").uri("spiffe://td/ns/a");
    let with_https = svid("spiffe://td/ns/a").uri("https://example.com/");
    for cert in [&two, &same_twice, &with_https] {
        assert_eq!(cert.identity().spiffe_id(), Ok(None));
    }
    check(
        &rules,
        &[
            (&two, false),
            (&same_twice, false),
            (&with_https, false),
            (&svid("spiffe://td/ns/a"), true),
        ],
    );
}

#[test]
fn spiffe_ca_certificates_never_qualify() {
    let rules = spiffe_rules(&["spiffe://td/ns/*", "spiffe://td/ns/a"]);
    let uri = "spiffe://td/ns/a";
    let ca = Cert::named("x").basic_constraints(true).uri(uri);
    let ca_with_usage = Cert::named("x")
        .basic_constraints(true)
        .key_usage(&[Usage::KeyCertSign, Usage::CrlSign])
        .uri(uri);
    let cert_sign = Cert::named("x")
        .key_usage(&[Usage::DigitalSignature, Usage::KeyCertSign])
        .uri(uri);
    let cert_sign_not_ca = Cert::named("x")
        .basic_constraints(false)
        .key_usage(&[Usage::KeyCertSign])
        .uri(uri);
    let crl_sign = Cert::named("x")
        .basic_constraints(false)
        .key_usage(&[Usage::DigitalSignature, Usage::CrlSign])
        .uri(uri);
    for cert in [
        &ca,
        &ca_with_usage,
        &cert_sign,
        &cert_sign_not_ca,
        &crl_sign,
    ] {
        assert_eq!(cert.identity().spiffe_id(), Ok(None));
    }
    check(
        &rules,
        &[
            (&ca, false),
            (&ca_with_usage, false),
            (&cert_sign, false),
            (&cert_sign_not_ca, false),
            (&crl_sign, false),
            (&svid(uri), true),
            (&Cert::named("x").basic_constraints(false).uri(uri), true),
        ],
    );
}

// ---------------------------------------------------------------------------
// mtls_allow_fingerprint

/// The form `openssl x509 -noout -fingerprint -sha256` prints.
fn openssl_fingerprint(der: &[u8]) -> String {
    let hex: Vec<String> = openssl::sha::sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("sha256:{}", hex.join(":"))
}

#[test]
fn fingerprint_pins_the_exact_certificate() {
    let cert = Cert::named("alice").serial("1002");
    let der = cert.der();
    let id = Identity::from_der(der.as_slice()).unwrap();
    let printed = openssl_fingerprint(&der);
    let plain = format!("SHA256:{}", lower_hex(&openssl::sha::sha256(&der)));
    for form in [printed.as_str(), plain.as_str()] {
        assert!(fingerprint_rules(&[form]).matches(&id).unwrap(), "{form}");
    }
    let rules = fingerprint_rules(&[printed.as_str()]);
    // The same contents signed again (ECDSA signatures differ) is another
    // certificate, and so is anything else with the same names.
    let resigned = Identity::from_der(cert.der()).unwrap();
    assert_eq!(resigned.subject(), id.subject());
    assert_eq!(resigned.serial(), id.serial());
    assert!(!rules.matches(&resigned).unwrap());
    assert!(!rules.matches(&Cert::named("alice").identity()).unwrap());
    // One pin among many.
    let other = Cert::named("bob").der();
    let both = fingerprint_rules(&[openssl_fingerprint(&other).as_str(), printed.as_str()]);
    assert!(both.matches(&id).unwrap());
    assert!(both
        .matches(&Identity::from_der(other.as_slice()).unwrap())
        .unwrap());
}

// ---------------------------------------------------------------------------
// Rule families together

#[test]
fn families_are_ored() {
    let mut rules = cn_rules(&["bob"]);
    rules.add_dn(Dn::parse("CN=carol,O=Example").unwrap());
    rules.add_san(SanRule::parse("dns:*.svc.example.org").unwrap());
    rules.add_san(SanRule::parse("ip:10.0.0.0/8").unwrap());
    rules.add_spiffe(SpiffePattern::parse("spiffe://td/prod/*").unwrap());
    check(
        &rules,
        &[
            (&Cert::named("bob"), true),
            (&Cert::named("carol"), true),
            (&Cert::named("alice").dns("api.svc.example.org"), true),
            (&Cert::named("alice").ip("10.1.2.3"), true),
            (&svid("spiffe://td/prod/web"), true),
            (&Cert::named("alice"), false),
            (
                &Cert::named("alice")
                    .dns("api.example.org")
                    .ip("11.0.0.1")
                    .uri("spiffe://td/dev/web"),
                false,
            ),
        ],
    );
    // No rules at all match nothing (a policy without identity rules never
    // consults them, see `decide_without_identity_rules`).
    assert!(!IdentityRules::default()
        .matches(&Cert::named("alice").identity())
        .unwrap());
}

// ---------------------------------------------------------------------------
// Policy::decide

#[test]
fn reason_tokens() {
    let tokens = [
        (Reason::NoCert, "no_cert"),
        (Reason::Unverified, "unverified"),
        (Reason::BadCert, "bad_cert"),
        (Reason::SerialDenied, "serial_denied"),
        (Reason::Revoked, "revoked"),
        (Reason::CrlMissing, "crl_missing"),
        (Reason::CrlStale, "crl_stale"),
        (Reason::DenyListMissing, "deny_list_missing"),
        (Reason::Issuer, "issuer"),
        (Reason::NotAllowed, "not_allowed"),
        (Reason::OcspUnavailable, "ocsp_unavailable"),
        (Reason::OcspUnknown, "ocsp_unknown"),
    ];
    for (reason, token) in tokens {
        assert_eq!(reason.as_str(), token);
    }
    // `ALL` lists every reason once, in the order they are checked.
    assert_eq!(Reason::ALL.map(Reason::as_str), tokens.map(|(_, t)| t));
}

fn full_policy() -> Policy {
    Policy {
        identity: identity(cn_rules(&["alice"])),
        issuers: issuers(&[CA1]),
        deny_serials: deny_serials(&["1A:2B:3C"]),
        ..Policy::default()
    }
}

#[test]
fn decide_connection_states_come_first() {
    let consulted = Cell::new(false);
    let revocation = |_: &Identity| {
        consulted.set(true);
        Err(Reason::Revoked)
    };
    for policy in [Policy::default(), full_policy()] {
        let cases = [
            (Peer::NoCert, Reason::NoCert),
            (Peer::Unverified, Reason::Unverified),
            (Peer::Unreadable, Reason::BadCert),
        ];
        for (peer, reason) in cases {
            assert_eq!(policy.decide(&peer, revocation), Err(reason));
        }
    }
    assert!(!consulted.get());
}

/// Without rules a verified certificate passes unread; each family of
/// rules reads only the parts of the certificate it looks at.
#[test]
fn decide_reads_only_what_the_rules_need() {
    // One certificate: signing it again would change its fingerprint.
    let der = Cert::named("alice").dns("alice.example.org").der();
    let parts = |policy: &Policy| {
        let id = Identity::from_der(&der).unwrap();
        assert_eq!(policy.decide(&Peer::Verified(&id), |_| Ok(())), Ok(()));
        id.parts_read()
    };
    let no_parts: [&str; 0] = [];
    assert_eq!(parts(&Policy::default()), no_parts);
    let with = |rules: IdentityRules| Policy {
        identity: identity(rules),
        ..Policy::default()
    };
    assert_eq!(parts(&with(cn_rules(&["alice"]))), ["cn"]);
    assert_eq!(parts(&with(dn_rules(&["CN=alice,O=Example"]))), ["subject"]);
    assert_eq!(
        parts(&with(san_rules(&["dns:alice.example.org"]))),
        ["sans"]
    );
    let fingerprint = lower_hex(&openssl::sha::sha256(&der));
    let pinned = fingerprint_rules(&[&format!("sha256:{fingerprint}")]);
    assert_eq!(parts(&with(pinned)), ["fingerprint"]);
    // Rules are tried until one matches: a matching CN reads no SANs.
    let mut either = cn_rules(&["alice"]);
    either.add_san(SanRule::parse("dns:other.example.org").unwrap());
    assert_eq!(parts(&with(either)), ["cn"]);
    let mut spiffe = cn_rules(&["bob"]);
    spiffe.add_spiffe(SpiffePattern::parse("spiffe://td/*").unwrap());
    let spiffe = Policy {
        identity: identity(spiffe),
        ..Policy::default()
    };
    let id = Identity::from_der(&der).unwrap();
    let denied = spiffe.decide(&Peer::Verified(&id), |_| Ok(()));
    assert_eq!(denied, Err(Reason::NotAllowed));
    assert_eq!(id.parts_read(), ["cn", "sans", "spiffe_id"]);
    let serials = Policy {
        deny_serials: deny_serials(&["1A:2B:3C"]),
        ..Policy::default()
    };
    assert_eq!(parts(&serials), ["serial"]);
    let issuers = Policy {
        issuers: issuers(&[CA1]),
        ..Policy::default()
    };
    assert_eq!(parts(&issuers), ["issuer"]);
}

/// A part the module cannot read fails only the checks that need it: a
/// rule that looks at it finds no match, which is `bad_cert` unless another
/// rule matches a part that can be read.
#[test]
fn decide_unreadable_part_is_bad_cert_where_needed() {
    // A DNS SAN whose length runs past the extension.
    let id = Cert::named("alice")
        .extension("2.5.29.17", b"\x30\x03\x82\x05a")
        .identity();
    assert!(id.sans().is_err());
    let decide = |policy: &Policy| policy.decide(&Peer::Verified(&id), |_| Ok(()));
    let with = |rules: IdentityRules| Policy {
        identity: identity(rules),
        ..Policy::default()
    };
    assert_eq!(decide(&with(san_rules(&["dns:a"]))), Err(Reason::BadCert));
    let spiffe = spiffe_rules(&["spiffe://td/*"]);
    assert_eq!(spiffe.matches(&id), Err(Unread));
    assert_eq!(decide(&with(spiffe)), Err(Reason::BadCert));
    // Other rules read other parts.
    assert_eq!(decide(&with(cn_rules(&["alice"]))), Ok(()));
    assert_eq!(decide(&with(cn_rules(&["bob"]))), Err(Reason::NotAllowed));
    let mut cn_or_san = cn_rules(&["alice"]);
    cn_or_san.add_san(SanRule::parse("dns:a").unwrap());
    assert_eq!(decide(&with(cn_or_san)), Ok(()));
    let mut other_cn_or_san = cn_rules(&["bob"]);
    other_cn_or_san.add_san(SanRule::parse("dns:a").unwrap());
    assert_eq!(decide(&with(other_cn_or_san)), Err(Reason::BadCert));
    assert_eq!(decide(&full_policy()), Ok(()));
}

#[test]
fn decide_revocation_between_serial_and_issuer() {
    let policy = full_policy();
    let consulted = Cell::new(None);
    let revoked = |id: &Identity| {
        consulted.set(Some(id.serial().unwrap().clone()));
        Err(Reason::Revoked)
    };
    // A denied serial is denied before the revocation sources are asked.
    let denied = Cert::named("alice").serial("1A2B3C").identity();
    assert_eq!(
        policy.decide(&Peer::Verified(&denied), revoked),
        Err(Reason::SerialDenied)
    );
    assert_eq!(consulted.take(), None);
    // Revocation comes before the issuer and identity checks, and is asked
    // about the certificate being decided.
    let stranger = Cert::named("bob")
        .issuer(&[("CN", "Elsewhere")])
        .serial("0BAD")
        .identity();
    assert_eq!(
        policy.decide(&Peer::Verified(&stranger), revoked),
        Err(Reason::Revoked)
    );
    assert_eq!(consulted.take(), Some(Serial::parse("BAD").unwrap()));
    for reason in [
        Reason::CrlMissing,
        Reason::CrlStale,
        Reason::DenyListMissing,
    ] {
        assert_eq!(
            policy.decide(&Peer::Verified(&stranger), |_| Err(reason)),
            Err(reason)
        );
    }
    // A certificate the sources let through goes on to the other checks.
    let passes = |id: &Identity| {
        consulted.set(Some(id.serial().unwrap().clone()));
        Ok(())
    };
    assert_eq!(
        policy.decide(&Peer::Verified(&stranger), passes),
        Err(Reason::Issuer)
    );
    let bob = Cert::named("bob").identity();
    assert_eq!(
        policy.decide(&Peer::Verified(&bob), passes),
        Err(Reason::NotAllowed)
    );
    let alice = Cert::named("alice").identity();
    assert_eq!(policy.decide(&Peer::Verified(&alice), passes), Ok(()));
    assert_eq!(consulted.take(), Some(Serial::parse("01").unwrap()));
}

#[test]
fn decide_deny_serial_wins() {
    let policy = full_policy();
    let alice = Cert::named("alice");
    assert_eq!(decide(&policy, &alice), Ok(()));
    let denied = Cert::named("alice").serial("1A2B3C");
    assert_eq!(decide(&policy, &denied), Err(Reason::SerialDenied));
    // Before the issuer check too.
    let denied_elsewhere = denied.issuer(&[("CN", "Elsewhere")]);
    assert_eq!(
        decide(&policy, &denied_elsewhere),
        Err(Reason::SerialDenied)
    );
    // Deny alone, any form of the number.
    for form in ["1a2b3c", "00:1A:2B:3C", "0001a2b3c"] {
        let only_deny = Policy {
            deny_serials: deny_serials(&[form]),
            ..Policy::default()
        };
        assert_eq!(
            decide(&only_deny, &Cert::named("x").serial("1A2B3C")),
            Err(Reason::SerialDenied),
            "{form}"
        );
        assert_eq!(
            decide(&only_deny, &Cert::named("x").serial("1A2B3D")),
            Ok(())
        );
    }
    // A serial with its top bit set has a leading zero byte in DER.
    let high = Policy {
        deny_serials: deny_serials(&["80:01"]),
        ..full_policy()
    };
    let cert = Cert::named("alice").serial("8001");
    assert_eq!(
        cert.identity().serial(),
        Ok(&Serial::parse("8001").unwrap())
    );
    assert_eq!(decide(&high, &cert), Err(Reason::SerialDenied));
    assert_eq!(decide(&high, &Cert::named("alice").serial("01")), Ok(()));
}

#[test]
fn decide_issuer_before_identity() {
    let policy = full_policy();
    let partner = [("O", "Partner"), ("CN", "Partner CA")];
    // The right CN from the wrong CA.
    let alice_partner = Cert::named("alice").issuer(&partner);
    assert_eq!(decide(&policy, &alice_partner), Err(Reason::Issuer));
    // Neither issuer nor identity: the issuer is named.
    let bob_partner = Cert::named("bob").issuer(&partner);
    assert_eq!(decide(&policy, &bob_partner), Err(Reason::Issuer));
    // The right issuer, a wrong identity.
    assert_eq!(
        decide(&policy, &Cert::named("bob")),
        Err(Reason::NotAllowed)
    );
    // Issuers compare structurally: RDN order matters.
    let reversed = Cert::named("alice").issuer(&[("CN", "Clients CA"), ("O", "Example")]);
    assert_eq!(decide(&policy, &reversed), Err(Reason::Issuer));
    // Several issuers, either one.
    let both = Policy {
        issuers: issuers(&[CA1, CA2]),
        ..full_policy()
    };
    assert_eq!(decide(&both, &alice_partner), Ok(()));
    assert_eq!(decide(&both, &Cert::named("alice")), Ok(()));
    assert_eq!(decide(&both, &bob_partner), Err(Reason::NotAllowed));
}

#[test]
fn decide_without_identity_rules() {
    let verified = Cert::named("anyone").dns("x.example");
    assert_eq!(decide(&Policy::default(), &verified), Ok(()));
    let issuer_only = Policy {
        issuers: issuers(&[CA1]),
        ..Policy::default()
    };
    assert_eq!(decide(&issuer_only, &verified), Ok(()));
    let elsewhere = Cert::named("anyone").issuer(&[("CN", "Elsewhere")]);
    assert_eq!(decide(&issuer_only, &elsewhere), Err(Reason::Issuer));
    let deny_only = Policy {
        deny_serials: deny_serials(&["99"]),
        ..Policy::default()
    };
    assert_eq!(decide(&deny_only, &elsewhere), Ok(()));
    // Identity rules that are set but empty admit no one.
    let empty = Policy {
        identity: identity(IdentityRules::default()),
        ..Policy::default()
    };
    assert_eq!(decide(&empty, &verified), Err(Reason::NotAllowed));
}

/// One policy for each family of rules, with only that family set.
fn one_family_each() -> Vec<Policy> {
    let sources: Arc<[usize]> = Arc::from([0]);
    vec![
        Policy {
            identity: identity(IdentityRules::default()),
            ..Policy::default()
        },
        Policy {
            issuers: issuers(&[CA1]),
            ..Policy::default()
        },
        Policy {
            deny_serials: deny_serials(&["01"]),
            ..Policy::default()
        },
        Policy {
            crls: Some(sources.clone()),
            ..Policy::default()
        },
        Policy {
            deny_lists: Some(sources),
            ..Policy::default()
        },
    ]
}

#[test]
fn has_rules_per_family() {
    assert!(!Policy::default().has_rules());
    assert!(full_policy().has_rules());
    for policy in one_family_each() {
        assert!(policy.has_rules());
    }
}

// ---------------------------------------------------------------------------
// Policy::inherit

#[test]
fn inherit_identity_rules_replace_the_parents() {
    let parent = full_policy();
    let mut child = Policy {
        identity: identity(cn_rules(&["bob"])),
        ..Policy::default()
    };
    child.inherit(&parent);
    assert_eq!(
        decide(&child, &Cert::named("alice")),
        Err(Reason::NotAllowed)
    );
    assert_eq!(decide(&child, &Cert::named("bob")), Ok(()));
    // The families the child does not set still come from the parent.
    assert_eq!(
        decide(&child, &Cert::named("bob").serial("1a2b3c")),
        Err(Reason::SerialDenied)
    );
    assert_eq!(
        decide(&child, &Cert::named("bob").issuer(&[("CN", "Elsewhere")])),
        Err(Reason::Issuer)
    );
    // Another family of identity rule replaces the parent's too.
    let mut by_san = Policy {
        identity: identity(san_rules(&["dns:*.example.com"])),
        ..Policy::default()
    };
    by_san.inherit(&parent);
    assert_eq!(
        decide(&by_san, &Cert::named("alice")),
        Err(Reason::NotAllowed)
    );
    assert_eq!(
        decide(&by_san, &Cert::named("bob").dns("b.example.com")),
        Ok(())
    );
}

#[test]
fn inherit_issuers_only_keeps_the_parents_identity_rules() {
    let parent = full_policy();
    let mut child = Policy {
        issuers: issuers(&[CA2]),
        ..Policy::default()
    };
    child.inherit(&parent);
    let partner = [("O", "Partner"), ("CN", "Partner CA")];
    assert_eq!(
        decide(&child, &Cert::named("alice").issuer(&partner)),
        Ok(())
    );
    assert_eq!(
        decide(&child, &Cert::named("bob").issuer(&partner)),
        Err(Reason::NotAllowed)
    );
    // The parent's issuer is replaced, not added to.
    assert_eq!(decide(&child, &Cert::named("alice")), Err(Reason::Issuer));
    assert_eq!(
        decide(
            &child,
            &Cert::named("alice").issuer(&partner).serial("1A2B3C")
        ),
        Err(Reason::SerialDenied)
    );
    // The child shares the parent's rule sets rather than copying them.
    assert!(Arc::ptr_eq(
        child.identity.as_ref().unwrap(),
        parent.identity.as_ref().unwrap()
    ));
}

#[test]
fn inherit_deny_serials_replace_and_chain() {
    let http = full_policy();
    let mut server = Policy {
        deny_serials: deny_serials(&["02"]),
        ..Policy::default()
    };
    server.inherit(&http);
    assert_eq!(
        decide(&server, &Cert::named("alice").serial("1A2B3C")),
        Ok(())
    );
    assert_eq!(
        decide(&server, &Cert::named("alice").serial("02")),
        Err(Reason::SerialDenied)
    );
    // A location with nothing of its own takes everything, through the
    // server, from http.
    let mut location = Policy::default();
    location.inherit(&server);
    assert!(location.has_rules());
    assert_eq!(
        decide(&location, &Cert::named("alice").serial("02")),
        Err(Reason::SerialDenied)
    );
    assert_eq!(
        decide(&location, &Cert::named("alice").serial("1A2B3C")),
        Ok(())
    );
    assert_eq!(
        decide(&location, &Cert::named("bob")),
        Err(Reason::NotAllowed)
    );
    assert_eq!(
        decide(&location, &Cert::named("alice").issuer(&[("CN", "x")])),
        Err(Reason::Issuer)
    );
    // Nothing anywhere: nothing inherited.
    let mut bare = Policy::default();
    bare.inherit(&Policy::default());
    assert!(!bare.has_rules());
}

// ---------------------------------------------------------------------------
// Scale

#[test]
fn hundred_thousand_cns() {
    let mut rules = IdentityRules::default();
    for i in 0..100_000 {
        rules.add_cn(&format!("user-{i}"));
    }
    check(
        &rules,
        &[
            (&Cert::named("user-0"), true),
            (&Cert::named("user-50000"), true),
            (&Cert::named("user-99999"), true),
            (&Cert::named("user-100000"), false),
            (&Cert::named("user-"), false),
            (&Cert::named("User-1"), false),
            (&Cert::named("user-1 "), false),
            (&Cert::named("user-01"), false),
            // Two CNs that are both allowed still do not match.
            (&Cert::named("user-1").rdn("CN", "user-2"), false),
        ],
    );
    let policy = Policy {
        identity: identity(rules),
        issuers: issuers(&[CA1]),
        deny_serials: deny_serials(&["77"]),
        ..Policy::default()
    };
    assert_eq!(decide(&policy, &Cert::named("user-12345")), Ok(()));
    assert_eq!(
        decide(&policy, &Cert::named("user-123456")),
        Err(Reason::NotAllowed)
    );
    assert_eq!(
        decide(&policy, &Cert::named("user-12345").serial("77")),
        Err(Reason::SerialDenied)
    );
}
