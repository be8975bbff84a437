//! The RFC 4514 parser of `mtls_allow_dn` and `mtls_issuer`, on any text:
//! it never panics, and a DN it accepts prints as printable ASCII that
//! parses back to the same DN and prints the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::identity::dn::{escape_value, AvaValue, Dn};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dn) = Dn::parse(text) else {
        return;
    };
    let printed = dn.to_rfc4514();
    assert!(
        printed.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "{printed:?}"
    );
    let again = Dn::parse(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
    assert_eq!(again, dn, "{printed:?}");
    assert_eq!(again.to_rfc4514(), printed);
    for ava in dn.0.iter().flat_map(|rdn| &rdn.0) {
        if let AvaValue::Text(value) = &ava.value {
            let escaped = escape_value(value);
            assert!(escaped.bytes().all(|b| (0x20..0x7f).contains(&b)));
        }
    }
});
