//! The access-phase handler: the decision for each request, its per-request
//! record for the variables, and the log line for a denial; and the header
//! filter that decides a response made before the access phase.

use core::cell::Cell;
use core::ptr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::*;
use ngx::http::{HttpModule, HttpModuleLocationConf, NgxHttpCoreModule, Request};
use ngx::ngx_log_debug_http;

use core::sync::atomic::Ordering;

use ngx::http::HttpModuleMainConf;

use crate::policy::Reason;
use crate::status::{counter_index, ALLOWED};
use crate::tls::{client_cert, ClientCert};
use crate::Module;

mod cdp;
mod ocsp;
mod revocation;

/// The outcome for one request in its current location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Off,
    Allow,
    Deny(Denial),
    /// Waiting for an OCSP answer: never kept as the request's verdict.
    Pending,
}

/// Why a request was denied, and by which revocation source (an index
/// into `MainConf::sources`) where one decided: the log line names its
/// file without looking again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denial {
    pub reason: Reason,
    pub source: Option<usize>,
}

impl Verdict {
    pub fn decision(self) -> &'static str {
        match self {
            Verdict::Off => "off",
            Verdict::Allow => "allow",
            Verdict::Deny(_) => "deny",
            Verdict::Pending => "",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Deny(denial) => denial.reason.as_str(),
            _ => "",
        }
    }
}

/// What the module keeps per request: the verdict, and the location (its
/// `LocConf`'s address) it was made for. nginx clears it on an internal
/// redirect, but not on `rewrite ... last`, nor after a variable read in
/// the rewrite phase before the location is found.
#[derive(Default)]
struct RequestCtx {
    verdict: Cell<Option<(usize, Verdict)>>,
}

/// The request's context, made on first use in the request's pool.
fn request_ctx(r: &Request) -> Option<&RequestCtx> {
    if let Some(ctx) = r.get_module_ctx::<RequestCtx>(Module::module()) {
        return Some(ctx);
    }
    // Word-aligned, as a RequestCtx needs; it has nothing to drop.
    let slot = r
        .pool()
        .alloc(core::mem::size_of::<RequestCtx>())
        .cast::<RequestCtx>();
    if slot.is_null() {
        return None;
    }
    // SAFETY: `slot` is fresh, aligned memory for a RequestCtx in the
    // request pool, which lives as long as the request.
    unsafe { ptr::write(slot, RequestCtx::default()) };
    r.set_module_ctx(slot.cast(), Module::module());
    r.get_module_ctx::<RequestCtx>(Module::module())
}

/// The address of the request's location configuration, which names the
/// location in [`RequestCtx`].
fn location_id(r: &Request) -> usize {
    Module::location_conf(r).map_or(0, |lcf| ptr::from_ref(lcf) as usize)
}

/// The verdict for `r`, computed once per request and location.
pub fn verdict(r: &mut Request) -> Verdict {
    let location = location_id(r);
    let ctx = request_ctx(r);
    if let Some((at, verdict)) = ctx.and_then(|c| c.verdict.get()) {
        if at == location {
            return verdict;
        }
    }
    let verdict = decide(r);
    if verdict == Verdict::Pending {
        return verdict;
    }
    if let Some(ctx) = ctx {
        ctx.verdict.set(Some((location, verdict)));
    }
    verdict
}

/// The verdict made for the request's final location, if one was.
fn made_verdict(r: &Request) -> Option<Verdict> {
    let (at, verdict) = r
        .get_module_ctx::<RequestCtx>(Module::module())?
        .verdict
        .get()?;
    (at == location_id(r)).then_some(verdict)
}

