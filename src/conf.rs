//! Directives and per-level configuration.
//!
//! Parsing of every rule happens here, at configuration time, so that a bad
//! value fails `nginx -t` with the directive, the value and the file:line.

use core::ffi::{c_char, c_void};
use core::ptr;
use std::sync::Arc;

use ngx::core::{NgxStr, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModule, HttpModuleMainConf, HttpModuleServerConf, Merge, MergeConfigError};
use ngx::ngx_string;

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use openssl::x509::X509;

use crate::identity::dn::Dn;
use crate::identity::fingerprint::parse_fingerprint;
use crate::identity::san::SanRule;
use crate::identity::serial::Serial;
use crate::identity::spiffe::SpiffePattern;
use crate::loader::{FileId, Loaded, Source};
use crate::policy::{IdentityRules, Policy};
use crate::revocation::Kind;
use crate::state::Shared;
use crate::Module;

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
    pub policy: Policy,
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
            policy: Policy::default(),
            own_rules: false,
        }
    }
}

impl LocConf {
    /// `mtls` is on where set so, or where unset and a rule is in effect.
    pub fn enabled(&self) -> bool {
        match self.mtls {
            v if v == NGX_CONF_UNSET as ngx_flag_t => self.policy.has_rules(),
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
        self.policy.inherit(&prev.policy);
        note_grace(&self.policy, self.crl_grace);
        Ok(())
    }
}

std::thread_local! {
    /// The smallest `mtls_crl_grace` of any merged location using each
    /// source, collected while the configuration is merged (in the one
    /// thread that parses it) and read by [`init_revocation`].
    static GRACES: core::cell::RefCell<Vec<(usize, time_t)>> =
        const { core::cell::RefCell::new(Vec::new()) };
}

fn note_grace(policy: &Policy, grace: time_t) {
    GRACES.with(|g| {
        let mut g = g.borrow_mut();
        for &i in policy.crls.as_deref().unwrap_or_default() {
            match g.iter_mut().find(|(source, _)| *source == i) {
                Some(entry) => entry.1 = entry.1.min(grace),
                None => g.push((i, grace)),
            }
        }
    });
}

/// Starts a configuration: forgets what a previous one (perhaps a failed
/// one) collected.
pub fn begin() {
    GRACES.with(|g| g.borrow_mut().clear());
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
        }
    }
}

