//! The CRL discovery part of `mtls_status`: each discovered URL as a source
//! of its own (kind `crl_cdp`, with its fetch status like an `mtls_crl`
//! URL), and the registry's counters.

use std::fmt::Write as _;

use crate::conf::MainConf;
use crate::loader::cdp::source;
use crate::loader::url::UrlSource;
use crate::loader::Source;

/// The discovered sources, by their slot, for the list of sources.
pub fn sources(mcf: &MainConf) -> Vec<(usize, Source)> {
    let Some(registry) = mcf.cdp.registry.as_deref() else {
        return Vec::new();
    };
    let dir = mcf.cache_dir.clone().unwrap_or_default();
    (0..registry.len())
        .map(|j| {
            let url = registry.url(j);
            // The fetch parameters do not show: any template will do.
            let template = mcf
                .cdp
                .allows(&url)
                .map_or_else(|| UrlSource::new(String::new()), |t| (**t).clone());
            (mcf.cdp.base + j, source(&url, &template, &dir))
        })
        .collect()
}

/// `"crl_cdp":{...}` (or `null` where discovery is off).
pub fn json(mcf: &MainConf) -> String {
    let Some(registry) = mcf.cdp.registry.as_deref() else {
        return "\"crl_cdp\":null".into();
    };
    let c = registry.counts();
    format!(
        "\"crl_cdp\":{{\"urls\":{},\"max\":{},\"refused_at_max\":{},\"refused_prefix\":{},\"queue_full\":{}}}",
        c.urls,
        registry.max(),
        c.refused_cap,
        c.refused_prefix,
        c.queue_full
    )
}

/// The Prometheus lines; none where discovery is off.
pub fn prometheus(mcf: &MainConf, out: &mut String) {
    let Some(registry) = mcf.cdp.registry.as_deref() else {
        return;
    };
    let c = registry.counts();
    let _ = writeln!(
        out,
        "# HELP mtls_crl_cdp_urls CRL URLs discovered from distribution points and fetched.\n# TYPE mtls_crl_cdp_urls gauge\nmtls_crl_cdp_urls {}",
        c.urls
    );
    let _ = writeln!(
        out,
        "# HELP mtls_crl_cdp_max The most CRL URLs discovery takes on (mtls_crl_cdp_max).\n# TYPE mtls_crl_cdp_max gauge\nmtls_crl_cdp_max {}",
        registry.max()
    );
    let _ = writeln!(
        out,
        "# HELP mtls_crl_cdp_refused_total Discovered CRL URLs not fetched, by why.\n# TYPE mtls_crl_cdp_refused_total counter\nmtls_crl_cdp_refused_total{{reason=\"max\"}} {}\nmtls_crl_cdp_refused_total{{reason=\"prefix\"}} {}",
        c.refused_cap,
        c.refused_prefix
    );
    let _ = writeln!(
        out,
        "# HELP mtls_crl_cdp_queue_full_total Discovered CRL URLs a worker could not pass to the loader because its queue was full.\n# TYPE mtls_crl_cdp_queue_full_total counter\nmtls_crl_cdp_queue_full_total {}",
        c.queue_full
    );
}
