//! The revocation step of the decision: the certificate against the deny
//! lists and CRLs in effect, read from the tables in shared memory.

use ngx::ffi::ngx_log_t;
use ngx::log::DebugMask;
use ngx::ngx_log_debug;

use crate::conf::{LocConf, MainConf, CDP_OFF, CDP_OPTIONAL};
use crate::identity::Identity;
use crate::policy::Reason;
use crate::revocation::{rebuild_chain, Key, Scope};
use crate::state::Shared;
use crate::tls::Chain;

use super::cdp;

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
    // Distribution points are read wherever the configuration discovers
    // CRLs, so that the links made once per connection hold them.
    let read_cdp = mcf.cdp.used.is_some();
    let leaf = chain.leaf(id.cert(), read_cdp).ok_or(unreadable)?;
    // The serial's key in deny lists: one hash, made for each decision
    // that looks at a deny list of serials.
    let mut serial_key = None;
    // What each source said, at debug level only.
    let consulted = |i: usize, what: &dyn core::fmt::Display| {
        ngx_log_debug!(
            mask: DebugMask::Http,
            log,
            "mtls: {} \"{}\", generation {}{}: {what}",
            mcf.sources.get(i).map_or("mtls_crl_cdp", |s| s.kind.directive()),
            mcf.source_label(i).unwrap_or_default(),
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
        chain.ca_links(leaf, read_cdp, |leaf| {
            rebuild_chain(leaf, &mcf.cas, read_cdp)
        })
    } else {
        &[]
    };
    // The discovered sources of each link's own distribution points, looked
    // up (and the unknown ones asked for) for the whole chain at once, so
    // that the loader fetches them all while this request is denied.
    let discovered: Vec<Vec<usize>> = if lcf.crl_cdp != CDP_OFF {
        std::iter::once(leaf)
            .chain(cas)
            .map(|link| {
                link.cdp
                    .iter()
                    .filter_map(|url| cdp::source(mcf, url, log))
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    // Discovered sources looked at beyond the links' own.
    let mut others: Vec<usize> = Vec::new();
    // `mtls_crl_cdp optional` warns once per connection: while a CRL is
    // being fetched, each request of a keep-alive, HTTP/2 or HTTP/3
    // connection is decided again, and would write the same line.
    let warn_without_crl = !chain.warned_without_crl();
    for (n, link) in std::iter::once(leaf).chain(cas).enumerate() {
        let mut covered = None;
        let role = if link.is_ca {
            "a CA of the chain"
        } else {
            "the leaf"
        };
        let serial = &link.serial;
        let mut visit = |i: usize| -> Result<bool, Failure> {
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
                Some(Err(failure)) => Err(failure),
                Some(Ok(fresh_until)) => {
                    until = until.min(fresh_until);
                    Ok(true)
                }
                None => Ok(false),
            }
        };
        // The configured CRLs first, then those of the link's own
        // distribution points; where none of them is its issuer's, any
        // other discovered CRL that is (one named by another certificate
        // of the same issuer).
        let cdp_slots = discovered.get(n).map_or(&[][..], Vec::as_slice);
        for &i in crls.iter().chain(cdp_slots) {
            if visit(i)? {
                covered = Some(i);
            }
        }
        if covered.is_none() && lcf.crl_cdp != CDP_OFF {
            for i in cdp::all_sources(mcf).filter(|i| !cdp_slots.contains(i)) {
                others.push(i);
                if visit(i)? {
                    covered = Some(i);
                }
            }
        }
        if covered.is_none() {
            if lcf.crl_cdp == CDP_OPTIONAL {
                cdp::passed_without_crl(link, cdp_slots, warn_without_crl, log);
                chain.set_warned_without_crl();
                continue;
            }
            return Err(Failure {
                reason: Reason::CrlMissing,
                source: cdp_slots.first().or(crls.first()).copied(),
            });
        }
    }
    Ok(reusable_until(
        shared,
        deny_lists
            .iter()
            .chain(crls)
            .chain(discovered.iter().flatten())
            .chain(&others),
        until,
    ))
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
