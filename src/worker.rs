//! Worker-side lifecycle of live revocation: every worker maps the tables
//! when it starts; worker 0 also forks the loader process and runs a timer
//! on its event loop, once per `mtls_reload_interval`, that writes the
//! loader's log lines and the CRL staleness warnings (these at most once a
//! second, so that a short interval does not flood the error log), and
//! starts a new loader if the last one died.
//!
//! The loader is a process, not a thread, so that every worker stays
//! single-threaded: see [`crate::loader::process`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ngx::ffi::*;

use crate::conf::MainConf;
use crate::loader::cdp::Discovery;
use crate::loader::ocsp::Service as OcspService;
use crate::loader::process::{self, Child, Message, Stopped};
use crate::loader::Loader;

/// Worker 0's loader process and its timer event, all ended at process
/// exit.
struct Running {
    /// What a loader process starts from; also what the staleness warnings
    /// are computed from.
    loader: Loader,
    /// The loader's OCSP side, where OCSP is on.
    ocsp: Option<OcspService>,
    /// The loader's CRL discovery, where `mtls_crl_cdp` is on.
    cdp: Option<Discovery>,
    /// None while no loader could be started.
    child: Option<Child>,
    /// When the last loader was started (or failed to).
    started_at: Instant,
    /// When staleness warnings were last logged.
    warned_at: Option<Instant>,
    event: *mut ngx_event_t,
}

// SAFETY: the event is only touched on the worker's main thread, the only
// one: by nginx's event loop, and by `start` and `stop`, called from
// nginx's process hooks.
unsafe impl Send for Running {}

/// The shortest time between two rounds of staleness warnings.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// The shortest time between two starts of a loader process, so that one
/// dying at once is not forked again each millisecond.
const RESPAWN_EVERY: Duration = Duration::from_secs(1);

/// How long worker 0's exit waits for a load in progress to end.
const STOP_WAIT: Duration = Duration::from_secs(10);

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Called from init_process in every worker.
///
/// # Safety
/// `cycle` must be the cycle nginx passes to init_process.
pub unsafe fn start(cycle: *mut ngx_cycle_t, mcf: &MainConf) {
    let Some(shared) = &mcf.shared else {
        return;
    };
    for source in 0..mcf.sources.len() {
        shared.with_table(source, |_| ());
    }
    let worker = ngx_process == NGX_PROCESS_WORKER as ngx_uint_t && ngx_worker == 0;
    if !(worker || ngx_process == NGX_PROCESS_SINGLE as ngx_uint_t) {
        return;
    }
    let loader = Loader {
        sources: mcf.sources.clone(),
        cas: mcf.cas.clone(),
        shared: std::sync::Arc::clone(shared),
        interval: Duration::from_millis(mcf.reload_interval as u64),
        loaded: mcf.loaded.clone(),
    };
    let ocsp = mcf.ocsp.cache.as_ref().map(|cache| OcspService {
        cache: std::sync::Arc::clone(cache),
        trusted: mcf.cas.clone(),
        valid: mcf.ocsp.settings.valid,
        refresh: mcf.ocsp.settings.refresh,
        errors: mcf.ocsp.settings.errors,
    });
    let cdp = mcf.cdp.registry.as_ref().map(|registry| Discovery {
        registry: std::sync::Arc::clone(registry),
        allowed: mcf.cdp.allowed.clone(),
        base: mcf.cdp.base,
        cache_dir: mcf.cache_dir.clone().unwrap_or_default(),
        grace: mcf.cdp.grace,
    });
    let log = (*cycle).log;
    let child = match spawn(&loader, ocsp.as_ref(), cdp.as_ref()) {
        Ok(child) => Some(child),
        Err(e) => {
            ngx::ngx_log_error!(
                NGX_LOG_ALERT,
                log,
                "mtls: cannot start the revocation loader process: {e}"
            );
            None
        }
    };
    let event: *mut ngx_event_t = Box::into_raw(Box::new(core::mem::zeroed()));
    (*event).handler = Some(on_timer);
    (*event).log = log;
    // Debug logging of timers reads the fd of `data` as a connection's;
    // like nginx's own standalone timers, point it at a dummy one.
    let dummy: *mut ngx_connection_t = Box::into_raw(Box::new(core::mem::zeroed()));
    (*dummy).fd = -1;
    (*event).data = dummy.cast();
    // A pending timer must not hold up a graceful shutdown.
    (*event).set_cancelable(1);
    ngx_add_timer(event, mcf.reload_interval);
    if let Ok(mut running) = RUNNING.lock() {
        *running = Some(Running {
            loader,
            ocsp,
            cdp,
            child,
            started_at: Instant::now(),
            warned_at: None,
            event,
        });
    }
}

