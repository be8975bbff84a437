//! The OCSP part of `mtls_status`: the cache's entries and the counters
//! summed over all workers and the loader.

use std::fmt::Write as _;

use crate::conf::MainConf;
use crate::ocsp::cache::Counter;

struct Figures {
    entries: usize,
    capacity: usize,
    counts: [(Counter, u64); 8],
}

fn figures(mcf: &MainConf) -> Option<Figures> {
    let cache = mcf.ocsp.cache.as_deref()?;
    let c = |counter| (counter, cache.counter(counter));
    Some(Figures {
        entries: cache.len(),
        capacity: cache.capacity(),
        counts: [
            c(Counter::Hit),
            c(Counter::Miss),
            c(Counter::ResponderError),
            c(Counter::SoftPass),
            c(Counter::QueueFull),
            c(Counter::Good),
            c(Counter::Revoked),
            c(Counter::Unknown),
        ],
    })
}

fn get(f: &Figures, counter: Counter) -> u64 {
    f.counts
        .iter()
        .find(|(c, _)| *c == counter)
        .map_or(0, |(_, n)| *n)
}

/// `"ocsp":{...}` (or `null` where OCSP is off), for the JSON object.
pub fn json(mcf: &MainConf) -> String {
    let Some(f) = figures(mcf) else {
        return "\"ocsp\":null".into();
    };
    format!(
        "\"ocsp\":{{\"entries\":{},\"capacity\":{},\"hits\":{},\"misses\":{},\"responder_errors\":{},\"soft_fail_passes\":{},\"queue_full\":{},\"answers\":{{\"good\":{},\"revoked\":{},\"unknown\":{}}}}}",
        f.entries,
        f.capacity,
        get(&f, Counter::Hit),
        get(&f, Counter::Miss),
        get(&f, Counter::ResponderError),
        get(&f, Counter::SoftPass),
        get(&f, Counter::QueueFull),
        get(&f, Counter::Good),
        get(&f, Counter::Revoked),
        get(&f, Counter::Unknown),
    )
}

/// The Prometheus lines; none where OCSP is off.
pub fn prometheus(mcf: &MainConf, out: &mut String) {
    let Some(f) = figures(mcf) else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP mtls_ocsp_cache_entries OCSP answers (and failures) cached.\n# TYPE mtls_ocsp_cache_entries gauge\nmtls_ocsp_cache_entries {}",
        f.entries
    );
    let _ = writeln!(
        out,
        "# HELP mtls_ocsp_lookups_total Requests that looked up a certificate's OCSP answer, by whether one was cached.\n# TYPE mtls_ocsp_lookups_total counter\nmtls_ocsp_lookups_total{{result=\"hit\"}} {}\nmtls_ocsp_lookups_total{{result=\"miss\"}} {}",
        get(&f, Counter::Hit),
        get(&f, Counter::Miss)
    );
    let _ = writeln!(
        out,
        "# HELP mtls_ocsp_responder_errors_total OCSP look-ups that failed: no answer, or one that did not verify.\n# TYPE mtls_ocsp_responder_errors_total counter\nmtls_ocsp_responder_errors_total {}",
        get(&f, Counter::ResponderError)
    );
    let _ = writeln!(
        out,
        "# HELP mtls_ocsp_soft_fail_passes_total Requests passed without an OCSP answer under mtls_ocsp_fail soft.\n# TYPE mtls_ocsp_soft_fail_passes_total counter\nmtls_ocsp_soft_fail_passes_total {}",
        get(&f, Counter::SoftPass)
    );
    let _ = writeln!(
        out,
        "# HELP mtls_ocsp_queue_full_total Look-ups not queued for the loader because its queue was full.\n# TYPE mtls_ocsp_queue_full_total counter\nmtls_ocsp_queue_full_total {}",
        get(&f, Counter::QueueFull)
    );
    let _ = writeln!(
        out,
        "# HELP mtls_ocsp_answers_total Verified OCSP answers received, by certificate status.\n# TYPE mtls_ocsp_answers_total counter\nmtls_ocsp_answers_total{{status=\"good\"}} {}\nmtls_ocsp_answers_total{{status=\"revoked\"}} {}\nmtls_ocsp_answers_total{{status=\"unknown\"}} {}",
        get(&f, Counter::Good),
        get(&f, Counter::Revoked),
        get(&f, Counter::Unknown)
    );
}
