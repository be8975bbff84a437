//! `ngx_http_mtls_module`: client-certificate identity policy for nginx.
//!
//! This file holds the module's statics and lifecycle hooks only; see
//! `conf` (directives), `access` (the decision per request), `tls` (the
//! connection's certificate), `identity` (what a certificate says),
//! `policy` (rules and matching) and `variables`.

pub mod expiry;
pub mod forward;
pub mod hex;
pub mod identity;
pub mod policy;

pub mod loader;
pub mod ocsp;
pub mod revocation;
pub mod state;

#[cfg(all(feature = "nginx", not(test)))]
mod access;
#[cfg(all(feature = "nginx", not(test)))]
mod conf;
#[cfg(all(feature = "nginx", not(test)))]
mod status;
#[cfg(all(feature = "nginx", not(test)))]
mod tls;
#[cfg(all(feature = "nginx", not(test)))]
mod variables;
#[cfg(all(feature = "nginx", not(test)))]
mod worker;

#[cfg(all(feature = "nginx", not(test)))]
pub use module::ngx_http_mtls_module;

/// The nginx glue. It is left out of unit tests, which link no nginx, and
/// of builds without the `nginx` feature (fuzz targets, benchmarks).
#[cfg(all(feature = "nginx", not(test)))]
mod module {
    use core::ffi::c_void;
    use core::ptr;

    use ngx::ffi::*;
    use ngx::http::{
        HttpModule, HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf,
        NgxHttpCoreModule,
    };

    use crate::conf::{LocConf, MainConf, SrvConf, NGX_HTTP_MTLS_COMMANDS};

    pub(crate) struct Module;

    impl HttpModule for Module {
        fn module() -> &'static ngx_module_t {
            // SAFETY: the module static is initialized at load and only
            // nginx writes to it (its index), before any request.
            unsafe { &*ptr::addr_of!(ngx_http_mtls_module) }
        }

        unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
            crate::conf::begin();
            crate::variables::add_variables(cf)
        }

        unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
            if let Err(e) =
                crate::conf::check_servers(cf).and_then(|()| crate::conf::init_revocation(cf))
            {
                ngx::ngx_log_error!(NGX_LOG_EMERG, (*cf).log, "{e}");
                return NGX_ERROR as ngx_int_t;
            }
            let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(&*cf) else {
                return NGX_ERROR as ngx_int_t;
            };
            let handlers: [(_, extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t); 3] = [
                (
                    ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
                    crate::access::access_handler,
                ),
                (
                    ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE,
                    crate::forward::clear::precontent_handler,
                ),
                (
                    ngx_http_phases_NGX_HTTP_LOG_PHASE,
                    crate::access::log_handler,
                ),
            ];
            for (phase, handler) in handlers {
                let h = ngx_array_push(&mut cmcf.phases[phase as usize].handlers)
                    .cast::<ngx_http_handler_pt>();
                if h.is_null() {
                    return NGX_ERROR as ngx_int_t;
                }
                *h = Some(handler);
            }
            crate::access::install_header_filter();
            NGX_OK as ngx_int_t
        }
    }

    // SAFETY: the configuration types below are the ones the create/merge
    // callbacks of NGX_HTTP_MTLS_MODULE_CTX allocate.
    unsafe impl HttpModuleMainConf for Module {
        type MainConf = MainConf;
    }
    // SAFETY: as above.
    unsafe impl HttpModuleServerConf for Module {
        type ServerConf = SrvConf;
    }
    // SAFETY: as above.
    unsafe impl HttpModuleLocationConf for Module {
        type LocationConf = LocConf;
    }

    static NGX_HTTP_MTLS_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
        preconfiguration: Some(Module::preconfiguration),
        postconfiguration: Some(Module::postconfiguration),
        create_main_conf: Some(Module::create_main_conf),
        init_main_conf: None,
        create_srv_conf: Some(Module::create_srv_conf),
        merge_srv_conf: Some(Module::merge_srv_conf),
        create_loc_conf: Some(Module::create_loc_conf),
        merge_loc_conf: Some(Module::merge_loc_conf),
    };

    ngx::ngx_modules!(ngx_http_mtls_module);

    #[used]
    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_http_mtls_module: ngx_module_t = ngx_module_t {
        ctx: ptr::addr_of!(NGX_HTTP_MTLS_MODULE_CTX) as *mut c_void,
        commands: ptr::addr_of_mut!(NGX_HTTP_MTLS_COMMANDS) as *mut ngx_command_t,
        type_: NGX_HTTP_MODULE as ngx_uint_t,
        init_module: Some(init_module),
        init_process: Some(init_process),
        exit_process: Some(exit_process),
        exit_master: Some(exit_master),
        ..ngx_module_t::default()
    };

    /// Runs once the whole configuration was read and accepted: only then
    /// are its tables published, so a configuration that fails later
    /// leaves nothing in /dev/shm. Then the heap that reading it left free
    /// goes back to the system, before the master forks its workers.
    extern "C" fn init_module(cycle: *mut ngx_cycle_t) -> ngx_int_t {
        // SAFETY: as in init_process.
        let published = std::panic::catch_unwind(|| unsafe {
            Module::main_conf_mut(&*cycle).map_or(Ok(()), |mcf| {
                mcf.access_phase = crate::access::access_phase_index(&*cycle);
                crate::conf::publish(cycle, mcf)?;
                crate::status::expiry::create(cycle, mcf)?;
                crate::conf::publish_ocsp(mcf)
            })
        });
        crate::loader::release_memory();
        match published {
            Ok(Ok(())) => NGX_OK as ngx_int_t,
            Ok(Err(e)) => {
                // SAFETY: nginx passes its live cycle, whose log is set.
                ngx::ngx_log_error!(NGX_LOG_EMERG, unsafe { (*cycle).log }, "{e}");
                NGX_ERROR as ngx_int_t
            }
            Err(_) => NGX_ERROR as ngx_int_t,
        }
    }

    extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
        // SAFETY: nginx passes its live cycle; the main configuration of
        // this module is the one create_main_conf made for it.
        let _ = std::panic::catch_unwind(|| unsafe {
            if let Some(mcf) = Module::main_conf(&*cycle) {
                crate::worker::start(cycle, mcf);
            }
        });
        NGX_OK as ngx_int_t
    }

    extern "C" fn exit_process(cycle: *mut ngx_cycle_t) {
        let _ = std::panic::catch_unwind(|| crate::worker::stop(cycle));
    }

    extern "C" fn exit_master(cycle: *mut ngx_cycle_t) {
        // SAFETY: as in init_process.
        let _ = std::panic::catch_unwind(|| unsafe {
            if let Some(shared) = Module::main_conf(&*cycle).and_then(|m| m.shared.as_ref()) {
                shared.remove_files();
            }
        });
    }
}

#[cfg(all(feature = "nginx", not(test)))]
use module::Module;
