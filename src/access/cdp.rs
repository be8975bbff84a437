//! The worker's side of CRL discovery: which discovered source holds the
//! CRL of a distribution point, and asking the loader for a URL it does
//! not know yet. A worker reads distribution points once per connection
//! (with the chain's links), never fetches anything itself, and asks for
//! each URL once: the loader takes it on within a moment, or refuses it
//! for good.

use std::cell::RefCell;
use std::collections::HashSet;

use ngx::ffi::{ngx_log_t, NGX_LOG_WARN};
use ngx::log::DebugMask;
use ngx::ngx_log_debug;

use crate::conf::MainConf;
use crate::revocation::cdp::CdpUrl;
use crate::revocation::Link;

/// How many URLs a worker remembers having asked for, or warned about;
/// past it, it forgets them all and may ask (or warn) once more.
const REMEMBERED: usize = 1024;

thread_local! {
    static ASKED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    static WARNED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// The shared slot of the CRL discovered from `url`, once the loader has
/// taken it on; `None` before, and for a URL that is never fetched.
pub fn source(mcf: &MainConf, url: &CdpUrl, log: *mut ngx_log_t) -> Option<usize> {
    let registry = mcf.cdp.registry.as_ref()?;
    if let Some(e) = url.error {
        warn_once(url, &e.to_string(), log);
        return None;
    }
    if let Some(j) = registry.find(&url.url, url.hash) {
        return Some(mcf.cdp.base + j);
    }
    if mcf.cdp.allows(&url.url).is_none() {
        warn_once(url, "is under no \"mtls_crl_cdp_allow\" prefix", log);
        return None;
    }
    let first = ASKED.with(|asked| !asked.borrow().contains(&url.url));
    if first && registry.push(&url.url) {
        ASKED.with(|asked| remember(&mut asked.borrow_mut(), &url.url));
    }
    None
}

/// The shared slots of every discovered source.
pub fn all_sources(mcf: &MainConf) -> impl Iterator<Item = usize> + '_ {
    let count = mcf.cdp.registry.as_ref().map_or(0, |r| r.len());
    (0..count).map(|j| mcf.cdp.base + j)
}

fn remember(set: &mut HashSet<String>, url: &str) {
    if set.len() >= REMEMBERED {
        set.clear();
    }
    set.insert(url.to_owned());
}

/// Once per URL and worker: a certificate names a URL that is not fetched.
fn warn_once(url: &CdpUrl, why: &str, log: *mut ngx_log_t) {
    let first = WARNED.with(|warned| {
        let mut warned = warned.borrow_mut();
        let first = !warned.contains(&url.url);
        if first {
            remember(&mut warned, &url.url);
        }
        first
    });
    if first {
        ngx::ngx_log_error!(
            NGX_LOG_WARN,
            log,
            "mtls: CRL distribution point \"{}\" {why}, not fetched",
            url.url
        );
    }
}

/// `mtls_crl_cdp optional`: the link passes without a CRL, with a
/// warning where `warn` (the connection's first such request), else at
/// debug level.
pub fn passed_without_crl(link: &Link, slots: &[usize], warn: bool, log: *mut ngx_log_t) {
    let role = if link.is_ca {
        "a CA of the chain"
    } else {
        "the leaf"
    };
    let pending = if slots.is_empty() {
        ", none of its distribution points is fetched yet"
    } else {
        ""
    };
    if warn {
        ngx::ngx_log_error!(
            NGX_LOG_WARN,
            log,
            "mtls: no CRL in force for the issuer of {role} (serial {}){pending}, passed by \"mtls_crl_cdp optional\"",
            link.serial,
        );
    } else {
        ngx_log_debug!(
            mask: DebugMask::Http,
            log,
            "mtls: no CRL in force for the issuer of {role} (serial {}){pending}, passed by \"mtls_crl_cdp optional\", warned on this connection before",
            link.serial,
        );
    }
}
