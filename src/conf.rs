//! Directives and per-level configuration.
//!
//! Parsing of every rule happens here, at configuration time, so that a bad
//! value fails `nginx -t` with the directive, the value and the file:line.

use core::ffi::{c_char, c_void};
use core::ptr;
use std::sync::Arc;

use ngx::core::{NgxStr, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModuleServerConf, Merge, MergeConfigError};
use ngx::ngx_string;

use openssl::x509::X509;

use crate::loader::{FileId, Loaded, Source};
use crate::policy::Policy;
use crate::revocation::Kind;
use crate::state::Shared;
use crate::Module;

mod cdp;
mod ocsp;
mod revocation;
mod rules;
mod servers;
mod url;

pub use cdp::{CdpMain, CDP_OFF, CDP_OPTIONAL};
pub use ocsp::{publish as publish_ocsp, OcspMain, OCSP_CHAIN};
pub use revocation::{begin, init_revocation, publish};
pub use servers::check_servers;

use revocation::{note_grace, set_source};
use rules::{set_rule, Rule};

/// nginx's `NGX_CONF_UNSET_UINT` and `NGX_CONF_UNSET_MSEC`, cast macros
/// that bindgen does not carry over.
const NGX_CONF_UNSET_UINT: ngx_uint_t = ngx_uint_t::MAX;
const NGX_CONF_UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

pub struct LocConf {
    /// `mtls`: `NGX_CONF_UNSET` until set here or inherited.
    pub mtls: ngx_flag_t,
    pub deny_status: ngx_uint_t,
    /// `mtls_crl_check`: 1 for the whole chain (default), 0 for the leaf.
    pub crl_chain: ngx_flag_t,
    /// `mtls_crl_grace`, seconds.
    pub crl_grace: time_t,
    /// `mtls_crl_cdp`: off, on or optional.
    pub crl_cdp: ngx_uint_t,
    pub policy: Policy,
    /// `mtls_clear_request_headers`: `None` until set here or inherited,
    /// then the default names.
    pub clear_headers: Option<Arc<crate::forward::HeaderNames>>,
    /// `mtls_ocsp` and its settings.
    pub ocsp: ocsp::OcspConf,
    /// Whether this level itself sets a rule (not only inherits one).
    own_rules: bool,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            mtls: NGX_CONF_UNSET as ngx_flag_t,
            deny_status: NGX_CONF_UNSET_UINT,
            crl_chain: NGX_CONF_UNSET as ngx_flag_t,
            crl_grace: NGX_CONF_UNSET as time_t,
            crl_cdp: NGX_CONF_UNSET_UINT,
            policy: Policy::default(),
            clear_headers: None,
            ocsp: ocsp::OcspConf::default(),
            own_rules: false,
        }
    }
}

impl LocConf {
    /// `mtls` is on where set so, or where unset and a rule is in effect.
    pub fn enabled(&self) -> bool {
        match self.mtls {
            v if v == NGX_CONF_UNSET as ngx_flag_t => self.policy.has_rules() || self.ocsp.on(),
            v => v != 0,
        }
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        if self.mtls == NGX_CONF_UNSET as ngx_flag_t && !self.own_rules {
            self.mtls = prev.mtls;
        }
        if self.deny_status == NGX_CONF_UNSET_UINT {
            self.deny_status = if prev.deny_status == NGX_CONF_UNSET_UINT {
                NGX_HTTP_FORBIDDEN as ngx_uint_t
            } else {
                prev.deny_status
            };
        }
        if self.crl_chain == NGX_CONF_UNSET as ngx_flag_t {
            self.crl_chain = if prev.crl_chain == NGX_CONF_UNSET as ngx_flag_t {
                1
            } else {
                prev.crl_chain
            };
        }
        if self.crl_grace == NGX_CONF_UNSET as time_t {
            self.crl_grace = if prev.crl_grace == NGX_CONF_UNSET as time_t {
                0
            } else {
                prev.crl_grace
            };
        }
        if self.crl_cdp == NGX_CONF_UNSET_UINT {
            self.crl_cdp = if prev.crl_cdp == NGX_CONF_UNSET_UINT {
                CDP_OFF
            } else {
                prev.crl_cdp
            };
        }
        crate::forward::clear::merge(self, prev);
        self.ocsp.merge(&prev.ocsp);
        self.policy.inherit(&prev.policy);
        // Discovery checks CRLs, also where no `mtls_crl` names one.
        if self.crl_cdp != CDP_OFF && self.policy.crls.is_none() {
            self.policy.crls = Some(Arc::from([]));
        }
        note_grace(&self.policy, self.crl_grace, self.crl_cdp != CDP_OFF);
        Ok(())
    }
}

