//! The deny-list loader (`mtls_deny_list`), on any file: it never panics;
//! a file it accepts yields a table that `Table::new` accepts, of the
//! distinct entries it counted, and denying the entry of every line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::identity::fingerprint::parse_fingerprint;
use ngx_http_mtls_module::identity::serial::Serial;
use ngx_http_mtls_module::revocation::{denylist, Kind, Table};

fuzz_target!(|data: &[u8]| {
    let Ok(loaded) = denylist::parse(data, "fuzz") else {
        return;
    };
    let table = Table::new(&loaded.table).expect("loader wrote a bad table");
    assert_eq!(table.kind(), Kind::DenyList);
    assert_eq!(table.len(), loaded.entries());
    // Accepted, so each line is blank, a comment, or one entry followed by
    // nothing but whitespace and a comment.
    let text = std::str::from_utf8(data).unwrap();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for line in text.split('\n') {
        let Some(entry) = line.split_whitespace().next() else {
            continue;
        };
        if entry.starts_with('#') {
            continue;
        }
        match parse_fingerprint(entry) {
            Ok(fingerprint) => assert!(table.denies_fingerprint(&fingerprint), "{entry}"),
            Err(_) => {
                let serial = Serial::parse(entry).unwrap();
                assert!(table.denies_serial(serial.as_bytes()), "{entry}");
            }
        }
    }
});
