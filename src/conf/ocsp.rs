//! The OCSP directives: `mtls_ocsp`, `mtls_ocsp_responder`,
//! `mtls_ocsp_fail`, `mtls_ocsp_timeout` (per level) and `mtls_ocsp_cache`
//! (http), and the shared cache they make.

use core::ffi::{c_char, c_void};
use core::ptr;
use std::sync::Arc;

use ngx::core::{NgxStr, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::HttpModuleMainConf;
use ngx::ngx_string;

use super::{
    args, invalid_value, mark_server_use, ConfError, LocConf, MainConf, NGX_CONF_UNSET_MSEC,
};
use super::{ANY_LEVEL, NGX_CONF_UNSET_UINT};
use crate::ocsp::cache::Cache;
use crate::Module;

/// `mtls_ocsp` values.
pub const OCSP_OFF: ngx_uint_t = 0;
pub const OCSP_LEAF: ngx_uint_t = 1;
pub const OCSP_CHAIN: ngx_uint_t = 2;

/// The OCSP settings of one level.
pub struct OcspConf {
    /// `mtls_ocsp`: off, leaf or chain.
    pub mode: ngx_uint_t,
    /// `mtls_ocsp_responder`: asked instead of the certificate's AIA URL.
    pub responder: Option<Arc<str>>,
    /// `mtls_ocsp_fail`: 1 for soft.
    pub soft: ngx_uint_t,
    /// `mtls_ocsp_timeout`.
    pub timeout: ngx_msec_t,
}

impl Default for OcspConf {
    fn default() -> Self {
        OcspConf {
            mode: NGX_CONF_UNSET_UINT,
            responder: None,
            soft: NGX_CONF_UNSET_UINT,
            timeout: NGX_CONF_UNSET_MSEC,
        }
    }
}

/// Default `mtls_ocsp_timeout`.
const DEFAULT_TIMEOUT: ngx_msec_t = 5000;

impl OcspConf {
    pub fn on(&self) -> bool {
        self.mode != OCSP_OFF && self.mode != NGX_CONF_UNSET_UINT
    }

    pub(super) fn merge(&mut self, prev: &OcspConf) {
        let uint = |v: &mut ngx_uint_t, p: ngx_uint_t, default: ngx_uint_t| {
            if *v == NGX_CONF_UNSET_UINT {
                *v = if p == NGX_CONF_UNSET_UINT { default } else { p };
            }
        };
        uint(&mut self.mode, prev.mode, OCSP_OFF);
        uint(&mut self.soft, prev.soft, 0);
        if self.timeout == NGX_CONF_UNSET_MSEC {
            self.timeout = if prev.timeout == NGX_CONF_UNSET_MSEC {
                DEFAULT_TIMEOUT
            } else {
                prev.timeout
            };
        }
        if self.responder.is_none() {
            self.responder.clone_from(&prev.responder);
        }
    }
}

/// `mtls_ocsp_cache` and the cache itself.
pub struct OcspMain {
    /// Whether any level turns OCSP on.
    pub used: bool,
    pub settings: CacheSettings,
    /// Set once the configuration is accepted (not under `nginx -t`).
    pub cache: Option<Arc<Cache>>,
}

/// How answers are kept, seconds (entries for the size).
#[derive(Clone, Copy, Debug)]
pub struct CacheSettings {
    pub entries: usize,
    /// The longest a good, revoked or unknown answer is used, also where
    /// its nextUpdate is later.
    pub valid: i64,
    /// How often the answers of certificates in use are asked for again.
    pub refresh: i64,
    /// How long a failure is kept: no request asks again meanwhile.
    pub errors: i64,
}

impl Default for OcspMain {
    fn default() -> Self {
        OcspMain {
            used: false,
            settings: CacheSettings {
                entries: 10_000,
                valid: 3600,
                refresh: 300,
                errors: 10,
            },
            cache: None,
        }
    }
}

pub(super) const OCSP_COMMANDS: [ngx_command_t; 5] = [
    ngx_command_t {
        name: ngx_string!("mtls_ocsp"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_ocsp),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: core::mem::offset_of!(LocConf, ocsp) + core::mem::offset_of!(OcspConf, mode),
        post: ptr::addr_of!(OCSP_MODES) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_ocsp_responder"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_responder),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mtls_ocsp_fail"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_enum_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: core::mem::offset_of!(LocConf, ocsp) + core::mem::offset_of!(OcspConf, soft),
        post: ptr::addr_of!(OCSP_FAIL) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_ocsp_timeout"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: core::mem::offset_of!(LocConf, ocsp) + core::mem::offset_of!(OcspConf, timeout),
        post: ptr::addr_of!(TIMEOUT_POST) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_ocsp_cache"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(set_cache),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
];

const fn enum_value(name: ngx_str_t, value: ngx_uint_t) -> ngx_conf_enum_t {
    ngx_conf_enum_t { name, value }
}

const END: ngx_conf_enum_t = enum_value(
    ngx_str_t {
        len: 0,
        data: ptr::null_mut(),
    },
    0,
);

static mut OCSP_MODES: [ngx_conf_enum_t; 4] = [
    enum_value(ngx_string!("off"), OCSP_OFF),
    enum_value(ngx_string!("leaf"), OCSP_LEAF),
    enum_value(ngx_string!("chain"), OCSP_CHAIN),
    END,
];

static mut OCSP_FAIL: [ngx_conf_enum_t; 3] = [
    enum_value(ngx_string!("hard"), 0),
    enum_value(ngx_string!("soft"), 1),
    END,
];

static TIMEOUT_POST: ngx_conf_post_t = ngx_conf_post_t {
    post_handler: Some(check_timeout),
};

extern "C" fn check_timeout(
    cf: *mut ngx_conf_t,
    _post: *mut c_void,
    data: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's msec slot calls this with the value it has just
    // stored, and with the directive's arguments still in `cf` (TAKE1).
    let (timeout, args) = unsafe { (*data.cast::<ngx_msec_t>(), args(cf)) };
    if timeout == 0 || timeout > 60_000 {
        return invalid_value(cf, &args[0], &args[1], "must be between 1ms and 60s");
    }
    NGX_CONF_OK
}

/// `mtls_ocsp off | leaf | chain;`: like a rule, it turns `mtls` on
/// at its level (unless `off`).
extern "C" fn set_ocsp(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf`
    // is this module's LocConf, which `offset` points into.
    unsafe {
        let rv = ngx_conf_set_enum_slot(cf, cmd, conf);
        let lcf = &mut *conf.cast::<LocConf>();
        if rv != NGX_CONF_OK || !lcf.ocsp.on() {
            return rv;
        }
        let Some(mcf) = Module::main_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        mcf.ocsp.used = true;
        lcf.own_rules = true;
        mark_server_use(cf);
        rv
    }
}

extern "C" fn set_responder(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf`
    // is this module's LocConf; TAKE1 guarantees two arguments.
    let (lcf, args) = unsafe { (&mut *conf.cast::<LocConf>(), args(cf)) };
    if lcf.ocsp.responder.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: a valid argument of the directive.
    let value = unsafe { NgxStr::from_ngx_str(args[1]) };
    match value.to_str() {
        Ok(url) if valid_url(url) => {
            lcf.ocsp.responder = Some(url.into());
            NGX_CONF_OK
        }
        _ => invalid_value(
            cf,
            &args[0],
            &args[1],
            "must be an http:// or https:// URL with a host",
        ),
    }
}

/// An absolute http or https URL with a host, and nothing that could break
/// a request line.
pub(crate) fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && url.bytes().all(|b| b.is_ascii_graphic())
            && url.len() <= 1024
    })
}

