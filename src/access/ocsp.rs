//! The OCSP step of the decision, after the CRLs and deny lists: each
//! checked certificate's answer from the shared cache. A certificate
//! without one is queued for the loader process, and the request waits
//! for the answer without blocking the worker: the access handler returns
//! `NGX_AGAIN`, and a timer on the request looks at the cache again every
//! few milliseconds and runs the request's phases anew (as `auth_request`
//! resumes a request when its subrequest ends). At `mtls_ocsp_timeout`,
//! `mtls_ocsp_fail hard` denies (`ocsp_unavailable`), `soft` passes with a
//! warning.

use core::ptr;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use ngx::ffi::*;
use ngx::http::Request;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef};
use openssl::x509::{X509Ref, X509};

use crate::conf::{LocConf, MainConf, OCSP_CHAIN};
use crate::identity::{x509, Identity};
use crate::ocsp::cache::{Counter, Query, State};
use crate::ocsp::{aia_url, cert_key, CertKey};
use crate::policy::Reason;

/// How often a waiting request looks at the cache.
const TICK_MS: ngx_msec_t = 10;

/// One certificate of a connection's chain, as OCSP asks about it.
struct Item {
    key: CertKey,
    cert: X509,
    issuer: X509,
}

/// The connection's certificates that OCSP may check, leaf first; an
/// `Err` where the issuer of one is not known (a resumed session whose
/// chain OpenSSL did not keep, with an issuer that is not among the
/// configured CA certificates).
struct Items(Vec<Result<Item, String>>);

/// What the step says for one request.
pub enum Step {
    /// Passes; the result may be reused on the connection until then.
    Pass(i64),
    Deny(Reason),
    /// The request waits: the timer is armed.
    Wait,
}

/// A waiting request's timer, in its pool.
#[repr(C)]
#[derive(Clone, Copy)]
struct WaitEvent {
    ev: ngx_event_t,
    r: *mut ngx_http_request_t,
}

/// A request that waits for answers.
struct Waiting {
    event: *mut WaitEvent,
    /// `ngx_current_msec` at which it stops waiting.
    deadline: ngx_msec_t,
    /// The keys it queued.
    queued: Vec<CertKey>,
}

thread_local! {
    /// The requests of this worker that wait, by address.
    static WAITING: RefCell<HashMap<usize, Waiting>> = RefCell::new(HashMap::new());
    /// Set while a response made before the access phase is decided in the
    /// header filter: that request cannot wait any more.
    static NO_WAIT: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Runs `f` with waiting ruled out: a certificate without a cached answer
/// is then unavailable at once (its look-up is still queued).
pub fn without_waiting<R>(f: impl FnOnce() -> R) -> R {
    NO_WAIT.with(|w| w.set(true));
    let result = f();
    NO_WAIT.with(|w| w.set(false));
    result
}

fn current_msec() -> ngx_msec_t {
    // SAFETY: read on the event loop's thread, which updates it.
    unsafe { ptr::read_volatile(ptr::addr_of!(ngx_current_msec)) }
}

/// The OCSP step for the verified certificate `id` of request `r`.
pub fn check(r: &Request, mcf: &MainConf, lcf: &LocConf, id: &Identity, now: i64) -> Step {
    if !lcf.ocsp.on() {
        return Step::Pass(i64::MAX);
    }
    let Some(cache) = mcf.ocsp.cache.as_deref() else {
        return Step::Deny(Reason::OcspUnavailable);
    };
    // SAFETY: the request's connection is live while the request is.
    let Some(items) = (unsafe { items(r.connection(), &mcf.cas) }) else {
        return Step::Deny(Reason::BadCert);
    };
    let count = if lcf.ocsp.mode == OCSP_CHAIN {
        items.0.len()
    } else {
        1
    };
    let rp = ptr::from_ref(r) as usize;
    let settings = &mcf.ocsp.settings;
    let mut until = i64::MAX;
    let mut wait = false;
    let mut failure: Option<String> = None;
    // One hit for a request decided from cached answers alone, however
    // many certificates it checks; a request that waits is a miss (counted
    // when it starts to wait), also on the run that resumes it.
    let resumed = WAITING.with(|w| w.borrow().contains_key(&rp));
    let mut cached = true;
    let hit = |cached: bool| {
        if cached && !resumed {
            cache.count(Counter::Hit);
        }
    };
    for item in items.0.iter().take(count) {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                cached = false;
                failure.get_or_insert_with(|| e.clone());
                continue;
            }
        };
        match cache.lookup(&item.key, now) {
            Some(e) if e.expires > now => match e.state {
                State::Good => {
                    until = until.min(e.expires).min(e.fetched + settings.refresh);
                }
                State::Revoked => {
                    hit(cached);
                    return finish(rp, Step::Deny(Reason::Revoked));
                }
                State::Unknown => {
                    hit(cached);
                    return finish(rp, Step::Deny(Reason::OcspUnknown));
                }
                State::Failed => {
                    until = until.min(e.expires);
                    failure.get_or_insert_with(|| {
                        "the last look-up failed (see the error log)".to_owned()
                    });
                }
            },
            _ => {
                cached = false;
                // Read only on a miss: most connections never need it.
                let url = match &lcf.ocsp.responder {
                    Some(url) => Some(url.to_string()),
                    None => aia_url(&item.cert),
                };
                let Some(url) = url else {
                    failure.get_or_insert_with(|| {
                        "the certificate names no OCSP responder, and \"mtls_ocsp_responder\" is not set"
                            .to_owned()
                    });
                    continue;
                };
                if NO_WAIT.with(core::cell::Cell::get) {
                    if let (Ok(cert), Ok(issuer)) = (item.cert.to_der(), item.issuer.to_der()) {
                        cache.push(&Query {
                            key: item.key,
                            cert,
                            issuer,
                            url,
                            timeout_ms: u32::try_from(lcf.ocsp.timeout).unwrap_or(u32::MAX),
                        });
                    }
                    failure.get_or_insert_with(|| {
                        "no answer cached, and a response made before the access phase cannot wait"
                            .to_owned()
                    });
                    continue;
                }
                match queue(r, rp, cache, item, &url, lcf.ocsp.timeout) {
                    Some(()) => wait = true,
                    None => {
                        failure.get_or_insert_with(|| {
                            format!(
                                "no answer from the OCSP responder in {} ms",
                                lcf.ocsp.timeout
                            )
                        });
                    }
                }
            }
        }
    }
    if wait {
        return Step::Wait;
    }
    hit(cached);
    let Some(failure) = failure else {
        return finish(rp, Step::Pass(until));
    };
    if lcf.ocsp.soft == 0 {
        ngx::ngx_log_error!(
            NGX_LOG_ERR,
            r.log(),
            "mtls: OCSP status unavailable: {failure}"
        );
        return finish(rp, Step::Deny(Reason::OcspUnavailable));
    }
    cache.count(Counter::SoftPass);
    let subject = id.subject().map(|s| s.to_string()).unwrap_or_default();
    ngx::ngx_log_error!(
        NGX_LOG_WARN,
        r.log(),
        "mtls: OCSP status of \"{subject}\" unavailable, passed by \"mtls_ocsp_fail soft\": {failure}"
    );
    // Not reused beyond a cached failure: the next request looks again.
    finish(rp, Step::Pass(until.min(now)))
}

