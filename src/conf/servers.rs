//! The servers of the configuration: the check, once every server is
//! merged, that servers with `mtls` rules ask for client certificates, and
//! the CA certificates they verify clients with.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use ngx::core::NgxStr;
use ngx::ffi::*;
use ngx::http::{
    HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule,
    NgxHttpSslModule,
};

use super::ConfError;
use crate::Module;

/// The servers of the http block.
///
/// # Safety
/// `cf` must be the configuration nginx passes to postconfiguration.
unsafe fn servers<'a>(
    cf: *mut ngx_conf_t,
) -> Result<&'a [&'a ngx_http_core_srv_conf_t], ConfError> {
    let cmcf = NgxHttpCoreModule::main_conf(&*cf).ok_or(ConfError::NoConfiguration)?;
    // SAFETY: the core module's `servers` array holds pointers to its
    // server configurations, valid for the whole configuration; a shared
    // reference has the layout of a non-null pointer.
    Ok(cmcf.servers.as_slice::<&ngx_http_core_srv_conf_t>())
}

/// Refuses a server that has `mtls` rules of its own but never asks for a
/// client certificate, and warns where only http-level rules reach it:
/// every request there would be denied.
///
/// # Safety
/// `cf` must be the configuration nginx passes to postconfiguration, after
/// the servers were merged.
pub unsafe fn check_servers(cf: *mut ngx_conf_t) -> Result<(), ConfError> {
    for &cscf in servers(cf)? {
        let (Some(scf), Some(sscf), Some(lcf)) = (
            Module::server_conf(cscf),
            NgxHttpSslModule::server_conf(cscf),
            Module::location_conf(cscf),
        ) else {
            return Err(ConfError::NoConfiguration);
        };
        if sscf.verify != 0 {
            continue;
        }
        let server = core::ffi::CStr::from_ptr(cscf.file_name.cast()).to_string_lossy();
        let line = cscf.line;
        if let Some((file, used_at)) = scf.first_use {
            return Err(ConfError::NoVerifyClient {
                used_in: format!("{}:{used_at}", NgxStr::from_ngx_str(file)),
                server: format!("{server}:{line}"),
            });
        }
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

/// The files of CA certificates nginx verifies clients with, in any
/// server (`ssl_client_certificate`, `ssl_trusted_certificate`): the
/// certificates that may sign CRLs.
///
/// # Safety
/// As for [`check_servers`].
pub(super) unsafe fn ca_files(cf: *mut ngx_conf_t) -> Result<Vec<PathBuf>, ConfError> {
    let mut ca_files: Vec<PathBuf> = Vec::new();
    for &cscf in servers(cf)? {
        let sscf = NgxHttpSslModule::server_conf(cscf).ok_or(ConfError::NoConfiguration)?;
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
    Ok(ca_files)
}