fn decide(r: &Request) -> Verdict {
    let (Some(lcf), Some(mcf)) = (Module::location_conf(r), Module::main_conf(r)) else {
        return Verdict::Deny(Denial {
            reason: Reason::BadCert,
            source: None,
        });
    };
    // Where it is off, the module says nothing, not even in the debug log.
    if !lcf.enabled() {
        return Verdict::Off;
    }
    // SAFETY: the request's connection is live while the request is.
    let cert = unsafe { client_cert(r.connection()) };
    ngx_log_debug_http!(
        r,
        "mtls: rules in effect: {}; client certificate: {}",
        lcf.policy.families(),
        match cert {
            ClientCert::None => "none".to_owned(),
            ClientCert::Unverified(v) => format!("did not verify ({})", v.error_string()),
            ClientCert::Unreadable(e) => format!("unreadable ({e})"),
            ClientCert::Verified(_) => "verified".to_owned(),
        }
    );
    let chain = cert.verified().map(|v| &v.chain);
    // Read before the tables, so that a table published meanwhile makes
    // the next request decide again.
    let epoch = mcf.shared.as_ref().map_or(0, |s| s.epoch())
        + mcf.ocsp.cache.as_ref().map_or(0, |c| c.generation());
    // Unix time as the event loop last read it, as nginx's own checks use it.
    let now = ngx_time();
    let location = ptr::from_ref(lcf) as usize;
    if chain.is_some_and(|c| c.passed(location, epoch, now)) {
        ngx_log_debug_http!(
            r,
            "mtls: allow, reused: passed in this location before on this connection, revocation epoch {epoch}"
        );
        return Verdict::Allow;
    }
    let mut until = i64::MAX;
    let mut source = None;
    let log = r.log();
    let mut pending = false;
    let decided = lcf
        .policy
        // The policy asks only about a verified certificate, which always
        // has its chain; without one, fail closed.
        .decide(&cert.peer(), |id| {
            let c = chain.ok_or(Reason::BadCert)?;
            until = revocation::check(mcf, lcf, id, c, now, log).map_err(|failure| {
                source = failure.source;
                failure.reason
            })?;
            Ok(())
        })
        // OCSP last: no responder is asked about a certificate that the
        // rules deny anyway.
        .and_then(|()| {
            let Some(id) = cert.identity() else {
                return Ok(());
            };
            match ocsp::check(r, mcf, lcf, id, now) {
                ocsp::Step::Pass(u) => {
                    until = until.min(u);
                    Ok(())
                }
                ocsp::Step::Deny(reason) => Err(reason),
                ocsp::Step::Wait => {
                    pending = true;
                    Err(Reason::OcspUnavailable)
                }
            }
        });
    if pending {
        ngx_log_debug_http!(r, "mtls: waiting for an OCSP answer");
        return Verdict::Pending;
    }
    let verdict = match decided {
        Ok(()) => {
            if let Some(c) = chain {
                c.pass(location, epoch, until);
            }
            Verdict::Allow
        }
        Err(reason) => Verdict::Deny(Denial { reason, source }),
    };
    ngx_log_debug_http!(
        r,
        "mtls: {}{}{}, read of the certificate: {}",
        verdict.decision(),
        if verdict.reason().is_empty() { "" } else { " " },
        verdict.reason(),
        cert.identity()
            .map_or_else(|| "nothing".to_owned(), |id| id.describe_read())
    );
    verdict
}

/// Log phase: counts the request once, with the decision of the location
/// that served it, if a decision was made there.
pub extern "C" fn log_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request being processed.
    let r = unsafe { Request::from_ngx_http_request(r) };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(verdict) = made_verdict(r) else {
            return;
        };
        let counter = match verdict {
            Verdict::Off | Verdict::Pending => return,
            Verdict::Allow => ALLOWED,
            Verdict::Deny(denial) => counter_index(denial.reason),
        };
        if let Some(shared) = Module::main_conf(r).and_then(|m| m.shared.as_ref()) {
            shared.counter(counter).fetch_add(1, Ordering::Relaxed);
        }
    }));
    NGX_DECLINED as ngx_int_t
}

pub extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request being processed.
    let r = unsafe { Request::from_ngx_http_request(r) };
    catch_unwind(AssertUnwindSafe(|| handle(r)))
        .unwrap_or(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}