/// Forks a loader process for `loader`. Worker 0 is single-threaded, in
/// init_process as on its event loop.
/// The loader process may run threads (its OCSP look-ups): it is not
/// one of nginx's processes, whose allocator must stay single-threaded.
fn spawn(
    loader: &Loader,
    ocsp: Option<&OcspService>,
    cdp: Option<&Discovery>,
) -> std::io::Result<Child> {
    process::spawn(|link| {
        // SAFETY: nginx's own call for its helper processes: it rewrites
        // this process's copy of argv, and only reads the title.
        unsafe { ngx_setproctitle(c"mtls revocation loader".as_ptr().cast_mut()) };
        std::thread::scope(|s| {
            if let Some(ocsp) = ocsp {
                s.spawn(|| ocsp.run(&link));
            }
            if let Some(cdp) = cdp {
                s.spawn(|| cdp.run(loader, &link));
            }
            loader.run(&link);
        });
    })
}

/// Called from exit_process: stops the loader and removes this
/// configuration's table files (every worker mapped them at start).
pub fn stop(cycle: *mut ngx_cycle_t) {
    if let Ok(mut running) = RUNNING.lock() {
        if let Some(mut r) = running.take() {
            // SAFETY: exit_process gets the live cycle.
            let log = unsafe { (*cycle).log };
            if let Some(mut child) = r.child.take() {
                // The loader sees end of file at once, or when a load in
                // progress ends; whatever it published by then is removed
                // below.
                let stopped = child.stop(STOP_WAIT);
                write_messages(log, &mut child, &mut r.loader);
                if stopped == Stopped::Killed {
                    ngx::ngx_log_error!(
                        NGX_LOG_ALERT,
                        log,
                        "mtls: revocation loader process {} did not exit in {} s, killed",
                        child.pid(),
                        STOP_WAIT.as_secs()
                    );
                }
            }
            r.loader.shared.remove_files();
            // A timer that fired during a graceful shutdown is not armed
            // again: then nothing but `r` refers to the event any more.
            // SAFETY: exit_process runs after the event loop, on its
            // thread; the event and its dummy connection are the boxes
            // made in `start`, and no timer refers to them once deleted.
            unsafe {
                if (*r.event).timer_set() != 0 {
                    ngx_del_timer(r.event);
                }
                drop(Box::from_raw((*r.event).data.cast::<ngx_connection_t>()));
                drop(Box::from_raw(r.event));
            }
        }
    }
}

/// Logs what the loader process said, and keeps what it left for the next
/// one.
fn write_messages(log: *mut ngx_log_t, child: &mut Child, loader: &mut Loader) {
    for m in child.take_messages() {
        let (level, text) = match m {
            Message::Notice(text) => (NGX_LOG_NOTICE, text),
            Message::Error(text) => (NGX_LOG_ERR, text),
            Message::Keep(text) => {
                loader.remember(&text);
                continue;
            }
        };
        ngx::ngx_log_error!(level, log, "mtls: {text}");
    }
}

extern "C" fn on_timer(ev: *mut ngx_event_t) {
    let _ = std::panic::catch_unwind(|| {
        let Ok(mut running) = RUNNING.lock() else {
            return;
        };
        let Some(r) = running.as_mut() else {
            return;
        };
        // SAFETY: the event belongs to this worker; its log is the cycle's.
        let log = unsafe { (*ev).log };
        // SAFETY: reading nginx's process flags on its own thread.
        let exiting = unsafe { ngx_exiting != 0 || ngx_quit != 0 || ngx_terminate != 0 };
        if let Some(child) = r.child.as_mut() {
            let open = child.receive();
            write_messages(log, child, &mut r.loader);
            if !open {
                ngx::ngx_log_error!(
                    NGX_LOG_ALERT,
                    log,
                    "mtls: revocation loader process {} exited unexpectedly{}",
                    child.pid(),
                    if exiting { "" } else { ", starting a new one" }
                );
                r.child = None;
                // It may have died reading a file: that load is over.
                for i in 0..r.loader.sources.len() {
                    r.loader.shared.slot(i).set_loading(false);
                }
            }
        }
        if r.child.is_none() && !exiting && r.started_at.elapsed() >= RESPAWN_EVERY {
            r.started_at = Instant::now();
            match spawn(&r.loader, r.ocsp.as_ref(), r.cdp.as_ref()) {
                Ok(child) => r.child = Some(child),
                Err(e) => {
                    ngx::ngx_log_error!(
                        NGX_LOG_ALERT,
                        log,
                        "mtls: cannot start the revocation loader process: {e}"
                    );
                }
            }
        }
        if r.warned_at.map_or(true, |at| at.elapsed() >= WARN_EVERY) {
            let mut warnings = r.loader.staleness();
            if let Some(cdp) = &r.cdp {
                warnings.extend(cdp.staleness(&r.loader.shared));
            }
            if !warnings.is_empty() {
                r.warned_at = Some(Instant::now());
            }
            for warning in warnings {
                ngx::ngx_log_error!(NGX_LOG_WARN, log, "mtls: {warning}");
            }
        }
        if !exiting {
            // SAFETY: the event lives for the life of the process.
            unsafe { ngx_add_timer(ev, r.loader.interval.as_millis() as ngx_msec_t) };
        }
    });
}
