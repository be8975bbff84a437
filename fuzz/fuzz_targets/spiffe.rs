//! SPIFFE IDs and `mtls_allow_spiffe` patterns. The input is a pattern, a
//! newline, then a certificate's SPIFFE ID. Parsing never panics; an ID's
//! ancestors are valid IDs; an exact pattern matches only its own ID, and
//! `ID/*` matches exactly the IDs that start with `ID/`, segment-wise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_mtls_module::identity::spiffe::{SpiffeId, SpiffePattern};
use ngx_http_mtls_module::policy::IdentityRules;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern_text, id_text) = text.split_once('\n').unwrap_or((text, ""));
    let pattern = SpiffePattern::parse(pattern_text);
    let Ok(id) = SpiffeId::parse(id_text) else {
        return;
    };
    assert_eq!(id.as_str(), id_text);
    let mut previous = "";
    for ancestor in id.ancestors() {
        assert!(ancestor.len() > previous.len() && id_text.starts_with(ancestor));
        assert_eq!(
            SpiffeId::parse(ancestor).map(|a| a.as_str().len()),
            Ok(ancestor.len())
        );
        previous = ancestor;
    }
    let Ok(pattern) = pattern else {
        return;
    };
    let expected = match &pattern {
        SpiffePattern::Exact(exact) => exact == &id,
        SpiffePattern::Below(parent) => id_text
            .strip_prefix(parent.as_str())
            .is_some_and(|rest| rest.starts_with('/')),
    };
    let mut rules = IdentityRules::default();
    rules.add_spiffe(pattern);
    assert_eq!(rules.matches_spiffe(&id), expected, "{text:?}");
});
