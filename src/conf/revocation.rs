//! The revocation sources in the configuration: `mtls_crl` and
//! `mtls_deny_list`, reading them when the configuration is read, and
//! publishing their tables once it is accepted.

use core::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::Arc;

use ngx::core::{NgxStr, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModule, HttpModuleMainConf};
use openssl::x509::X509;

use super::{
    args, invalid_value, mark_server_use, CaFileError, ConfError, LocConf, MainConf,
    NGX_CONF_UNSET_MSEC,
};
use crate::loader::url::{self, UrlSource};
use crate::loader::{FileId, LoadError, Source};
use crate::policy::Policy;
use crate::revocation::Kind;
use crate::state::fetch::Attempt;
use crate::state::Shared;
use crate::Module;

std::thread_local! {
    /// The smallest `mtls_crl_grace` of any merged location using each
    /// source, collected while the configuration is merged (in the one
    /// thread that parses it) and read by [`init_revocation`].
    static GRACES: core::cell::RefCell<Vec<(usize, time_t)>> =
        const { core::cell::RefCell::new(Vec::new()) };
    /// The same for the CRLs discovered by `mtls_crl_cdp`: the smallest
    /// `mtls_crl_grace` where it is not off.
    static CDP_GRACE: core::cell::Cell<time_t> = const { core::cell::Cell::new(time_t::MAX) };
}

pub(super) fn note_grace(policy: &Policy, grace: time_t, cdp: bool) {
    if cdp {
        CDP_GRACE.with(|g| g.set(g.get().min(grace)));
    }
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
    CDP_GRACE.with(|g| g.set(time_t::MAX));
}

impl MainConf {
    /// What log lines call source `i`: the file (for a URL source, the
    /// copy kept of it), or the URL of a discovered one.
    pub fn source_label(&self, i: usize) -> Option<String> {
        if let Some(source) = self.sources.get(i) {
            return Some(source.path.display().to_string());
        }
        let registry = self.cdp.registry.as_ref()?;
        let j = i.checked_sub(self.cdp.base)?;
        (j < registry.len()).then(|| registry.url(j))
    }

    /// The index of a source, registered once however many levels use it.
    /// A URL source is known by its URL; its `path`, the copy kept, is
    /// set once `mtls_cache_dir` is known.
    pub(super) fn add_source(
        &mut self,
        path: PathBuf,
        url: Option<UrlSource>,
        kind: Kind,
        optional: bool,
    ) -> Result<usize, &'static str> {
        if let Some(i) = self.sources.iter().position(|s| {
            s.kind == kind
                && match (&s.url, &url) {
                    (Some(a), Some(b)) => a.url == b.url,
                    (None, None) => s.path == path,
                    _ => false,
                }
        }) {
            if self.sources[i].url.as_deref() != url.as_ref() {
                return Err("the URL is used elsewhere with other parameters");
            }
            // Required anywhere means required.
            self.sources[i].optional &= optional;
            return Ok(i);
        }
        self.sources.push(Source {
            path,
            url: url.map(Arc::new),
            kind,
            optional,
            grace: i64::MAX,
        });
        Ok(self.sources.len() - 1)
    }
}

