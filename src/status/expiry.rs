//! The status side of [`crate::expiry`]: the zone made with each
//! configuration, a certificate recorded when a connection's is first
//! read, and its part of the JSON and Prometheus output.

use core::cell::RefCell;
use core::fmt::Write as _;
use core::ptr;
use std::sync::Arc;

use ngx::ffi::*;
use ngx::http::HttpModuleMainConf;
use openssl::x509::{X509Ref, X509};

use super::{json_str, prom_label, time_or_null};
use crate::conf::{ConfError, MainConf};
use crate::expiry::{Snapshot, Zone, BUCKETS};
use crate::identity::dn::Dn;
use crate::identity::{x509, Identity};
use crate::Module;

/// Makes the zone of a configuration that was accepted, before the master
/// forks its workers; nothing under `nginx -t` nor in `nginx -s`.
///
/// # Safety
/// `cycle` must be the cycle whose configuration `mcf` belongs to.
pub unsafe fn create(cycle: *mut ngx_cycle_t, mcf: &mut MainConf) -> Result<(), ConfError> {
    if ngx_test_config != 0 || ngx_process == NGX_PROCESS_SIGNALLER as ngx_uint_t {
        return Ok(());
    }
    let index = (*ptr::addr_of!(ngx_core_module)).index;
    let ccf = (*(*cycle).conf_ctx.add(index)).cast::<ngx_core_conf_t>();
    let workers = if ccf.is_null() {
        1
    } else {
        usize::try_from((*ccf).worker_processes).unwrap_or(1)
    };
    let zone = Zone::new(workers).map_err(ConfError::SharedMemory)?;
    mcf.expiry = Some(Arc::new(zone));
    Ok(())
}

/// How many new connections' certificates a worker collects before it
/// writes them to the zone, and for how long at most.
const BATCH: usize = 64;
const BATCH_MS: ngx_msec_t = 100;

/// The certificates of a worker's new connections not yet written to the
/// zone, with when each was seen. Written together, the record's code
/// (`X509_digest`, the table scan, the names) is fetched into the CPU's
/// caches once per batch, rather than once per handshake between two
/// handshakes that evict it again (bench/NOTES.md, change 19).
struct Pending {
    /// The zone they go to: the configuration's at the time they were
    /// seen (without a master process, a reload makes a new one).
    zone: Option<Arc<Zone>>,
    certs: Vec<(X509, i64)>,
    /// The timer that writes them, made on first use.
    timer: *mut ngx_event_t,
}

thread_local! {
    // A worker is single-threaded: only its event loop's thread uses this.
    static PENDING: RefCell<Pending> = const {
        RefCell::new(Pending {
            zone: None,
            certs: Vec::new(),
            timer: ptr::null_mut(),
        })
    };
}

impl Pending {
    /// Writes the certificates collected to their zone.
    fn write(&mut self) {
        let Some(zone) = &self.zone else {
            self.certs.clear();
            return;
        };
        // SAFETY: set by nginx before the worker serves anything.
        let worker = unsafe { ptr::read(ptr::addr_of!(ngx_worker)) };
        for (cert, at) in self.certs.drain(..) {
            record(zone, worker, &cert, at);
        }
    }

    /// Arms the timer that writes the batch, unless it is armed.
    fn arm(&mut self) {
        // SAFETY: on the event loop's thread (the only one of a worker);
        // `ngx_cycle` is the live cycle, whose log outlives a timer of
        // BATCH_MS (a cycle replaced without a master process is freed
        // later than that). The event is made once and never freed: the
        // process's end frees it.
        unsafe {
            let cycle = ptr::read(ptr::addr_of!(ngx_cycle));
            if cycle.is_null() {
                return;
            }
            if self.timer.is_null() {
                self.timer = crate::worker::timer_event(on_batch_timer, (*cycle).log);
            }
            if (*self.timer).timer_set() == 0 {
                (*self.timer).log = (*cycle).log;
                ngx_add_timer(self.timer, BATCH_MS);
            }
        }
    }
}

extern "C" fn on_batch_timer(_ev: *mut ngx_event_t) {
    let _ = std::panic::catch_unwind(flush);
}

/// Writes the certificates this worker collected and has not written yet:
/// before the status reads the zone, so that it shows at least this
/// worker's connections so far.
pub fn flush() {
    let _ = PENDING.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p.write();
        }
    });
}

