//! The rule directives: `mtls_allow_*`, `mtls_issuer` and
//! `mtls_deny_serial`, each value parsed when the configuration is read.

use core::ffi::{c_char, c_void};
use std::sync::Arc;

use ngx::core::{NgxStr, NGX_CONF_OK};
use ngx::ffi::*;

use super::{args, invalid_value, mark_server_use, LocConf};
use crate::identity::dn::{Dn, DnError};
use crate::identity::fingerprint::{parse_fingerprint, FingerprintError};
use crate::identity::san::{SanError, SanRule};
use crate::identity::serial::{Serial, SerialError};
use crate::identity::spiffe::{SpiffeError, SpiffePattern};
use crate::policy::{IdentityRules, Policy};

/// The rule families that share [`set_rule`]; stored in the command's `post`.
#[derive(Clone, Copy)]
pub(super) enum Rule {
    Cn,
    Dn,
    San,
    Spiffe,
    Fingerprint,
    Issuer,
    DenySerial,
}

pub(super) extern "C" fn set_rule(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf` is
    // this module's LocConf and `post` one of the `Rule` statics above.
    let (lcf, rule, args) = unsafe {
        (
            &mut *conf.cast::<LocConf>(),
            *(*cmd).post.cast::<Rule>(),
            args(cf),
        )
    };
    // 1MORE guarantees at least one value after the name.
    for value in &args[1..] {
        // SAFETY: the argument is a valid ngx_str_t of the directive.
        let text = match unsafe { NgxStr::from_ngx_str(*value) }.to_str() {
            Ok(text) => text,
            Err(_) => return invalid_value(cf, &args[0], value, "not valid UTF-8"),
        };
        if let Err(reason) = add_rule(&mut lcf.policy, rule, text) {
            return invalid_value(cf, &args[0], value, reason);
        }
    }
    lcf.own_rules = true;
    // SAFETY: `cf` is the configuration being parsed.
    unsafe { mark_server_use(cf) };
    NGX_CONF_OK
}

/// Why a value of a rule directive is refused.
#[derive(Debug, thiserror::Error)]
enum RuleError {
    #[error("empty name")]
    EmptyName,
    #[error("control character in name")]
    ControlCharacter,
    #[error(transparent)]
    Dn(#[from] DnError),
    #[error(transparent)]
    San(#[from] SanError),
    #[error(transparent)]
    Spiffe(#[from] SpiffeError),
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    #[error(transparent)]
    Serial(#[from] SerialError),
}

/// Adds one value of a rule directive to the policy of this level.
fn add_rule(policy: &mut Policy, rule: Rule, text: &str) -> Result<(), RuleError> {
    fn identity(policy: &mut Policy) -> &mut IdentityRules {
        // Unique while the level is parsed: inheritance shares the rules
        // only at merge time, after every directive has been read.
        Arc::make_mut(policy.identity.get_or_insert_with(Default::default))
    }
    match rule {
        Rule::Cn if text.is_empty() => return Err(RuleError::EmptyName),
        // A certificate whose CN holds such a byte is an attack, never a name.
        Rule::Cn if text.chars().any(char::is_control) => return Err(RuleError::ControlCharacter),
        Rule::Cn => identity(policy).add_cn(text),
        Rule::Dn => identity(policy).add_dn(Dn::parse(text)?),
        Rule::San => identity(policy).add_san(SanRule::parse(text)?),
        Rule::Spiffe => identity(policy).add_spiffe(SpiffePattern::parse(text)?),
        Rule::Fingerprint => identity(policy).add_fingerprint(parse_fingerprint(text)?),
        Rule::Issuer => {
            let dn = Dn::parse(text)?;
            Arc::make_mut(policy.issuers.get_or_insert_with(Default::default)).insert(dn);
        }
        Rule::DenySerial => {
            let serial = Serial::parse(text)?;
            Arc::make_mut(policy.deny_serials.get_or_insert_with(Default::default)).insert(serial);
        }
    }
    Ok(())
}