fn handle(r: &mut Request) -> ngx_int_t {
    let verdict = verdict(r);
    ocsp::watch_client(r, verdict == Verdict::Pending);
    match verdict {
        Verdict::Off => NGX_DECLINED as ngx_int_t,
        // NGX_OK rather than NGX_DECLINED, so that under `satisfy any` a
        // valid certificate is enough.
        Verdict::Allow => NGX_OK as ngx_int_t,
        // The request's timer runs its phases again.
        Verdict::Pending => NGX_AGAIN as ngx_int_t,
        Verdict::Deny(denial) => {
            let status = Module::location_conf(r)
                .map_or(NGX_HTTP_FORBIDDEN as ngx_uint_t, |lcf| lcf.deny_status);
            log_denial(r, denial, denial_level(r, status));
            status as ngx_int_t
        }
    }
}

/// As nginx's access module: under `satisfy any`, a 403 or 401 is not yet
/// the request's answer (another access module may allow it, and nginx
/// logs "access forbidden by rule" if none does), so the module's line
/// goes to `info`; any other status answers at once, and is an `error`.
fn denial_level(r: &Request, status: ngx_uint_t) -> ngx_uint_t {
    let any = NgxHttpCoreModule::location_conf(r)
        .is_some_and(|clcf| clcf.satisfy == NGX_HTTP_SATISFY_ANY as ngx_uint_t);
    let collected = matches!(status as u32, NGX_HTTP_FORBIDDEN | NGX_HTTP_UNAUTHORIZED);
    if any && collected {
        NGX_LOG_INFO as ngx_uint_t
    } else {
        NGX_LOG_ERR as ngx_uint_t
    }
}

fn log_denial(r: &Request, denial: Denial, level: ngx_uint_t) {
    let reason = denial.reason;
    // SAFETY: the request's connection is live while the request is.
    let cert = unsafe { client_cert(r.connection()) };
    let log = r.log();
    match cert {
        ClientCert::Verified(v) => {
            let id = &v.identity;
            match (reason, id.subject(), id.serial()) {
                (Reason::BadCert, _, _) | (_, Err(_), _) | (_, _, Err(_)) => {
                    let problem = id.problem().map_or_else(
                        || "certificate cannot be read".to_owned(),
                        ToString::to_string,
                    );
                    ngx::ngx_log_error!(
                        level,
                        log,
                        "access forbidden by mtls: {}, {problem}",
                        reason.as_str()
                    );
                }
                (_, Ok(subject), Ok(serial)) => {
                    ngx::ngx_log_error!(
                        level,
                        log,
                        "access forbidden by mtls: {}, subject: \"{}\", serial: {}{}",
                        reason.as_str(),
                        subject,
                        serial,
                        source_note(r, denial.source)
                    );
                }
            }
        }
        ClientCert::Unverified(verify) => {
            ngx::ngx_log_error!(
                level,
                log,
                "access forbidden by mtls: {} ({})",
                reason.as_str(),
                verify.error_string()
            );
        }
        ClientCert::Unreadable(e) => {
            ngx::ngx_log_error!(
                level,
                log,
                "access forbidden by mtls: {}, {e}",
                reason.as_str()
            );
        }
        ClientCert::None => {
            ngx::ngx_log_error!(level, log, "access forbidden by mtls: {}", reason.as_str());
        }
    }
}

/// `, by "FILE"` where a revocation source decided.
fn source_note(r: &Request, source: Option<usize>) -> String {
    let label = source.and_then(|i| Module::main_conf(r)?.source_label(i));
    label.map_or_else(String::new, |l| format!(", by \"{l}\""))
}

