//! The check, once every server is merged, that servers with `mtls`
//! rules ask for client certificates.

use core::ptr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use ngx::core::NgxStr;
use ngx::ffi::*;
use ngx::http::HttpModule;

use super::{LocConf, SrvConf};
use crate::Module;

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

/// The files of CA certificates nginx verifies clients with, in any
/// server (`ssl_client_certificate`, `ssl_trusted_certificate`): the
/// certificates that may sign CRLs.
///
/// # Safety
/// As for [`check_servers`].
pub(super) unsafe fn ca_files(cf: *mut ngx_conf_t) -> Option<Vec<PathBuf>> {
    use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule};

    let cmcf = NgxHttpCoreModule::main_conf(&*cf)?;
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
    Some(ca_files)
}