/// The revocation sources of the whole configuration and their loader.
pub struct MainConf {
    pub sources: Vec<Source>,
    pub reload_interval: ngx_msec_t,
    /// The certificates that may sign CRLs: those nginx verifies clients
    /// with, in any server.
    pub cas: Vec<X509>,
    /// The control block; `None` under `nginx -t` and without sources.
    pub shared: Option<Arc<Shared>>,
    /// The identity of each file when it was read at configuration time.
    pub loaded: Vec<Option<FileId>>,
    /// Tables read with the configuration, published once it is accepted.
    pub pending: Vec<Option<Loaded>>,
    /// Where the access handler is in this configuration's phase engine,
    /// set once it is complete (see `access::access_phase_index`).
    pub access_phase: usize,
    /// `mtls_cache_dir`: where the copies of URL sources are kept.
    pub cache_dir: Option<std::path::PathBuf>,
    /// For each URL source, the body fetched with the configuration, kept
    /// once it is accepted, or why the fetch failed.
    pub fetched: Vec<Option<Result<crate::loader::url::Kept, String>>>,
    /// When the client certificates seen expire; `None` under `nginx -t`.
    pub expiry: Option<Arc<crate::expiry::Zone>>,
    /// `mtls_ocsp_cache`, and the cache.
    pub ocsp: OcspMain,
    /// `mtls_crl_cdp_*` and the registry of discovered URLs.
    pub cdp: CdpMain,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            sources: Vec::new(),
            reload_interval: NGX_CONF_UNSET_MSEC,
            cas: Vec::new(),
            shared: None,
            loaded: Vec::new(),
            pending: Vec::new(),
            access_phase: usize::MAX,
            cache_dir: None,
            fetched: Vec::new(),
            expiry: None,
            ocsp: OcspMain::default(),
            cdp: CdpMain::default(),
        }
    }
}

/// Where `mtls` directives appear in a server, to check at the end of the
/// configuration that the server asks for client certificates.
#[derive(Default)]
pub struct SrvConf {
    /// The first `mtls` directive inside this server block.
    pub first_use: Option<(ngx_str_t, ngx_uint_t)>,
    /// Whether `mtls` directives at the http level apply to this server.
    pub inherited: bool,
}

impl Merge for SrvConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        self.inherited = prev.first_use.is_some() || prev.inherited;
        Ok(())
    }
}

const RULE_FLAGS: ngx_uint_t =
    (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE) as ngx_uint_t;

macro_rules! rule_command {
    ($name:literal, $rule:expr) => {
        ngx_command_t {
            name: ngx_string!($name),
            type_: RULE_FLAGS,
            set: Some(set_rule),
            conf: NGX_HTTP_LOC_CONF_OFFSET,
            offset: 0,
            post: &$rule as *const Rule as *mut c_void,
        }
    };
}

const MAIN_SRV: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF;
const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