/// `mtls_ocsp_cache [size=N] [valid=time] [refresh=time] [errors=time];`
extern "C" fn set_cache(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf`
    // is this module's MainConf; 1MORE guarantees two arguments or more.
    let (mcf, args) = unsafe { (&mut *conf.cast::<MainConf>(), args(cf)) };
    let mut settings = mcf.ocsp.settings;
    for arg in &args[1..] {
        // SAFETY: a valid argument of the directive.
        let text = unsafe { NgxStr::from_ngx_str(*arg) };
        let Some((name, value)) = text.to_str().ok().and_then(|t| t.split_once('=')) else {
            return invalid_value(cf, &args[0], arg, "expected name=value");
        };
        let mut raw = ngx_str_t {
            len: value.len(),
            data: value.as_ptr().cast_mut(),
        };
        let parsed = match name {
            // SAFETY: `raw` points into the argument, which nginx's
            // parsers only read.
            "size" => (unsafe { ngx_parse_size(&mut raw) }) as i64,
            // SAFETY: as above.
            "valid" | "refresh" | "errors" => (unsafe { ngx_parse_time(&mut raw, 1) }) as i64,
            _ => return invalid_value(cf, &args[0], arg, "unknown parameter"),
        };
        if parsed <= 0 {
            return invalid_value(cf, &args[0], arg, "must be a positive number or time");
        }
        match name {
            "size" => settings.entries = parsed as usize,
            "valid" => settings.valid = parsed,
            "refresh" => settings.refresh = parsed,
            _ => settings.errors = parsed,
        }
    }
    if settings.entries > 10_000_000 {
        return invalid_value(cf, &args[0], &args[1], "size is at most 10000000");
    }
    mcf.ocsp.settings = settings;
    NGX_CONF_OK
}

/// Makes the shared cache, once the configuration is accepted: nothing
/// under `nginx -t`, nor without a level that turns OCSP on.
///
/// # Safety
/// Called from init_module, where nginx's process globals are set.
pub unsafe fn publish(mcf: &mut MainConf) -> Result<(), ConfError> {
    if ngx_test_config != 0 || !mcf.ocsp.used {
        return Ok(());
    }
    let cache = Cache::new(mcf.ocsp.settings.entries).map_err(ConfError::OcspCache)?;
    mcf.ocsp.cache = Some(Arc::new(cache));
    Ok(())
}
