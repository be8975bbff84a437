//! Differential: the module's DER reader for names (`Dn::from_der`, and
//! `Dn::single_cn_from_der` for the CN a CN rule reads alone) against
//! x509-parser's reading, which it replaced, and OpenSSL's.
//!
//! - A name the module reads is one x509-parser reads the same.
//! - A name x509-parser reads and the module does not is one OpenSSL does
//!   not decode either: no certificate with it in gets through a handshake.
//!   (x509-parser ignores what follows a malformed RDN or attribute, and
//!   takes any primitive element for an attribute type.)
//! - The CN is readable exactly when the name is, and it is the name's one
//!   CN if that is text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::identity::dn::{AvaValue, Dn, OID_CN};
use openssl::x509::X509Name as OpensslName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

fuzz_target!(|data: &[u8]| {
    let ours = Dn::from_der(data);
    let cn = Dn::single_cn_from_der(data);
    assert_eq!(cn.is_some(), ours.is_some());
    if let (Some(dn), Some(cn)) = (&ours, &cn) {
        let mut cns = dn.values_of(OID_CN);
        let text = match (cns.next(), cns.next()) {
            (Some(AvaValue::Text(text)), None) => Some(text),
            _ => None,
        };
        assert_eq!(cn.as_ref(), text);
    }
    let theirs = match X509Name::from_der(data) {
        Ok(([], name)) => Some(Dn::from_x509(&name)),
        _ => None,
    };
    match (ours, theirs) {
        (Some(ours), theirs) => assert_eq!(Some(ours), theirs),
        (None, Some(theirs)) => assert!(!openssl_decodes(data), "{theirs:?}"),
        (None, None) => {}
    }
});

/// Whether OpenSSL decodes all of `data` as a Name.
fn openssl_decodes(data: &[u8]) -> bool {
    OpensslName::from_der(data)
        .ok()
        .and_then(|name| name.to_der().ok())
        .is_some_and(|der| der == data)
}
