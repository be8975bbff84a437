//! Worker-side lifecycle of live revocation: every worker maps the tables
//! when it starts; worker 0 also runs the loader thread and a timer on its
//! event loop that writes the thread's log lines and the CRL staleness
//! warnings, once per `mtls_reload_interval` (the warnings at most once a
//! second, so that a short interval does not flood the error log).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ngx::ffi::*;

use crate::conf::MainConf;
use crate::loader::Loader;

/// Worker 0's loader, its thread and its timer event, all ended at
/// process exit.
struct Running {
    loader: Arc<Loader>,
    thread: JoinHandle<()>,
    /// When staleness warnings were last logged.
    warned_at: Option<Instant>,
    event: *mut ngx_event_t,
}

// SAFETY: the event is only touched on the worker's main thread: by nginx's
// event loop, and by `start` and `stop`, called from nginx's process hooks.
unsafe impl Send for Running {}

/// The shortest time between two rounds of staleness warnings.
const WARN_EVERY: Duration = Duration::from_secs(1);

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
    let interval = Duration::from_millis(mcf.reload_interval as u64);
    let loader = Arc::new(Loader {
        sources: mcf.sources.clone(),
        cas: mcf.cas.clone(),
        shared: Arc::clone(shared),
        interval,
        loaded: mcf.loaded.clone(),
        stop: AtomicBool::new(false),
        messages: Mutex::new(Vec::new()),
    });
    let thread = Arc::clone(&loader);
    let thread = match std::thread::Builder::new()
        .name("mtls-loader".into())
        .spawn(move || thread.run())
    {
        Ok(thread) => thread,
        Err(e) => {
            ngx::ngx_log_error!(
                NGX_LOG_ALERT,
                (*cycle).log,
                "mtls: cannot start the revocation loader thread: {e}"
            );
            return;
        }
    };
    let event: *mut ngx_event_t = Box::into_raw(Box::new(core::mem::zeroed()));
    (*event).handler = Some(on_timer);
    (*event).log = (*cycle).log;
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
            thread,
            warned_at: None,
            event,
        });
    }
}

/// Called from exit_process: stops the loader and removes this
/// configuration's table files (every worker mapped them at start).
pub fn stop() {
    if let Ok(mut running) = RUNNING.lock() {
        if let Some(r) = running.take() {
            r.loader.stop.store(true, Ordering::Relaxed);
            // The thread checks the flag every 50 ms, or when a load in
            // progress ends. Joined, it has run its thread-local
            // destructors (OpenSSL's error state among them) before the
            // process exits.
            let _ = r.thread.join();
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
        for m in r.loader.take_messages() {
            let level = if m.error { NGX_LOG_ERR } else { NGX_LOG_NOTICE };
            ngx::ngx_log_error!(level, log, "mtls: {}", m.text);
        }
        if r.warned_at.map_or(true, |at| at.elapsed() >= WARN_EVERY) {
            let warnings = r.loader.staleness();
            if !warnings.is_empty() {
                r.warned_at = Some(Instant::now());
            }
            for warning in warnings {
                ngx::ngx_log_error!(NGX_LOG_WARN, log, "mtls: {warning}");
            }
        }
        // SAFETY: reading nginx's process flags on its own thread.
        if unsafe { ngx_exiting == 0 && ngx_quit == 0 && ngx_terminate == 0 } {
            // SAFETY: the event lives for the life of the process.
            unsafe { ngx_add_timer(ev, r.loader.interval.as_millis() as ngx_msec_t) };
        }
    });
}