/// Records the verified certificate of a new connection: collected, and
/// written to the zone with the next batch.
pub fn seen(id: &Identity) {
    // SAFETY: in a worker, `ngx_cycle` is its live cycle.
    let mcf = unsafe {
        let cycle = ptr::read(ptr::addr_of!(ngx_cycle));
        if cycle.is_null() {
            return;
        }
        Module::main_conf(&*cycle)
    };
    let Some(zone) = mcf.and_then(|m| m.expiry.as_ref()) else {
        return;
    };
    let _ = PENDING.try_with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else {
            return;
        };
        if !p.zone.as_ref().is_some_and(|z| Arc::ptr_eq(z, zone)) {
            p.write();
            p.zone = Some(Arc::clone(zone));
        }
        p.certs.push((id.cert().to_owned(), ngx_time()));
        if p.certs.len() >= BATCH {
            p.write();
        } else {
            p.arm();
        }
    });
}

/// Records `cert`, seen at `at`. Read from the certificate itself, not
/// through an identity's parts: those say what the decisions read (the
/// debug log shows them), and recording it is none.
fn record(zone: &Zone, worker: usize, cert: &X509Ref, at: i64) {
    let Some(not_after) = x509::not_after(cert) else {
        return;
    };
    zone.record(
        worker,
        not_after,
        at,
        // What makes two sightings one certificate: the end of its
        // signature, which no other certificate has (a signature
        // covers the whole certificate, with a random nonce or the CA's
        // deterministic padding). No hash: SHA-1 through X509_digest, even
        // from OpenSSL's cache, cost about 2,200 instructions per new
        // connection (bench/NOTES.md, change 19). No decision reads it.
        || {
            let signature = cert.signature().as_slice();
            let tail = &signature[signature.len().saturating_sub(32)..];
            let mut key = [0u8; 32];
            key[..tail.len()].copy_from_slice(tail);
            Some(key)
        },
        || {
            let subject = x509::name_der(cert.subject_name())
                .and_then(Dn::from_der)
                .map(|dn| dn.to_rfc4514())
                .unwrap_or_default();
            let serial = x509::serial(cert)
                .map(|s| s.to_string())
                .unwrap_or_default();
            (subject, serial)
        },
    );
}

fn snapshot(mcf: &MainConf) -> Snapshot {
    flush();
    mcf.expiry
        .as_ref()
        .map(|zone| zone.snapshot())
        .unwrap_or_default()
}

/// `"client_certs":{...}`
pub fn json(mcf: &MainConf) -> String {
    let s = snapshot(mcf);
    let [day, week, month, later] = s.buckets;
    let mut out = format!(
        "\"client_certs\":{{\"connections\":{},\"expiring\":{{\"within_1d\":{day},\"within_7d\":{week},\"within_30d\":{month},\"later\":{later}}},\"earliest_expiry\":{},\"soonest\":[",
        s.connections(),
        s.soonest.first().map_or("null".into(), |e| time_or_null(e.not_after)),
    );
    for (n, e) in s.soonest.iter().enumerate() {
        let sep = if n > 0 { "," } else { "" };
        let _ = write!(
            out,
            "{sep}{{\"subject\":{},\"serial\":{},\"not_after\":{},\"last_seen\":{}}}",
            json_str(&e.subject),
            json_str(&e.serial),
            time_or_null(e.not_after),
            time_or_null(e.last_seen)
        );
    }
    out.push_str("]}");
    out
}

pub fn prometheus(mcf: &MainConf, out: &mut String) {
    let s = snapshot(mcf);
    let name = "mtls_client_cert_validity_remaining_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Remaining validity of the verified client certificates, once per TLS connection, since the last start or reload.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (bound, count) in BUCKETS.iter().zip(s.buckets) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
        s.connections(),
        s.remaining_sum,
        s.connections()
    );
    let name = "mtls_client_cert_earliest_expiry_timestamp_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} notAfter of the soonest-expiring client certificate seen since the last start or reload.\n# TYPE {name} gauge"
    );
    if let Some(first) = s.soonest.first() {
        let _ = writeln!(out, "{name} {}", first.not_after);
    }
    for (name, help, value) in [
        (
            "mtls_client_cert_not_after_timestamp_seconds",
            "notAfter of each of the soonest-expiring distinct client certificates seen.",
            (|e| e.not_after) as fn(&crate::expiry::Seen) -> i64,
        ),
        (
            "mtls_client_cert_last_seen_timestamp_seconds",
            "When each of the soonest-expiring distinct client certificates was last seen on a new connection.",
            |e| e.last_seen,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for e in &s.soonest {
            let _ = writeln!(
                out,
                "{name}{{subject=\"{}\",serial=\"{}\"}} {}",
                prom_label(&e.subject),
                prom_label(&e.serial),
                value(e)
            );
        }
    }
}
