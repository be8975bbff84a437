//! The CRL loader (`mtls_crl`), on any file (see
//! `ngx_http_mtls_module_fuzz::crl_input` for the input's flag byte, which
//! lets mutated CRLs be signed again and reach the entries): it never
//! panics; a file it accepts yields a table that `Table::new` accepts, with
//! one issuer record per CRL, and revoking every serial the CRL lists
//! (but for entries with reason removeFromCRL, a hold lifted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::revocation::{issuer_key, Kind, Table};
use ngx_http_mtls_module_fuzz::{crl_input, resign};
use x509_parser::prelude::{FromDer, ParsedExtension, ReasonCode};
use x509_parser::revocation_list::CertificateRevocationList;

fuzz_target!(|data: &[u8]| {
    let Some(Ok(loaded)) = crl_input(data) else {
        return;
    };
    let table = Table::new(&loaded.table).expect("loader wrote a bad table");
    assert_eq!(table.kind(), Kind::Crl);
    assert_eq!(table.issuers().count(), loaded.crls.len());
    for crl in &loaded.crls {
        assert_eq!(table.issuer(&crl.info.key), Some(crl.info));
    }
    // A file of one signed-again DER CRL: check its entries.
    if data[0] & 3 != 1 {
        return;
    }
    let der = resign(&data[1..]).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    let key = issuer_key(crl.issuer().as_raw());
    let mut listed = 0;
    for revoked in crl.iter_revoked_certificates() {
        let lifted = revoked.extensions().iter().any(|ext| {
            matches!(
                ext.parsed_extension(),
                ParsedExtension::ReasonCode(ReasonCode::RemoveFromCRL)
            )
        });
        if !lifted {
            listed += 1;
            assert!(table.is_revoked(&key, revoked.raw_serial()));
        }
    }
    assert_eq!(loaded.crls[0].info.entries, listed);
});
