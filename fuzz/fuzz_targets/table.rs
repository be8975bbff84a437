//! Revocation tables read from `/dev/shm` files: `Table::open` and
//! `Table::new` on any bytes never panic nor read out of bounds (the
//! target runs under AddressSanitizer), nor do look-ups in what they
//! accept. A table `Table::new` accepts also opens, and finds each of its
//! issuer records by key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::revocation::Table;

fuzz_target!(|data: &[u8]| {
    let checked = Table::new(data);
    let Ok(table) = Table::open(data) else {
        assert!(checked.is_err(), "new accepts what open refuses");
        return;
    };
    // Keys to probe, from the input's last bytes.
    let mut key = [0u8; 32];
    let tail = &data[data.len().saturating_sub(32)..];
    key[..tail.len()].copy_from_slice(tail);
    table.is_revoked(&key, &key[..data.len() % 21]);
    table.denies_serial(&key[..data.len() % 21]);
    table.denies_fingerprint(&key);
    table.issuer(&key);
    let issuers: Vec<_> = table.issuers().collect();
    assert!(table.len() <= data.len() / 16);
    if checked.is_ok() {
        for info in &issuers {
            assert_eq!(table.issuer(&info.key), Some(*info));
        }
    }
});
