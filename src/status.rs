//! `mtls_status`: the module's state as JSON, or in the Prometheus text
//! format with `?format=prometheus`: each revocation source with what it
//! holds and its last error, and the decisions counted over all workers.

use core::ffi::{c_char, c_void};
use std::fmt::Write as _;

use ngx::core::{Status, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule, Request};

use crate::conf::MainConf;
use crate::identity::rfc3339;
use crate::policy::Reason;
use crate::state::fetch::FetchView;
use crate::Module;

mod cdp;
pub mod expiry;
mod ocsp;

/// The counter index of an allowed request; reasons follow.
pub const ALLOWED: usize = 0;

pub fn counter_index(reason: Reason) -> usize {
    1 + Reason::ALL.iter().position(|&r| r == reason).unwrap_or(0)
}

pub extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: `cf` is the configuration being parsed, inside a location.
    let Some(clcf) = (unsafe { NgxHttpCoreModule::location_conf_mut(&*cf) }) else {
        return ngx::core::NGX_CONF_ERROR;
    };
    clcf.handler = Some(status_handler);
    NGX_CONF_OK
}

extern "C" fn status_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request being processed.
    let r = unsafe { Request::from_ngx_http_request(r) };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| respond(r)))
        .unwrap_or(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}

fn respond(r: &mut Request) -> ngx_int_t {
    if !matches!(r.method(), ngx::http::Method::GET | ngx::http::Method::HEAD) {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    let rc = r.discard_request_body();
    if rc != Status::NGX_OK {
        return rc.0;
    }
    let Some(mcf) = Module::main_conf(r) else {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    };
    let prometheus = r.as_ref().args.len > 0 && {
        // SAFETY: `args` is the request's query string.
        let args = unsafe { ngx::core::NgxStr::from_ngx_str(r.as_ref().args) };
        args.as_bytes()
            .split(|&b| b == b'&')
            .any(|a| a == b"format=prometheus")
    };
    let (body, content_type) = if prometheus {
        (prometheus_text(mcf), "text/plain; version=0.0.4")
    } else {
        (json(mcf), "application/json")
    };
    send(r, body.as_bytes(), content_type)
}

/// One source as the status shows it.
struct SourceStatus {
    path: String,
    kind: &'static str,
    optional: bool,
    generation: u64,
    entries: u64,
    loaded_at: i64,
    loading: bool,
    load_ms: u64,
    error: Option<(i64, String)>,
    /// issuer, thisUpdate, nextUpdate, number, entries
    crls: Vec<[String; 5]>,
    /// For a URL source: the URL and how its fetches went.
    fetch: Option<(String, FetchView)>,
}

fn sources(mcf: &MainConf) -> Vec<SourceStatus> {
    let configured = mcf.sources.iter().cloned().enumerate();
    configured
        .chain(cdp::sources(mcf))
        .map(|(i, source)| {
            let slot = mcf.shared.as_ref().map(|s| s.slot(i));
            SourceStatus {
                fetch: source.url.as_ref().map(|u| {
                    (
                        u.url.clone(),
                        slot.map(|s| s.fetch.view()).unwrap_or_default(),
                    )
                }),
                path: source.path.display().to_string(),
                kind: if i < mcf.sources.len() {
                    source.kind_name()
                } else {
                    "crl_cdp"
                },
                optional: source.optional,
                generation: slot.map_or(0, |s| s.generation()),
                entries: slot.map_or(0, |s| s.entries()),
                loaded_at: slot.map_or(0, |s| s.loaded_at()),
                loading: slot.is_some_and(|s| s.loading()),
                load_ms: slot.map_or(0, |s| s.load_ms()),
                error: slot.and_then(|s| s.error()),
                crls: mcf
                    .shared
                    .as_ref()
                    .map(|s| s.summary(i))
                    .unwrap_or_default()
                    .lines()
                    .map(|line| {
                        let mut f = line.split('\t').map(str::to_owned);
                        core::array::from_fn(|_| f.next().unwrap_or_default())
                    })
                    .collect(),
            }
        })
        .collect()
}

fn counts(mcf: &MainConf) -> (u64, Vec<(Reason, u64)>) {
    let get = |i: usize| {
        mcf.shared.as_ref().map_or(0, |s| {
            s.counter(i).load(core::sync::atomic::Ordering::Relaxed)
        })
    };
    let denied = Reason::ALL
        .iter()
        .map(|&r| (r, get(counter_index(r))))
        .collect();
    (get(ALLOWED), denied)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn time_or_null(t: i64) -> String {
    if t == 0 || t == i64::MAX {
        "null".into()
    } else {
        json_str(&rfc3339(t))
    }
}

fn json(mcf: &MainConf) -> String {
    let mut out = String::from("{\"sources\":[");
    for (n, s) in sources(mcf).iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"path\":{},\"kind\":\"{}\",\"optional\":{},\"generation\":{},\"entries\":{},\"loaded_at\":{},\"load_ms\":{},\"loading\":{},",
            json_str(&s.path),
            s.kind,
            s.optional,
            s.generation,
            s.entries,
            time_or_null(s.loaded_at),
            s.load_ms,
            s.loading
        );
        let (error_at, error) = match &s.error {
            Some((at, e)) => (time_or_null(*at), json_str(e)),
            None => ("null".into(), "null".into()),
        };
        let _ = write!(out, "\"last_error\":{error},\"last_error_at\":{error_at},");
        if let Some((url, f)) = &s.fetch {
            let text_or_null = |t: &str| {
                if t.is_empty() {
                    "null".to_owned()
                } else {
                    json_str(t)
                }
            };
            let _ = write!(
                out,
                "\"url\":{},\"fetch\":{{\"last_fetch\":{},\"http_status\":{},\"bytes\":{},\"etag\":{},\"last_modified\":{},\"next_fetch\":{},\"failures\":{}}},",
                json_str(url),
                time_or_null(f.last_fetch),
                if f.http_status == 0 { "null".into() } else { f.http_status.to_string() },
                f.bytes,
                text_or_null(&f.etag),
                text_or_null(&f.last_modified),
                time_or_null(f.next_fetch),
                f.failures
            );
        }
        out.push_str("\"crls\":[");
        for (m, [issuer, this, next, number, entries]) in s.crls.iter().enumerate() {
            if m > 0 {
                out.push(',');
            }
            let time = |t: &str| time_or_null(t.parse().unwrap_or(0));
            let _ = write!(
                out,
                "{{\"issuer\":{},\"this_update\":{},\"next_update\":{},\"number\":{},\"entries\":{}}}",
                json_str(issuer),
                time(this),
                time(next),
                if number.is_empty() { "null".into() } else { json_str(number) },
                entries.parse::<u64>().unwrap_or(0)
            );
        }
        out.push_str("]}");
    }
    let (allowed, denied) = counts(mcf);
    let _ = write!(
        out,
        "],{},{},\"requests\":{{\"allowed\":{allowed},\"denied\":{{",
        ocsp::json(mcf),
        cdp::json(mcf)
    );
    for (n, (reason, count)) in denied.iter().enumerate() {
        let sep = if n > 0 { "," } else { "" };
        let _ = write!(out, "{sep}\"{}\":{count}", reason.as_str());
    }
    out.push_str("}},");
    out.push_str(&expiry::json(mcf));
    out.push_str("}\n");
    out
}

