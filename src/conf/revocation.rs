//! The revocation sources in the configuration: `mtls_crl` and
//! `mtls_deny_list`, reading them when the configuration is read, and
//! publishing their tables once it is accepted.

use core::ffi::{c_char, c_void};
use std::os::unix::ffi::OsStrExt;
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
use crate::loader::{FileId, Source};
use crate::policy::Policy;
use crate::revocation::Kind;
use crate::state::Shared;
use crate::Module;

std::thread_local! {
    /// The smallest `mtls_crl_grace` of any merged location using each
    /// source, collected while the configuration is merged (in the one
    /// thread that parses it) and read by [`init_revocation`].
    static GRACES: core::cell::RefCell<Vec<(usize, time_t)>> =
        const { core::cell::RefCell::new(Vec::new()) };
}

pub(super) fn note_grace(policy: &Policy, grace: time_t) {
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

impl MainConf {
    /// The index of a source, registered once however many levels use it.
    pub(super) fn add_source(&mut self, path: PathBuf, kind: Kind, optional: bool) -> usize {
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
    let optional = match args.get(2) {
        None => false,
        // SAFETY: a valid argument of the directive.
        Some(a) if unsafe { NgxStr::from_ngx_str(*a) } == "optional" => true,
        Some(a) => return invalid_value(cf, &args[0], a, "the parameter must be \"optional\""),
    };
    let mut name = args[1];
    if name.len == 0
        // SAFETY: resolves the path against the prefix, allocating in the
        // cycle's pool, as nginx does for its own file directives.
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
pub unsafe fn init_revocation(cf: *mut ngx_conf_t) -> Result<(), ConfError> {
    let mcf = Module::main_conf_mut(&*cf).ok_or(ConfError::NoConfiguration)?;
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
    let ca_files = super::servers::ca_files(cf)?;
    // The warning about stale CRLs uses the smallest grace in force.
    for (i, grace) in GRACES.with(|g| std::mem::take(&mut *g.borrow_mut())) {
        if let Some(source) = mcf.sources.get_mut(i) {
            source.grace = source.grace.min(grace);
        }
    }
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
            Err(e) => return Err(e.into()),
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
/// Only in the master (or single) process, from init_module.
pub unsafe fn publish(mcf: &mut MainConf) -> Result<(), ConfError> {
    let tables = std::mem::take(&mut mcf.pending);
    if ngx_test_config != 0 || mcf.sources.is_empty() {
        return Ok(());
    }
    let shared = Shared::new(mcf.sources.len()).map_err(ConfError::SharedMemory)?;
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
    mcf.shared = Some(Arc::new(shared));
    Ok(())
}