/// Ends the wait of request `rp`, if it waited.
fn finish(rp: usize, step: Step) -> Step {
    if let Some(w) = WAITING.with(|w| w.borrow_mut().remove(&rp)) {
        // SAFETY: the event lives in the request's pool, which is alive:
        // the request is being decided, or its pool is being destroyed.
        unsafe {
            if (*w.event).ev.timer_set() != 0 {
                ngx_del_timer(&mut (*w.event).ev);
            }
        }
    }
    step
}

/// Queues `item` for the loader, once per request, and arms the request's
/// timer. `None` once the request has waited its time.
fn queue(
    r: &Request,
    rp: usize,
    cache: &crate::ocsp::cache::Cache,
    item: &Item,
    url: &str,
    timeout: ngx_msec_t,
) -> Option<()> {
    let now = current_msec();
    WAITING.with(|w| {
        let mut waiting = w.borrow_mut();
        let wait = match waiting.entry(rp) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let event = new_event(r)?;
                cache.count(Counter::Miss);
                v.insert(Waiting {
                    event,
                    deadline: now.wrapping_add(timeout),
                    queued: Vec::new(),
                })
            }
        };
        let left = wait.deadline.wrapping_sub(now) as ngx_msec_int_t;
        if left <= 0 {
            return None;
        }
        if !wait.queued.contains(&item.key) {
            let query = Query {
                key: item.key,
                cert: item.cert.to_der().ok()?,
                issuer: item.issuer.to_der().ok()?,
                url: url.to_owned(),
                timeout_ms: u32::try_from(timeout).unwrap_or(u32::MAX),
            };
            // A full queue: pushed again at the next tick.
            if cache.push(&query) {
                wait.queued.push(item.key);
            }
        }
        // SAFETY: the event lives in the request's pool; a timer left set
        // is deleted by the pool's cleanup.
        unsafe {
            let ev = &mut (*wait.event).ev;
            if ev.timer_set() == 0 {
                ngx_add_timer(ev, TICK_MS.min(left as ngx_msec_t));
            }
        }
        Some(())
    })
}

