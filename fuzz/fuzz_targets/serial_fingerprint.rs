//! Serial numbers (`mtls_deny_serial`, deny lists) and fingerprints
//! (`mtls_allow_fingerprint`, deny lists) in their text forms: parsing
//! never panics; what parses prints in a form that parses back to the
//! same value; a serial has no leading zero byte, so every spelling of a
//! number is one serial.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::hex::lower_hex;
use ngx_http_mtls_module::identity::fingerprint::parse_fingerprint;
use ngx_http_mtls_module::identity::serial::Serial;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(serial) = Serial::parse(text) {
        assert_ne!(serial.as_bytes().first(), Some(&0));
        let printed = serial.to_string();
        assert_eq!(Serial::parse(&printed).as_ref(), Ok(&serial), "{printed}");
        assert_eq!(
            Serial::parse(&format!("00:{printed}")).as_ref(),
            Ok(&serial)
        );
        assert_eq!(
            Serial::from_der_content(&[&[0][..], serial.as_bytes()].concat()),
            serial
        );
    }
    if let Ok(fingerprint) = parse_fingerprint(text) {
        let printed = format!("sha256:{}", lower_hex(&fingerprint));
        assert_eq!(parse_fingerprint(&printed), Ok(fingerprint));
        assert_eq!(parse_fingerprint(&printed.to_uppercase()), Ok(fingerprint));
    }
});