impl MainConf {
    /// The index of a source, registered once however many levels use it.
    fn add_source(&mut self, path: PathBuf, kind: Kind, optional: bool) -> usize {
        if let Some(i) = self
            .sources
            .iter()
            .position(|s| s.path == path && s.kind == kind)
        {
            // Required anywhere means required.
            self.sources[i].optional &= optional;
            return i;
        }
        self.sources.push(Source {
            path,
            kind,
            optional,
            grace: i64::MAX,
        });
        self.sources.len() - 1
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

/// The rule families that share [`set_rule`]; stored in the command's `post`.
#[derive(Clone, Copy)]
enum Rule {
    Cn,
    Dn,
    San,
    Spiffe,
    Fingerprint,
    Issuer,
    DenySerial,
}

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

pub static mut NGX_HTTP_MTLS_COMMANDS: [ngx_command_t; 16] = [
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
        type_: (MAIN_SRV | NGX_CONF_TAKE12) as ngx_uint_t,
        set: Some(set_source),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: &Kind::Crl as *const Kind as *mut c_void,
    },
    ngx_command_t {
        name: ngx_string!("mtls_deny_list"),
        type_: (ANY_LEVEL | NGX_CONF_TAKE12) as ngx_uint_t,
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
        name: ngx_string!("mtls_status"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(crate::status::set_status),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
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
    let args = &*(*cf).args;
    core::slice::from_raw_parts(args.elts as *const ngx_str_t, args.nelts)
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

extern "C" fn set_rule(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf` is
    // this module's LocConf and `post` one of the `Rule` statics above.
    let (lcf, rule, args) = unsafe {
        (
            &mut *conf.cast::<LocConf>(),
            *(*cmd).post.cast::<Rule>(),
            args(cf),
        )
    };
    // 1MORE guarantees at least one value after the name.
    for value in &args[1..] {
        // SAFETY: the argument is a valid ngx_str_t of the directive.
        let text = match unsafe { NgxStr::from_ngx_str(*value) }.to_str() {
            Ok(text) => text,
            Err(_) => return invalid_value(cf, &args[0], value, "not valid UTF-8"),
        };
        if let Err(reason) = add_rule(&mut lcf.policy, rule, text) {
            return invalid_value(cf, &args[0], value, reason);
        }
    }
    lcf.own_rules = true;
    // SAFETY: `cf` is the configuration being parsed.
    unsafe { mark_server_use(cf) };
    NGX_CONF_OK
}

/// Adds one value of a rule directive to the policy of this level.
fn add_rule(policy: &mut Policy, rule: Rule, text: &str) -> Result<(), String> {
    fn identity(policy: &mut Policy) -> &mut IdentityRules {
        // Unique while the level is parsed: inheritance shares the rules
        // only at merge time, after every directive has been read.
        Arc::make_mut(policy.identity.get_or_insert_with(Default::default))
    }
    let err = |e: &dyn core::fmt::Display| e.to_string();
    match rule {
        Rule::Cn if text.is_empty() => return Err("empty name".into()),
        // A certificate whose CN holds such a byte is an attack, never a name.
        Rule::Cn if text.chars().any(char::is_control) => {
            return Err("control character in name".into())
        }
        Rule::Cn => identity(policy).add_cn(text),
        Rule::Dn => identity(policy).add_dn(Dn::parse(text).map_err(|e| err(&e))?),
        Rule::San => identity(policy).add_san(SanRule::parse(text).map_err(|e| err(&e))?),
        Rule::Spiffe => {
            identity(policy).add_spiffe(SpiffePattern::parse(text).map_err(|e| err(&e))?)
        }
        Rule::Fingerprint => {
            identity(policy).add_fingerprint(parse_fingerprint(text).map_err(|e| err(&e))?)
        }
        Rule::Issuer => {
            let dn = Dn::parse(text).map_err(|e| err(&e))?;
            Arc::make_mut(policy.issuers.get_or_insert_with(Default::default)).insert(dn);
        }
        Rule::DenySerial => {
            let serial = Serial::parse(text).map_err(|e| err(&e))?;
            Arc::make_mut(policy.deny_serials.get_or_insert_with(Default::default)).insert(serial);
        }
    }
    Ok(())
}

/// Refuses a server that has `mtls` rules of its own but never asks for a
/// client certificate, and warns where only http-level rules reach it:
/// every request there would be denied.
///
/// # Safety
/// `cf` must be the configuration nginx passes to postconfiguration, after
/// the servers were merged.
pub unsafe fn check_servers(cf: *mut ngx_conf_t) -> Result<(), ()> {
    use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule};

    let cmcf = NgxHttpCoreModule::main_conf(&*cf).ok_or(())?;
    let servers = core::slice::from_raw_parts(
        cmcf.servers.elts as *const *mut ngx_http_core_srv_conf_t,
        cmcf.servers.nelts,
    );
    let ssl_index = (*ptr::addr_of!(ngx_http_ssl_module)).ctx_index;
    for &cscf in servers {
        let ctx = &*(*cscf).ctx;
        let scf = &*(*ctx.srv_conf.add(Module::module().ctx_index)).cast::<SrvConf>();
        let sscf = &*(*ctx.srv_conf.add(ssl_index)).cast::<ngx_http_ssl_srv_conf_t>();
        if sscf.verify != 0 {
            continue;
        }
        let server = core::ffi::CStr::from_ptr((*cscf).file_name.cast()).to_string_lossy();
        let line = (*cscf).line;
        if let Some((file, used_at)) = scf.first_use {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                (*cf).log,
                "\"mtls\" in {}:{} requires \"ssl_verify_client\" in the server defined in {server}:{line}",
                NgxStr::from_ngx_str(file),
                used_at
            );
            return Err(());
        }
        let lcf = &*(*ctx.loc_conf.add(Module::module().ctx_index)).cast::<LocConf>();
        if scf.inherited && lcf.enabled() {
            ngx::ngx_log_error!(
                NGX_LOG_WARN,
                (*cf).log,
                "\"mtls\" is enabled but \"ssl_verify_client\" is not set in the server defined in {server}:{line}, every request there is denied"
            );
        }
    }
    Ok(())
}

/// `mtls_crl FILE [optional];` and `mtls_deny_list FILE [optional];`
extern "C" fn set_source(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf` is
    // this module's LocConf, `post` one of the `Kind` values above; TAKE12
    // guarantees two or three arguments.
    let (lcf, kind, args) = unsafe {
        (
            &mut *conf.cast::<LocConf>(),
            *(*cmd).post.cast::<Kind>(),
            args(cf),
        )
    };
    let optional = match args.get(2) {
        None => false,
        // SAFETY: a valid argument of the directive.
        Some(a) if unsafe { NgxStr::from_ngx_str(*a) } == "optional" => true,
        Some(a) => return invalid_value(cf, &args[0], a, "the parameter must be \"optional\""),
    };
    let mut name = args[1];
    // SAFETY: resolves the path against the prefix, allocating in the
    // cycle's pool, as nginx does for its own file directives.
    if name.len == 0
        || unsafe { ngx_conf_full_name((*cf).cycle, &mut name, 1) } != NGX_OK as ngx_int_t
    {
        return invalid_value(cf, &args[0], &args[1], "bad file name");
    }
    // SAFETY: `name` now holds the full path allocated above.
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(unsafe {
        NgxStr::from_ngx_str(name).as_bytes()
    }));
    // SAFETY: `cf` is the configuration being parsed, inside http.
    let Some(mcf) = (unsafe { Module::main_conf_mut(&*cf) }) else {
        return NGX_CONF_ERROR;
    };
    let index = mcf.add_source(path, kind, optional);
    let family = match kind {
        Kind::Crl => &mut lcf.policy.crls,
        Kind::DenyList => &mut lcf.policy.deny_lists,
    };
    let mut list: Vec<usize> = family.as_deref().unwrap_or_default().to_vec();
    if !list.contains(&index) {
        list.push(index);
    }
    *family = Some(list.into());
    lcf.own_rules = true;
    // SAFETY: `cf` is the configuration being parsed.
    unsafe { mark_server_use(cf) };
    NGX_CONF_OK
}

/// Reads every revocation source at configuration time: a file that is
/// missing or invalid fails the configuration with `[emerg]` (unless it is
/// `optional`). Outside `nginx -t`, publishes the tables in shared memory
/// for the workers to come.
///
/// # Safety
/// `cf` must be the configuration nginx passes to postconfiguration, after
/// the servers were merged.
pub unsafe fn init_revocation(cf: *mut ngx_conf_t) -> Result<(), ()> {
    use ngx::http::NgxHttpCoreModule;

    let mcf = Module::main_conf_mut(&*cf).ok_or(())?;
    if mcf.reload_interval == NGX_CONF_UNSET_MSEC {
        mcf.reload_interval = 1000;
    }
    // `nginx -s stop|quit|reopen|reload` parses the configuration only to
    // find the master: a broken revocation file must not keep the operator
    // from signalling it (on reload the master reads the files itself).
    if mcf.sources.is_empty() || ngx_process == NGX_PROCESS_SIGNALLER as ngx_uint_t {
        return Ok(());
    }
    let log = (*cf).log;
    let cmcf = NgxHttpCoreModule::main_conf(&*cf).ok_or(())?;
    let servers = core::slice::from_raw_parts(
        cmcf.servers.elts as *const *mut ngx_http_core_srv_conf_t,
        cmcf.servers.nelts,
    );
    let ssl_index = (*ptr::addr_of!(ngx_http_ssl_module)).ctx_index;
    let mut ca_files: Vec<PathBuf> = Vec::new();
    for &cscf in servers {
        let ctx = &*(*cscf).ctx;
        let sscf = &*(*ctx.srv_conf.add(ssl_index)).cast::<ngx_http_ssl_srv_conf_t>();
        for mut file in [sscf.client_certificate, sscf.trusted_certificate] {
            // nginx resolves these against the prefix only in servers that
            // verify clients; resolve a copy here for every server.
            if file.len == 0 || ngx_conf_full_name((*cf).cycle, &mut file, 1) != NGX_OK as ngx_int_t
            {
                continue;
            }
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(
                NgxStr::from_ngx_str(file).as_bytes(),
            ));
            if !ca_files.contains(&path) {
                ca_files.push(path);
            }
        }
    }
    // The warning about stale CRLs uses the smallest grace in force.
    for (i, grace) in GRACES.with(|g| std::mem::take(&mut *g.borrow_mut())) {
        if let Some(source) = mcf.sources.get_mut(i) {
            source.grace = source.grace.min(grace);
        }
    }
    for file in &ca_files {
        match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|pem| X509::stack_from_pem(&pem).map_err(|e| e.to_string()))
        {
            Ok(certs) => mcf.cas.extend(certs),
            Err(e) => {
                ngx::ngx_log_error!(
                    NGX_LOG_EMERG,
                    log,
                    "mtls: cannot read CA certificates from \"{}\": {e}",
                    file.display()
                );
                return Err(());
            }
        }
    }

    // On `nginx -s reload`, the tables in force are those of the running
    // configuration: a CRL older than its own is refused here as the loader
    // refuses it, or a reload would replay an old CRL.
    let running = running_conf(cf).and_then(|old| Some((old, old.shared.as_ref()?)));
    let mut tables = Vec::with_capacity(mcf.sources.len());
    mcf.loaded.clear();
    for source in &mcf.sources {
        let id = FileId::of(source).ok();
        let in_force = running.and_then(|(old, shared)| {
            let i = old
                .sources
                .iter()
                .position(|s| s.path == source.path && s.kind == source.kind)?;
            Some((i, shared))
        });
        let read = match in_force {
            Some((i, shared)) => {
                let read =
                    shared.with_table(i, |t| crate::loader::read(source, &mcf.cas, t.as_ref()));
                // The master maps tables only for this check.
                shared.unmap_all();
                read
            }
            None => crate::loader::read(source, &mcf.cas, None),
        };
        match read {
            Ok(loaded) => {
                tables.push(Some(loaded));
                mcf.loaded.push(id);
            }
            Err(e) if source.optional => {
                ngx::ngx_log_error!(
                    NGX_LOG_WARN,
                    log,
                    "mtls: {e}; requests that \"{}\" guards are denied until a valid file arrives",
                    source.path.display()
                );
                tables.push(None);
                mcf.loaded.push(None);
            }
            Err(e) => {
                ngx::ngx_log_error!(NGX_LOG_EMERG, log, "mtls: {e}");
                return Err(());
            }
        }
    }
    mcf.pending = tables;
    Ok(())
}

/// The configuration that `nginx -s reload` replaces, if this module was
/// loaded in it.
///
/// # Safety
/// `cf` must be a configuration being read by nginx.
unsafe fn running_conf(cf: *mut ngx_conf_t) -> Option<&'static MainConf> {
    let old = (*(*cf).cycle).old_cycle;
    // At start, the old cycle is nginx's bootstrap cycle, without
    // configuration contexts.
    if old.is_null() || (*old).conf_ctx.is_null() || (*old).modules.is_null() {
        return None;
    }
    // Our ctx_index indexes the old cycle's contexts only if the module was
    // loaded there: nginx keeps a module's index across reloads, and gives
    // a new module one that no old module used.
    let ours: *const ngx_module_t = Module::module();
    let mut m = (*old).modules;
    while !(*m).is_null() && (*m).cast_const() != ours {
        m = m.add(1);
    }
    if (*m).is_null() {
        return None;
    }
    Module::main_conf(&*old)
}