pub static mut NGX_HTTP_MTLS_COMMANDS: [ngx_command_t; 26] = [
    ngx_command_t {
        name: ngx_string!("mtls"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG)
            as ngx_uint_t,
        set: Some(set_mtls),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: core::mem::offset_of!(LocConf, mtls),
        post: ptr::null_mut(),
    },
    rule_command!("mtls_allow_cn", Rule::Cn),
    rule_command!("mtls_allow_dn", Rule::Dn),
    rule_command!("mtls_allow_san", Rule::San),
    rule_command!("mtls_allow_spiffe", Rule::Spiffe),
    rule_command!("mtls_allow_fingerprint", Rule::Fingerprint),
    rule_command!("mtls_issuer", Rule::Issuer),
    rule_command!("mtls_deny_serial", Rule::DenySerial),
    ngx_command_t {
        name: ngx_string!("mtls_deny_status"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1)
            as ngx_uint_t,
        set: Some(set_deny_status),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mtls_crl"),
        type_: (MAIN_SRV | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(set_source),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: &Kind::Crl as *const Kind as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_deny_list"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(set_source),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: &Kind::DenyList as *const Kind as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_crl_check"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_enum_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: core::mem::offset_of!(LocConf, crl_chain),
        post: ptr::addr_of!(CRL_CHECK) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_cache_dir"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(url::set_cache_dir),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mtls_crl_grace"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_sec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: core::mem::offset_of!(LocConf, crl_grace),
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mtls_reload_interval"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: core::mem::offset_of!(MainConf, reload_interval),
        post: ptr::addr_of!(RELOAD_INTERVAL_POST) as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_clear_request_headers"),
        type_: (ANY_LEVEL | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(crate::forward::clear::set_clear_headers),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mtls_status"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(crate::status::set_status),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ocsp::OCSP_COMMANDS[0],
    ocsp::OCSP_COMMANDS[1],
    ocsp::OCSP_COMMANDS[2],
    ocsp::OCSP_COMMANDS[3],
    ocsp::OCSP_COMMANDS[4],
    cdp::CDP_COMMANDS[0],
    cdp::CDP_COMMANDS[1],
    cdp::CDP_COMMANDS[2],
    ngx_command_t::empty(),
];

/// `mtls_crl_check leaf | chain;`
static mut CRL_CHECK: [ngx_conf_enum_t; 3] = [
    ngx_conf_enum_t {
        name: ngx_string!("leaf"),
        value: 0,
    },
    ngx_conf_enum_t {
        name: ngx_string!("chain"),
        value: 1,
    },
    ngx_conf_enum_t {
        name: ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
        value: 0,
    },
];

/// `mtls_reload_interval` must be positive: with 0, worker 0's timer would
/// expire again as soon as it is re-armed and never let the event loop run.
static RELOAD_INTERVAL_POST: ngx_conf_post_t = ngx_conf_post_t {
    post_handler: Some(check_reload_interval),
};

extern "C" fn check_reload_interval(
    cf: *mut ngx_conf_t,
    _post: *mut c_void,
    data: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's msec slot calls this with the value it has just
    // stored, and with the directive's arguments still in `cf` (TAKE1).
    let (interval, args) = unsafe { (*data.cast::<ngx_msec_t>(), args(cf)) };
    if interval == 0 {
        return invalid_value(cf, &args[0], &args[1], "must be at least 1ms");
    }
    NGX_CONF_OK
}

/// The directive's arguments, name first.
///
/// # Safety
/// `cf` must be the `ngx_conf_t` nginx passes to a directive handler; its
/// `args` array then holds `nelts` initialized `ngx_str_t`, the name first.
unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    (*(*cf).args).as_slice::<ngx_str_t>()
}

/// Why the configuration is refused, logged at `emerg` by the module's
/// postconfiguration and init_module hooks.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("mtls: the module's configuration is missing")]
    NoConfiguration,
    #[error(
        "\"mtls\" in {used_in} requires \"ssl_verify_client\" in the server defined in {server}"
    )]
    NoVerifyClient { used_in: String, server: String },
    #[error("mtls: cannot read CA certificates from \"{path}\": {source}")]
    CaFile { path: String, source: CaFileError },
    #[error("mtls: {0}")]
    Source(#[from] crate::loader::LoadError),
    #[error("mtls: cannot create shared memory: {0}")]
    SharedMemory(std::io::Error),
    #[error(
        "\"mtls_crl_cdp\" is on in {at}, but no \"mtls_crl_cdp_allow\" prefix is set: a certificate could make nginx fetch any URL"
    )]
    CdpWithoutPrefix { at: String },
    #[error("mtls: cannot create the OCSP cache: {0}")]
    OcspCache(std::io::Error),
    #[error("mtls: cannot publish \"{path}\" in /dev/shm: {source}")]
    Publish {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Pem(#[from] openssl::error::ErrorStack),
}

/// Logs `"NAME" directive has invalid value "VALUE": REASON` at `emerg`;
/// nginx appends the file and line.
pub(crate) fn invalid_value(
    cf: *mut ngx_conf_t,
    name: &ngx_str_t,
    value: &ngx_str_t,
    reason: impl core::fmt::Display,
) -> *mut c_char {
    // SAFETY: both strings come from the directive's argument array, which
    // lives as long as the configuration being parsed.
    let (name, value) = unsafe { (NgxStr::from_ngx_str(*name), NgxStr::from_ngx_str(*value)) };
    ngx::ngx_conf_log_error!(
        NGX_LOG_EMERG,
        cf,
        "\"{name}\" directive has invalid value \"{value}\": {reason}"
    );
    NGX_CONF_ERROR
}

/// Records that `mtls` is configured in the server being parsed.
///
/// # Safety
/// `cf` must be a configuration being parsed in the http block.
unsafe fn mark_server_use(cf: *mut ngx_conf_t) {
    let Some(scf) = Module::server_conf_mut(&*cf) else {
        return;
    };
    if scf.first_use.is_none() {
        let file = &*(*cf).conf_file;
        scf.first_use = Some((file.file.name, file.line));
    }
}

extern "C" fn set_mtls(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf` is
    // this module's LocConf, which `offset` points into.
    unsafe {
        let rv = ngx_conf_set_flag_slot(cf, cmd, conf);
        if rv == NGX_CONF_OK && (*conf.cast::<LocConf>()).mtls != 0 {
            mark_server_use(cf);
        }
        rv
    }
}

extern "C" fn set_deny_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf` is
    // this module's LocConf; TAKE1 guarantees two arguments.
    let (lcf, args) = unsafe { (&mut *conf.cast::<LocConf>(), args(cf)) };
    if lcf.deny_status != NGX_CONF_UNSET_UINT {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: the argument is a valid ngx_str_t of the directive.
    let value = unsafe { NgxStr::from_ngx_str(args[1]) };
    match value
        .to_str()
        .ok()
        .and_then(|s| s.parse::<ngx_uint_t>().ok())
    {
        Some(status @ 400..=599) if value.as_bytes()[0].is_ascii_digit() => {
            lcf.deny_status = status;
            NGX_CONF_OK
        }
        _ => invalid_value(cf, &args[0], &args[1], "must be between 400 and 599"),
    }
}