/// `mtls_crl FILE [optional];` and `mtls_deny_list FILE [optional];`
pub(super) extern "C" fn set_source(
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
    // SAFETY: a valid argument of the directive.
    let (path, url, optional) = if url::is_url(unsafe { NgxStr::from_ngx_str(args[1]) }.as_bytes())
    {
        // SAFETY: `cf` is being parsed and `args` are its arguments.
        match unsafe { super::url::parse(cf, args) } {
            Ok((u, optional)) => (PathBuf::new(), Some(u), optional),
            Err(e) => return e,
        }
    } else {
        if args.len() > 3 {
            return invalid_value(cf, &args[0], &args[3], "too many parameters for a file");
        }
        let optional = match args.get(2) {
            None => false,
            // SAFETY: a valid argument of the directive.
            Some(a) if unsafe { NgxStr::from_ngx_str(*a) } == "optional" => true,
            Some(a) => return invalid_value(cf, &args[0], a, "the parameter must be \"optional\""),
        };
        // SAFETY: `cf` is being parsed and `args[1]` its argument.
        match unsafe { super::url::full_path(cf, args[1]) } {
            Some(path) => (path, None, optional),
            None => return invalid_value(cf, &args[0], &args[1], "bad file name"),
        }
    };
    // SAFETY: `cf` is the configuration being parsed, inside http.
    let Some(mcf) = (unsafe { Module::main_conf_mut(&*cf) }) else {
        return NGX_CONF_ERROR;
    };
    let index = match mcf.add_source(path, url, kind, optional) {
        Ok(index) => index,
        Err(reason) => return invalid_value(cf, &args[0], &args[1], reason),
    };
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
pub unsafe fn init_revocation(cf: *mut ngx_conf_t) -> Result<(), ConfError> {
    let mcf = Module::main_conf_mut(&*cf).ok_or(ConfError::NoConfiguration)?;
    if mcf.reload_interval == NGX_CONF_UNSET_MSEC {
        mcf.reload_interval = 1000;
    }
    // `nginx -s stop|quit|reopen|reload` parses the configuration only to
    // find the master: a broken revocation file must not keep the operator
    // from signalling it (on reload the master reads the files itself).
    if (mcf.sources.is_empty() && !mcf.ocsp.used && mcf.cdp.used.is_none())
        || ngx_process == NGX_PROCESS_SIGNALLER as ngx_uint_t
    {
        return Ok(());
    }
    let log = (*cf).log;
    let ca_files = super::servers::ca_files(cf)?;
    // The warning about stale CRLs uses the smallest grace in force.
    for (i, grace) in GRACES.with(|g| std::mem::take(&mut *g.borrow_mut())) {
        if let Some(source) = mcf.sources.get_mut(i) {
            source.grace = source.grace.min(grace);
        }
    }
    mcf.cdp.grace = CDP_GRACE.with(|g| g.replace(time_t::MAX));
    for file in &ca_files {
        let certs = std::fs::read(file)
            .map_err(CaFileError::from)
            .and_then(|pem| Ok(X509::stack_from_pem(&pem)?))
            .map_err(|source| ConfError::CaFile {
                path: file.display().to_string(),
                source,
            })?;
        mcf.cas.extend(certs);
    }

    // On `nginx -s reload`, the tables in force are those of the running
    // configuration: a CRL older than its own is refused here as the loader
    // refuses it, or a reload would replay an old CRL.
    let cache_dir = mcf
        .cache_dir
        .get_or_insert_with(|| url::DEFAULT_CACHE_DIR.into())
        .clone();
    for source in mcf.sources.iter_mut() {
        if let Some(u) = &source.url {
            source.path = url::cache_path(&cache_dir, &u.url, source.kind);
        }
    }
    let running = running_conf(cf).and_then(|old| Some((old, old.shared.as_ref()?)));
    let mut tables = Vec::with_capacity(mcf.sources.len());
    mcf.loaded.clear();
    mcf.fetched.clear();
    for source in &mcf.sources {
        let id = FileId::of(source).ok();
        let in_force = running.and_then(|(old, shared)| {
            let i = old.sources.iter().position(|s| {
                // A URL is the same source whatever its parameters.
                s.path == source.path
                    && s.kind == source.kind
                    && s.url.as_ref().map(|u| &u.url) == source.url.as_ref().map(|u| &u.url)
            })?;
            Some((i, shared))
        });
        let cas = &mcf.cas;
        let read_one = |t: Option<&crate::revocation::Table<'_>>| match &source.url {
            Some(u) => url::read_at_start(source, u, cas, t)
                .map_err(LoadError::Url)
                .map(|s| {
                    let fetched = match (s.kept, s.warning) {
                        (Some(kept), _) => Some(Ok(kept)),
                        (None, Some(warning)) => {
                            ngx::ngx_log_error!(NGX_LOG_WARN, log, "mtls: {warning}");
                            Some(Err(warning))
                        }
                        // Not modified: the copy is current.
                        (None, None) => None,
                    };
                    (s.loaded, fetched)
                }),
            None => crate::loader::read(source, cas, t).map(|l| (l, None)),
        };
        let read = match in_force {
            Some((i, shared)) => {
                let read = shared.with_table(i, |t| read_one(t.as_ref()));
                // The master maps tables only for this check.
                shared.unmap_all();
                read
            }
            None => read_one(None),
        };
        match read {
            Ok((loaded, fetched)) => {
                tables.push(Some(loaded));
                mcf.loaded.push(id);
                mcf.fetched.push(fetched);
            }
            Err(e) if source.optional => {
                ngx::ngx_log_error!(
                    NGX_LOG_WARN,
                    log,
                    "mtls: {e}; requests that \"{}\" guards are denied until {}",
                    source.name(),
                    if source.url.is_some() {
                        "it is fetched"
                    } else {
                        "a valid file arrives"
                    }
                );
                tables.push(None);
                mcf.loaded.push(None);
                mcf.fetched.push(Some(Err(e.to_string())));
            }
            Err(e) => return Err(e.into()),
        }
    }
    mcf.pending = tables;
    super::cdp::init(mcf, &cache_dir)
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
/// Only in the master (or single) process, from init_module, with its
/// cycle.
pub unsafe fn publish(cycle: *mut ngx_cycle_t, mcf: &mut MainConf) -> Result<(), ConfError> {
    let tables = std::mem::take(&mut mcf.pending);
    if ngx_test_config != 0 || (mcf.sources.is_empty() && !mcf.ocsp.used && mcf.cdp.used.is_none())
    {
        return Ok(());
    }
    let shared =
        Shared::new(mcf.sources.len() + mcf.cdp.slots()).map_err(ConfError::SharedMemory)?;
    let now = crate::loader::now();
    for (i, loaded) in tables.iter().enumerate() {
        let Some(loaded) = loaded else {
            shared.slot(i).set_error(now, "not loaded at start");
            continue;
        };
        if let Err(source) = shared.publish(i, loaded, now) {
            shared.remove_files();
            return Err(ConfError::Publish {
                path: mcf.sources[i].path.display().to_string(),
                source,
            });
        }
    }
    if let Err(e) = super::cdp::publish(mcf, &shared, now) {
        shared.remove_files();
        return Err(e);
    }
    mcf.shared = Some(Arc::new(shared));
    keep_fetched(cycle, mcf);
    Ok(())
}

/// Writes the bodies fetched with the configuration to `mtls_cache_dir`,
/// made if need be and given to the workers' user, whose loader process
/// replaces the copies later. A copy that cannot be written is a warning:
/// the data is in force, only a restart without network would miss it.
///
/// # Safety
/// `cycle` must be the cycle whose configuration `mcf` belongs to.
unsafe fn keep_fetched(cycle: *mut ngx_cycle_t, mcf: &mut MainConf) {
    let fetched = std::mem::take(&mut mcf.fetched);
    let (Some(dir), Some(shared)) = (&mcf.cache_dir, &mcf.shared) else {
        return;
    };
    if !mcf.sources.iter().any(|s| s.url.is_some()) && mcf.cdp.used.is_none() {
        return;
    }
    let log = (*cycle).log;
    let warn = |what: String| {
        ngx::ngx_log_error!(NGX_LOG_WARN, log, "mtls: {what}");
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        warn(format!("cannot create \"{}\": {e}", dir.display()));
        return;
    }
    // As nginx does for its temporary paths: the workers' user owns them.
    let ccf = *(*cycle).conf_ctx.add(ngx_core_module.index) as *const ngx_core_conf_t;
    let user = if ccf.is_null() || libc::geteuid() != 0 {
        None
    } else {
        Some((*ccf).user).filter(|&u| u != libc::uid_t::MAX)
    };
    let chown = |path: &std::path::Path| {
        if let Some(uid) = user {
            if let Err(e) = std::os::unix::fs::chown(path, Some(uid), None) {
                warn(format!("cannot chown \"{}\": {e}", path.display()));
            }
        }
    };
    chown(dir);
    let now = crate::loader::now();
    for (i, (source, fetched)) in mcf.sources.iter().zip(fetched).enumerate() {
        let (Some(u), Some(fetched)) = (&source.url, fetched) else {
            continue;
        };
        let slot = shared.slot(i);
        let kept = match fetched {
            Ok(kept) => kept,
            Err(e) => {
                // The loader tries again at once.
                slot.set_error(now, &e);
                slot.fetch.record(&Attempt {
                    at: now,
                    http_status: 0,
                    bytes: None,
                    next: now,
                    failures: 1,
                    validators: None,
                });
                continue;
            }
        };
        let v = &kept.validators;
        slot.fetch.record(&Attempt {
            at: now,
            http_status: 200,
            bytes: Some(kept.body.len() as u64),
            next: now + u.interval.as_secs() as i64,
            failures: 0,
            validators: Some((
                v.etag.as_deref().unwrap_or(""),
                v.last_modified.as_deref().unwrap_or(""),
            )),
        });
        match url::keep(&source.path, &u.url, &kept) {
            Ok(()) => {
                chown(&source.path);
                let mut meta = source.path.as_os_str().to_owned();
                meta.push(".meta");
                chown(std::path::Path::new(&meta));
            }
            Err(e) => warn(format!(
                "cannot keep a copy of \"{}\" in \"{}\": {e}",
                u.url,
                source.path.display()
            )),
        }
    }
}
