//! The URL forms of `mtls_crl` and `mtls_deny_list`, with their parameters
//! in nginx's style (`interval=5m timeout=10s ca=FILE max_size=8m
//! optional`), and `mtls_cache_dir`.

use core::ffi::{c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use ngx::core::{NgxStr, NGX_CONF_OK};
use ngx::ffi::*;

use super::{invalid_value, MainConf};
use crate::loader::url::UrlSource;

/// The full path of a file argument, resolved against the prefix as nginx
/// does for its own file directives; `None` for an empty name.
///
/// # Safety
/// `cf` is the configuration being parsed and `name` one of its arguments.
pub(super) unsafe fn full_path(cf: *mut ngx_conf_t, mut name: ngx_str_t) -> Option<PathBuf> {
    if name.len == 0 || ngx_conf_full_name((*cf).cycle, &mut name, 1) != NGX_OK as ngx_int_t {
        return None;
    }
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(
        NgxStr::from_ngx_str(name).as_bytes(),
    )))
}

/// Parses `URL [interval=time] [timeout=time] [ca=file] [max_size=size]
/// [optional]`: `args` are the directive's arguments, its name first.
///
/// # Safety
/// `cf` is the configuration being parsed and `args` its arguments.
pub(super) unsafe fn parse(
    cf: *mut ngx_conf_t,
    args: &[ngx_str_t],
) -> Result<(UrlSource, bool), *mut c_char> {
    let url = NgxStr::from_ngx_str(args[1]).to_string();
    if url
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(invalid_value(cf, &args[0], &args[1], "invalid URL"));
    }
    let mut source = UrlSource::new(url);
    let mut optional = false;
    for arg in &args[2..] {
        let text = NgxStr::from_ngx_str(*arg).as_bytes();
        if text == b"optional" {
            optional = true;
            continue;
        }
        let Some(eq) = text.iter().position(|&b| b == b'=') else {
            return Err(invalid_value(cf, &args[0], arg, "unknown parameter"));
        };
        let mut value = ngx_str_t {
            len: arg.len - eq - 1,
            data: arg.data.add(eq + 1),
        };
        let bad = |reason: &str| invalid_value(cf, &args[0], arg, reason);
        match &text[..eq] {
            b"interval" | b"timeout" => {
                let secs = ngx_parse_time(&mut value, 1);
                if secs == NGX_ERROR as ngx_int_t || secs <= 0 {
                    return Err(bad("invalid time"));
                }
                let d = Duration::from_secs(secs as u64);
                if text.starts_with(b"interval") {
                    source.interval = d;
                } else {
                    source.set_timeout(d);
                }
            }
            b"max_size" => {
                let size = ngx_parse_size(&mut value);
                if size <= 0 {
                    return Err(bad("invalid size"));
                }
                source.limits.max_size = size as u64;
            }
            b"ca" => match full_path(cf, value) {
                Some(path) => source.ca_file = Some(path),
                None => return Err(bad("bad file name")),
            },
            _ => return Err(invalid_value(cf, &args[0], arg, "unknown parameter")),
        }
    }
    Ok((source, optional))
}

/// `mtls_cache_dir PATH;`
pub(super) extern "C" fn set_cache_dir(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf` is
    // this module's MainConf; TAKE1 guarantees two arguments.
    let (mcf, args) = unsafe { (&mut *conf.cast::<MainConf>(), super::args(cf)) };
    if mcf.cache_dir.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    // SAFETY: `cf` is being parsed and `args[1]` its argument.
    match unsafe { full_path(cf, args[1]) } {
        Some(path) => {
            mcf.cache_dir = Some(path);
            NGX_CONF_OK
        }
        None => invalid_value(cf, &args[0], &args[1], "bad directory name"),
    }
}