/// The index of the access handler in nginx's phase engine: a request
/// whose `phase_handler` is below it has not reached its location's access
/// phase. `usize::MAX` where it was not found (then nothing is decided in
/// the header filter).
///
/// # Safety
/// `cycle` must be a cycle whose http configuration is complete.
pub unsafe fn access_phase_index(cycle: &ngx_cycle_t) -> usize {
    let Some(cmcf) = NgxHttpCoreModule::main_conf(cycle) else {
        return usize::MAX;
    };
    let ours = access_handler as extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t;
    let mut ph = cmcf.phase_engine.handlers;
    let mut i = 0;
    // nginx ends the array with a null checker.
    while !ph.is_null() && (*ph).checker.is_some() {
        if (*ph).handler.is_some_and(|h| h as usize == ours as usize) {
            return i;
        }
        ph = ph.add(1);
        i += 1;
    }
    usize::MAX
}

/// The next header filter in nginx's chain, set once at configuration.
static mut NEXT_HEADER_FILTER: ngx_http_output_header_filter_pt = None;

/// Installs [`header_filter`] at the top of nginx's header filter chain.
///
/// # Safety
/// Only from postconfiguration, in the single thread that reads the
/// configuration.
pub unsafe fn install_header_filter() {
    NEXT_HEADER_FILTER = ngx_http_top_header_filter;
    ngx_http_top_header_filter = Some(header_filter);
}

/// No silent bypass: where `mtls` is on in the location that answers, a
/// response the rewrite phase made before the access phase could run
/// (`return 200 ...;`, `rewrite ... redirect;`: the request's
/// `phase_handler` is still below the access handler's) is decided here,
/// for the location that answers (after `rewrite ... last`, the new one).
/// A denial replaces the response with `mtls_deny_status`, as nginx's image
/// filter replaces one it refuses.
///
/// Left as they are: subrequests (the access phase skips them too);
/// responses before the phases started (nginx's own 400, 495, 496, ...);
/// error pages being served (`error_page`); responses with a status of 400
/// or above, which answer with an error either way.
extern "C" fn header_filter(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request whose header is being sent.
    let req = unsafe { Request::from_ngx_http_request(r) };
    match catch_unwind(AssertUnwindSafe(|| decide_bypass(req))) {
        Ok(Some(rc)) => rc,
        Ok(None) => next_header_filter(r),
        Err(_) => NGX_ERROR as ngx_int_t,
    }
}

fn next_header_filter(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: set once at configuration, before any request, and read
    // only on the event loop.
    match unsafe { NEXT_HEADER_FILTER } {
        // SAFETY: nginx's own filter, called with the request it was given.
        Some(next) => unsafe { next(r) },
        None => NGX_ERROR as ngx_int_t,
    }
}

/// `Some(rc)` where the response is replaced by a denial.
fn decide_bypass(r: &mut Request) -> Option<ngx_int_t> {
    let raw: &ngx_http_request_t = r.as_ref();
    let access_phase = Module::main_conf(r).map_or(usize::MAX, |mcf| mcf.access_phase);
    if usize::try_from(raw.phase_handler).map_or(true, |at| at >= access_phase)
        || !r.is_main()
        || raw.uri_changes() == 0
        || raw.error_page() != 0
        || raw.headers_out.status >= NGX_HTTP_BAD_REQUEST as ngx_uint_t
    {
        return None;
    }
    let lcf = Module::location_conf(r)?;
    if !lcf.enabled() {
        return None;
    }
    ngx_log_debug_http!(
        r,
        "mtls: a response made before the access phase (status {}), deciding it now",
        raw.headers_out.status
    );
    // This request has answered already: it cannot wait for OCSP.
    let Verdict::Deny(denial) = ocsp::without_waiting(|| verdict(r)) else {
        return None;
    };
    let status = lcf.deny_status;
    log_denial(r, denial, NGX_LOG_ERR as ngx_uint_t);
    if status == NGX_HTTP_CLOSE as ngx_uint_t {
        // 444: no response at all; nginx closes the connection.
        return Some(NGX_ERROR as ngx_int_t);
    }
    let module: *const ngx_module_t = Module::module();
    // SAFETY: the live request, this module (whose context nginx keeps),
    // and a status nginx's special responses know (400 to 599).
    Some(unsafe {
        ngx_http_filter_finalize_request(r.into(), module.cast_mut(), status as ngx_int_t)
    })
}