fn prom_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A per-source gauge: name, help, value.
type Gauge = (&'static str, &'static str, fn(&SourceStatus) -> Option<f64>);

/// A per-URL gauge: name, help, value.
type FetchGauge = (&'static str, &'static str, fn(&FetchView) -> Option<f64>);

fn prometheus_text(mcf: &MainConf) -> String {
    let mut out = String::new();
    let (allowed, denied) = counts(mcf);
    out.push_str("# HELP mtls_requests_total Requests decided by the mtls module, summed over all workers.\n");
    out.push_str("# TYPE mtls_requests_total counter\n");
    let _ = writeln!(
        out,
        "mtls_requests_total{{decision=\"allow\",reason=\"\"}} {allowed}"
    );
    for (reason, count) in denied {
        let _ = writeln!(
            out,
            "mtls_requests_total{{decision=\"deny\",reason=\"{}\"}} {count}",
            reason.as_str()
        );
    }
    ocsp::prometheus(mcf, &mut out);
    cdp::prometheus(mcf, &mut out);
    let sources = sources(mcf);
    let gauges: [Gauge; 5] = [
        ("mtls_source_entries", "Entries in force.", |s| {
            Some(s.entries as f64)
        }),
        (
            "mtls_source_loaded_timestamp_seconds",
            "When the data in force was loaded.",
            |s| (s.loaded_at != 0).then_some(s.loaded_at as f64),
        ),
        (
            "mtls_source_load_duration_seconds",
            "How long reading the data in force took.",
            |s| (s.loaded_at != 0).then_some(s.load_ms as f64 / 1e3),
        ),
        (
            "mtls_source_loading",
            "1 while a changed file is being read; the previous data stays in force meanwhile.",
            |s| Some(f64::from(u8::from(s.loading))),
        ),
        (
            "mtls_source_last_error_timestamp_seconds",
            "When the last load failed.",
            |s| s.error.as_ref().map(|(at, _)| *at as f64),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in &sources {
            if let Some(v) = value(s) {
                let _ = writeln!(
                    out,
                    "{name}{{path=\"{}\",kind=\"{}\"}} {v}",
                    prom_label(&s.path),
                    s.kind
                );
            }
        }
    }
    let fetch_gauges: [FetchGauge; 5] = [
        (
            "mtls_fetch_last_timestamp_seconds",
            "When the URL was last fetched.",
            |f| (f.last_fetch != 0).then_some(f.last_fetch as f64),
        ),
        (
            "mtls_fetch_http_status",
            "HTTP status of the last fetch, 0 where none came.",
            |f| (f.last_fetch != 0).then_some(f64::from(f.http_status)),
        ),
        ("mtls_fetch_bytes", "Size of the last body received.", |f| {
            Some(f.bytes as f64)
        }),
        (
            "mtls_fetch_next_timestamp_seconds",
            "When the URL is fetched next.",
            |f| (f.next_fetch != 0).then_some(f.next_fetch as f64),
        ),
        ("mtls_fetch_failures", "Failed fetches in a row.", |f| {
            Some(f.failures as f64)
        }),
    ];
    for (name, help, value) in fetch_gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in &sources {
            if let Some((url, f)) = &s.fetch {
                if let Some(v) = value(f) {
                    let _ = writeln!(
                        out,
                        "{name}{{url=\"{}\",kind=\"{}\"}} {v}",
                        prom_label(url),
                        s.kind
                    );
                }
            }
        }
    }
    out.push_str("# HELP mtls_fetch_info The validators of the copy in force of each URL.\n");
    out.push_str("# TYPE mtls_fetch_info gauge\n");
    for s in &sources {
        if let Some((url, f)) = &s.fetch {
            let _ = writeln!(
                out,
                "mtls_fetch_info{{url=\"{}\",kind=\"{}\",etag=\"{}\",last_modified=\"{}\"}} 1",
                prom_label(url),
                s.kind,
                prom_label(&f.etag),
                prom_label(&f.last_modified)
            );
        }
    }
    out.push_str(
        "# HELP mtls_crl_next_update_timestamp_seconds nextUpdate of each CRL in force.\n",
    );
    out.push_str("# TYPE mtls_crl_next_update_timestamp_seconds gauge\n");
    for s in &sources {
        for [issuer, _, next, _, _] in &s.crls {
            if let Ok(next) = next.parse::<i64>() {
                if next != i64::MAX {
                    let _ = writeln!(
                        out,
                        "mtls_crl_next_update_timestamp_seconds{{path=\"{}\",issuer=\"{}\"}} {next}",
                        prom_label(&s.path),
                        prom_label(issuer)
                    );
                }
            }
        }
    }
    expiry::prometheus(mcf, &mut out);
    out
}

