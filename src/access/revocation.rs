//! The revocation step of the decision: the certificate against the deny
//! lists and CRLs in effect, read from the tables in shared memory.

use ngx::ffi::ngx_log_t;
use ngx::log::DebugMask;
use ngx::ngx_log_debug;

use crate::conf::{LocConf, MainConf};
use crate::identity::Identity;
use crate::policy::Reason;
use crate::revocation::{rebuild_chain, Key, Scope};
use crate::state::Shared;
use crate::tls::Chain;

/// A revocation step that failed, and the source that decided it.
#[derive(Clone, Copy)]
pub struct Failure {
    pub reason: Reason,
    pub source: Option<usize>,
}

impl Failure {
    fn by(reason: Reason, source: usize) -> Failure {
        Failure {
            reason,
            source: Some(source),
        }
    }
}

/// Passes with the time until which the result may be reused on the
/// connection: the first nextUpdate plus grace of the CRLs it relied on
/// (`i64::MAX` where none applied), or `i64::MIN` where a table looked at
/// was not the current one.
pub fn check(
    mcf: &MainConf,
    lcf: &LocConf,
    id: &Identity,
    chain: &Chain,
    now: i64,
    log: *mut ngx_log_t,
) -> Result<i64, Failure> {
    let mut until = i64::MAX;
    let Some(shared) = &mcf.shared else {
        // Sources exist only with shared memory; none, nothing to check.
        return Ok(until);
    };
    let deny_lists = lcf.policy.deny_lists.as_deref().unwrap_or_default();
    let crls = lcf.policy.crls.as_deref();
    if deny_lists.is_empty() && crls.is_none() {
        return Ok(until);
    }
    let unreadable = Failure {
        reason: Reason::BadCert,
        source: None,
    };
    let leaf = chain.leaf(id.cert()).ok_or(unreadable)?;
    // The serial's key in deny lists: one hash, made for each decision
    // that looks at a deny list of serials.
    let mut serial_key = None;
    // What each source said, at debug level only.
    let consulted = |i: usize, what: &dyn core::fmt::Display| {
        ngx_log_debug!(
            mask: DebugMask::Http,
            log,
            "mtls: {} \"{}\", generation {}{}: {what}",
            mcf.sources[i].kind.directive(),
            mcf.sources[i].path.display(),
            shared.slot(i).generation(),
            if shared.maps_current(i) { "" } else { " (this worker maps an older one)" }
        );
    };
    for &i in deny_lists {
        let result = shared.with_table(i, |table| {
            let Some(t) = table else {
                return Err(Failure::by(Reason::DenyListMissing, i));
            };
            if t.holds_serials()
                && t.holds(*serial_key.get_or_insert_with(|| Key::serial(leaf.serial.as_bytes())))
            {
                return Err(Failure::by(Reason::Revoked, i));
            }
            // A deny list of serials only needs no fingerprint.
            if t.holds_fingerprints()
                && t.holds(Key::fingerprint(id.fingerprint().map_err(|_| unreadable)?))
            {
                return Err(Failure::by(Reason::Revoked, i));
            }
            Ok(())
        });
        consulted(
            i,
            &format_args!(
                "serial {}: {}",
                leaf.serial,
                result
                    .as_ref()
                    .map_or_else(|f| f.reason.as_str(), |()| "not listed")
            ),
        );
        result?;
    }
    let Some(crls) = crls else {
        return Ok(reusable_until(shared, deny_lists.iter(), until));
    };
    let cas = if lcf.crl_chain != 0 {
        chain.ca_links(leaf, |leaf| rebuild_chain(leaf, &mcf.cas))
    } else {
        &[]
    };
    for link in std::iter::once(leaf).chain(cas) {
        let mut covered = None;
        for &i in crls {
            let verdict = shared.with_table(i, |table| {
                let info = table.as_ref()?.issuer(&link.issuer_key)?;
                let applies = match info.scope {
                    Scope::All => true,
                    Scope::EndEntity => !link.is_ca,
                    Scope::Ca => link.is_ca,
                };
                if !applies {
                    return None;
                }
                let fresh_until = info.next_update.saturating_add(lcf.crl_grace);
                Some(if now > fresh_until {
                    Err(Failure::by(Reason::CrlStale, i))
                } else if table.as_ref()?.holds(link.crl_key) {
                    Err(Failure::by(Reason::Revoked, i))
                } else {
                    Ok(fresh_until)
                })
            });
            let role = if link.is_ca {
                "a CA of the chain"
            } else {
                "the leaf"
            };
            let serial = &link.serial;
            match &verdict {
                None => consulted(
                    i,
                    &format_args!("no CRL for the issuer of {role} (serial {serial})"),
                ),
                Some(Ok(until)) => consulted(
                    i,
                    &format_args!("{role} (serial {serial}) not revoked, fresh until {until}"),
                ),
                Some(Err(f)) => consulted(
                    i,
                    &format_args!("{role} (serial {serial}): {}", f.reason.as_str()),
                ),
            }
            match verdict {
                Some(Err(failure)) => return Err(failure),
                Some(Ok(fresh_until)) => {
                    covered = Some(i);
                    until = until.min(fresh_until);
                }
                None => {}
            }
        }
        if covered.is_none() {
            return Err(Failure {
                reason: Reason::CrlMissing,
                source: crls.first().copied(),
            });
        }
    }
    Ok(reusable_until(shared, deny_lists.iter().chain(crls), until))
}

/// `until`, where every table looked at was the current one; otherwise a
/// time already past, so that the next request looks again. (A worker keeps
/// the previous table where it could not map a newer one.)
fn reusable_until<'a>(
    shared: &Shared,
    mut sources: impl Iterator<Item = &'a usize>,
    until: i64,
) -> i64 {
    if sources.all(|&i| shared.maps_current(i)) {
        until
    } else {
        i64::MIN
    }
}
