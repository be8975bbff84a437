//! The status side of [`crate::expiry`]: the zone made with each
//! configuration, a certificate recorded when a connection's is first
//! read, and its part of the JSON and Prometheus output.

use core::fmt::Write as _;
use core::ptr;
use std::sync::Arc;

use ngx::ffi::*;
use ngx::http::HttpModuleMainConf;

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

/// Records the verified certificate of a new connection. Read from the
/// certificate itself, not through `id`'s parts: those say what the
/// decisions read (the debug log shows them), and recording it is none.
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
    let cert = id.cert();
    let Some(not_after) = x509::not_after(cert) else {
        return;
    };
    // SAFETY: set by nginx before the worker serves anything.
    let worker = unsafe { ptr::read(ptr::addr_of!(ngx_worker)) };
    zone.record(
        worker,
        not_after,
        ngx_time(),
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