fn send(r: &mut Request, body: &[u8], content_type: &'static str) -> ngx_int_t {
    r.set_status(ngx::http::HTTPStatus::OK);
    r.set_content_length_n(body.len());
    {
        let headers = &mut r.as_mut().headers_out;
        headers.content_type_len = content_type.len();
        headers.content_type = ngx_str_t {
            len: content_type.len(),
            data: content_type.as_ptr().cast_mut(),
        };
    }
    let rc = r.send_header();
    if rc == Status::NGX_ERROR || rc.0 > NGX_OK as ngx_int_t || r.header_only() {
        return rc.0;
    }
    let pool = r.pool();
    let buf = pool.calloc_type::<ngx_buf_t>();
    let data = pool.alloc_unaligned(body.len()).cast::<u8>();
    let chain = pool.calloc_type::<ngx_chain_t>();
    if buf.is_null() || data.is_null() || chain.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: fresh pool memory: `data` has `body.len()` bytes, `buf` and
    // `chain` are zeroed structures owned by the request.
    unsafe {
        core::ptr::copy_nonoverlapping(body.as_ptr(), data, body.len());
        (*buf).pos = data;
        (*buf).last = data.add(body.len());
        (*buf).set_memory(1);
        (*buf).set_last_buf(if r.is_main() { 1 } else { 0 });
        (*buf).set_last_in_chain(1);
        (*chain).buf = buf;
        r.output_filter(&mut *chain).0
    }
}