/// Publishes the tables read by [`init_revocation`] in shared memory for
/// the workers to come; nothing under `nginx -t`.
///
/// # Safety
/// `cycle` must be the cycle whose configuration `mcf` belongs to.
pub unsafe fn publish(cycle: *mut ngx_cycle_t, mcf: &mut MainConf) -> Result<(), ()> {
    let tables = std::mem::take(&mut mcf.pending);
    if ngx_test_config != 0 || mcf.sources.is_empty() {
        return Ok(());
    }
    let log = (*cycle).log;
    let shared = match Shared::new(mcf.sources.len()) {
        Ok(shared) => shared,
        Err(e) => {
            ngx::ngx_log_error!(NGX_LOG_EMERG, log, "mtls: cannot create shared memory: {e}");
            return Err(());
        }
    };
    let now = crate::loader::now();
    for (i, loaded) in tables.iter().enumerate() {
        let Some(loaded) = loaded else {
            shared.slot(i).set_error(now, "not loaded at start");
            continue;
        };
        if let Err(e) = shared.publish(i, loaded, now) {
            ngx::ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "mtls: cannot publish \"{}\" in /dev/shm: {e}",
                mcf.sources[i].path.display()
            );
            shared.remove_files();
            return Err(());
        }
    }
    mcf.shared = Some(Arc::new(shared));
    Ok(())
}
