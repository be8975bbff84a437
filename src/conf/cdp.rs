//! CRLs discovered from CRL Distribution Points: `mtls_crl_cdp` (http,
//! server), `mtls_crl_cdp_allow` and `mtls_crl_cdp_max` (http), and the
//! shared registry of discovered URLs they make.

use core::ffi::{c_char, c_void};
use core::ptr;
use std::path::Path;
use std::sync::Arc;

use ngx::core::{NgxStr, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::HttpModuleMainConf;
use ngx::ngx_string;

use super::MAIN_SRV;
use super::{args, invalid_value, mark_server_use, ConfError, LocConf, MainConf};
use crate::loader::url::UrlSource;
use crate::loader::{cdp as discovered, Loaded};
use crate::revocation::cdp::{longest_prefix, normalise};
use crate::state::cdp::Registry;
use crate::Module;

/// `mtls_crl_cdp` values.
pub const CDP_OFF: ngx_uint_t = 0;
pub const CDP_ON: ngx_uint_t = 1;
pub const CDP_OPTIONAL: ngx_uint_t = 2;

/// The default and the largest `mtls_crl_cdp_max`.
const DEFAULT_MAX: usize = 32;
const LARGEST_MAX: usize = 4096;
/// `mtls_crl_cdp_max` not set.
const MAX_UNSET: usize = usize::MAX;

/// The http-level settings and the registry.
pub struct CdpMain {
    /// Where `mtls_crl_cdp` is first turned on: `file:line`.
    pub used: Option<String>,
    /// `mtls_crl_cdp_allow`: normalised prefixes, with how to fetch the
    /// URLs under each.
    pub allowed: Vec<(String, Arc<UrlSource>)>,
    /// `mtls_crl_cdp_max`.
    pub max: usize,
    /// The index of the first discovered source among the shared slots:
    /// the configured sources come first.
    pub base: usize,
    /// URLs discovered before (kept in `mtls_cache_dir`), with their kept
    /// copies where they read, to publish with the configuration.
    pub pending: Vec<(String, Option<Loaded>)>,
    /// Set once the configuration is accepted (not under `nginx -t`).
    pub registry: Option<Arc<Registry>>,
    /// The smallest `mtls_crl_grace` where discovery is on, seconds: what
    /// the warnings about stale discovered CRLs go by.
    pub grace: i64,
}

impl Default for CdpMain {
    fn default() -> Self {
        CdpMain {
            used: None,
            allowed: Vec::new(),
            max: MAX_UNSET,
            base: 0,
            pending: Vec::new(),
            registry: None,
            grace: i64::MAX,
        }
    }
}

impl CdpMain {
    /// How many slots discovered sources take in shared memory.
    pub fn slots(&self) -> usize {
        if self.used.is_some() {
            self.max
        } else {
            0
        }
    }

    /// How URLs under the longest allowed prefix of normalised `url` are
    /// fetched; `None` where no prefix allows it.
    pub fn allows(&self, url: &str) -> Option<&Arc<UrlSource>> {
        longest_prefix(&self.allowed, url)
    }
}

pub(super) const CDP_COMMANDS: [ngx_command_t; 3] = [
    ngx_command_t {
        name: ngx_string!("mtls_crl_cdp"),
        type_: (MAIN_SRV | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_cdp),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: core::mem::offset_of!(LocConf, crl_cdp),
        post: ptr::addr_of!(CDP_MODES) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_crl_cdp_allow"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(set_allow),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mtls_crl_cdp_max"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_max),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
];

static mut CDP_MODES: [ngx_conf_enum_t; 4] = [
    ngx_conf_enum_t {
        name: ngx_string!("off"),
        value: CDP_OFF,
    },
    ngx_conf_enum_t {
        name: ngx_string!("on"),
        value: CDP_ON,
    },
    ngx_conf_enum_t {
        name: ngx_string!("optional"),
        value: CDP_OPTIONAL,
    },
    ngx_conf_enum_t {
        name: ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
        value: 0,
    },
];

/// `mtls_crl_cdp off | on | optional;`: like `mtls_crl`, it turns `mtls`
/// on at its level (unless `off`).
extern "C" fn set_cdp(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf`
    // is this module's LocConf, which `offset` points into.
    unsafe {
        let rv = ngx_conf_set_enum_slot(cf, cmd, conf);
        let lcf = &mut *conf.cast::<LocConf>();
        if rv != NGX_CONF_OK || lcf.crl_cdp == CDP_OFF {
            return rv;
        }
        let Some(mcf) = Module::main_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        if mcf.cdp.used.is_none() {
            let file = &*(*cf).conf_file;
            mcf.cdp.used = Some(format!(
                "{}:{}",
                NgxStr::from_ngx_str(file.file.name),
                file.line
            ));
        }
        lcf.own_rules = true;
        mark_server_use(cf);
        rv
    }
}

/// `mtls_crl_cdp_allow PREFIX [interval=time] [timeout=time] [ca=file]
/// [max_size=size];`
extern "C" fn set_allow(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf`
    // is this module's MainConf; 1MORE guarantees two arguments or more.
    let (mcf, args) = unsafe { (&mut *conf.cast::<MainConf>(), args(cf)) };
    // SAFETY: `cf` is being parsed and `args` are its arguments.
    let (mut source, optional) = match unsafe { super::url::parse(cf, args) } {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    if optional {
        let at = args[2..]
            .iter()
            // SAFETY: valid arguments of the directive.
            .find(|a| unsafe { NgxStr::from_ngx_str(**a) } == "optional")
            .unwrap_or(&args[1]);
        return invalid_value(cf, &args[0], at, "unknown parameter");
    }
    let prefix = match normalise(&source.url) {
        Ok(prefix) => prefix,
        Err(e) => return invalid_value(cf, &args[0], &args[1], e),
    };
    if mcf.cdp.allowed.iter().any(|(p, _)| *p == prefix) {
        return invalid_value(cf, &args[0], &args[1], "the prefix is allowed twice");
    }
    source.url.clone_from(&prefix);
    mcf.cdp.allowed.push((prefix, Arc::new(source)));
    NGX_CONF_OK
}

/// `mtls_crl_cdp_max number;`
extern "C" fn set_max(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf`
    // is this module's MainConf; TAKE1 guarantees two arguments.
    let (mcf, args) = unsafe { (&mut *conf.cast::<MainConf>(), args(cf)) };
    if mcf.cdp.max != MAX_UNSET {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: a valid argument of the directive.
    let value = unsafe { NgxStr::from_ngx_str(args[1]) };
    match value.to_str().ok().and_then(|s| s.parse::<usize>().ok()) {
        Some(n @ 1..=LARGEST_MAX) if value.as_bytes()[0].is_ascii_digit() => {
            mcf.cdp.max = n;
            NGX_CONF_OK
        }
        _ => invalid_value(
            cf,
            &args[0],
            &args[1],
            format_args!("must be between 1 and {LARGEST_MAX}"),
        ),
    }
}

/// At configuration time, once the configured sources are known: refuses
/// discovery without an allowed prefix, and reads back the URLs discovered
/// before (with their kept copies) for the loader to go on with.
pub(super) fn init(mcf: &mut MainConf, cache_dir: &Path) -> Result<(), ConfError> {
    if mcf.cdp.max == MAX_UNSET {
        mcf.cdp.max = DEFAULT_MAX;
    }
    let Some(at) = &mcf.cdp.used else {
        return Ok(());
    };
    if mcf.cdp.allowed.is_empty() {
        return Err(ConfError::CdpWithoutPrefix { at: at.clone() });
    }
    mcf.cdp.base = mcf.sources.len();
    mcf.cdp.pending.clear();
    for url in discovered::read_list(cache_dir) {
        if mcf.cdp.pending.len() >= mcf.cdp.max {
            break;
        }
        let Ok(url) = normalise(&url) else {
            continue;
        };
        let Some(template) = mcf.cdp.allows(&url) else {
            continue;
        };
        if mcf.cdp.pending.iter().any(|(u, _)| *u == url)
            || discovered::configured(&mcf.sources, &url)
        {
            continue;
        }
        let source = discovered::source(&url, template, cache_dir);
        let loaded = std::fs::read(&source.path)
            .ok()
            .and_then(|data| crate::loader::read_bytes(&source, &data, &url, &mcf.cas, None).ok());
        mcf.cdp.pending.push((url, loaded));
    }
    Ok(())
}

/// Makes the registry and publishes the kept copies of the URLs discovered
/// before, once the configuration is accepted (not under `nginx -t`).
pub(super) fn publish(
    mcf: &mut MainConf,
    shared: &crate::state::Shared,
    now: i64,
) -> Result<(), ConfError> {
    let pending = std::mem::take(&mut mcf.cdp.pending);
    if mcf.cdp.used.is_none() {
        return Ok(());
    }
    let registry = Registry::new(mcf.cdp.max).map_err(ConfError::SharedMemory)?;
    for (url, loaded) in pending {
        let Some(j) = registry.register(&url) else {
            break;
        };
        let i = mcf.cdp.base + j;
        match loaded {
            Some(loaded) => {
                shared
                    .publish(i, &loaded, now)
                    .map_err(|source| ConfError::Publish {
                        path: url.clone(),
                        source,
                    })?;
            }
            None => shared
                .slot(i)
                .set_error(now, "no copy kept, fetched by the loader"),
        }
    }
    mcf.cdp.registry = Some(Arc::new(registry));
    Ok(())
}