/// The request's timer event, with a cleanup that forgets the wait if the
/// request ends first (a client that goes away, a reset HTTP/2 stream).
fn new_event(r: &Request) -> Option<*mut WaitEvent> {
    let pool = r.pool();
    let event = pool.calloc_type::<WaitEvent>();
    // SAFETY: the request's pool is live.
    let cln = unsafe { ngx_pool_cleanup_add(pool.as_ref() as *const _ as *mut _, 0) };
    if event.is_null() || cln.is_null() {
        return None;
    }
    let rp = ptr::from_ref(r).cast_mut().cast::<ngx_http_request_t>();
    // SAFETY: fresh, zeroed pool memory for the event; `cln` is the
    // cleanup just added to the same pool. Debug logging of timers reads
    // `data` as a connection, which it is.
    unsafe {
        (*event).r = rp;
        (*event).ev.handler = Some(on_tick);
        (*event).ev.data = (*rp).connection.cast();
        (*event).ev.log = (*(*rp).connection).log;
        (*cln).handler = Some(on_cleanup);
        (*cln).data = rp.cast();
    }
    Some(event)
}

/// While a request waits, a client that goes away ends it at once (as
/// while nginx proxies), and with it the wait; the request's reading is
/// blocked again once it is decided.
pub fn watch_client(r: &mut Request, waiting: bool) {
    let rr = r.as_mut();
    if waiting {
        rr.read_event_handler = Some(ngx_http_test_reading);
    } else if rr.read_event_handler.map(|f| f as *const ())
        == Some(ngx_http_test_reading as *const ())
    {
        rr.read_event_handler = Some(ngx_http_block_reading);
    }
}

extern "C" fn on_tick(ev: *mut ngx_event_t) {
    // SAFETY: `ev` is the first field of a WaitEvent in the pool of its
    // request, which is alive: its cleanup deletes the timer.
    unsafe {
        let r = (*ev.cast::<WaitEvent>()).r;
        let c = (*r).connection;
        ngx_http_core_run_phases(r);
        ngx_http_run_posted_requests(c);
    }
}

extern "C" fn on_cleanup(data: *mut core::ffi::c_void) {
    let _ = std::panic::catch_unwind(|| {
        finish(data as usize, Step::Wait);
    });
}

/// The OCSP items of connection `c`, made once and kept in its `SSL`.
///
/// # Safety
/// `c` must be a live connection of the current request.
unsafe fn items<'c>(c: *mut ngx_connection_t, cas: &[X509]) -> Option<&'c Items> {
    static INDEX: OnceLock<Option<Index<Ssl, Items>>> = OnceLock::new();
    let index = (*INDEX.get_or_init(|| Ssl::new_ex_index().ok()))?;
    let ssl = (*c).ssl;
    if ssl.is_null() || (*ssl).connection.is_null() {
        return None;
    }
    // SAFETY: nginx's `SSL*` is the OpenSSL object of the same libssl that
    // openssl-sys links; it outlives the connection's requests.
    let ssl = SslRef::from_ptr_mut((*ssl).connection.cast());
    // SAFETY (both returns): the value stays in the `SSL` object's
    // ex_data, never replaced, until OpenSSL frees the connection, which
    // outlives the requests of `c`.
    if let Some(items) = ssl.ex_data(index) {
        return Some(&*(items as *const Items));
    }
    let made = make_items(ssl, cas)?;
    ssl.set_ex_data(index, made);
    ssl.ex_data(index).map(|i| &*(i as *const Items))
}

fn make_items(ssl: &SslRef, cas: &[X509]) -> Option<Items> {
    let leaf = ssl.peer_certificate()?;
    let chain: Vec<X509> = match ssl.verified_chain() {
        Some(chain) if !chain.is_empty() => chain.iter().map(X509Ref::to_owned).collect(),
        // A resumed session: OpenSSL keeps the leaf, not the chain.
        _ => rebuild(leaf, cas),
    };
    let mut items = Vec::new();
    for pair in chain.windows(2) {
        let (cert, issuer) = (&pair[0], &pair[1]);
        items.push(
            cert_key(cert, issuer)
                .map(|key| Item {
                    key,
                    cert: cert.clone(),
                    issuer: issuer.clone(),
                })
                .map_err(|e| e.to_string()),
        );
    }
    if items.is_empty() && !self_issued(&chain[0]) {
        items.push(Err(
            "the certificate's issuer is not among the configured CA certificates".to_owned(),
        ));
    }
    Some(Items(items))
}

/// The chain of `leaf` from the configured CA certificates, each issuer
/// found by name and signature, up to a self-issued one.
fn rebuild(leaf: X509, cas: &[X509]) -> Vec<X509> {
    let mut chain = vec![leaf];
    while chain.len() < 16 {
        let cert = &chain[chain.len() - 1];
        if chain.len() > 1 && self_issued(cert) {
            break;
        }
        let issuer_name = x509::name_der(cert.issuer_name());
        let issuer = cas.iter().find(|ca| {
            issuer_name.is_some() && x509::name_der(ca.subject_name()) == issuer_name && {
                ca.public_key()
                    .is_ok_and(|k| cert.verify(&k).unwrap_or(false))
            }
        });
        match issuer {
            Some(ca) => chain.push(ca.clone()),
            None => break,
        }
    }
    chain
}

fn self_issued(cert: &X509Ref) -> bool {
    x509::name_der(cert.subject_name()) == x509::name_der(cert.issuer_name())
}
