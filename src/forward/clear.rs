//! `mtls_clear_request_headers`: the headers a client sends in the names
//! of the identity nginx passes on are removed from the request before it
//! reaches a content handler, so that `proxy_pass` (or `fastcgi_pass`,
//! `grpc_pass`, ...) never forwards them, whatever `proxy_set_header`
//! levels are in effect.
//!
//! This runs in the precontent phase: every request that reaches a content
//! handler goes through it, internal redirects and subrequests included,
//! while access handlers may be skipped (`satisfy any`, subrequests).
//! A `proxy_set_header` of the same name still sends its own value: the
//! proxy module builds that header from its configuration, not from the
//! request's.

use core::ffi::{c_char, c_void};
use core::ptr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use ngx::core::{NgxStr, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};

use super::HeaderNames;
use crate::conf::LocConf;
use crate::Module;

/// `mtls_clear_request_headers off | name ...;`
pub extern "C" fn set_clear_headers(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with valid pointers; `conf` is
    // this module's LocConf; the arguments array holds `nelts` strings,
    // the name first, and 1MORE guarantees a value after it.
    let (lcf, args) = unsafe {
        let args = &*(*cf).args;
        (
            &mut *conf.cast::<LocConf>(),
            core::slice::from_raw_parts(args.elts as *const ngx_str_t, args.nelts),
        )
    };
    if lcf.clear_headers.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    let known = known_headers();
    let mut names = HeaderNames::none();
    for value in &args[1..] {
        // SAFETY: a valid argument of the directive.
        let text = unsafe { NgxStr::from_ngx_str(*value) };
        if text == "off" {
            if args.len() > 2 {
                return crate::conf::invalid_value(
                    cf,
                    &args[0],
                    value,
                    "\"off\" must be the only value",
                );
            }
            break;
        }
        let added = match text.to_str() {
            Ok(name) => names.add(name, &known),
            Err(_) => Err(super::NameError::Invalid),
        };
        if let Err(e) = added {
            return crate::conf::invalid_value(cf, &args[0], value, e);
        }
    }
    lcf.clear_headers = Some(Arc::new(names));
    NGX_CONF_OK
}

/// The names in nginx's own table of request headers, which it keeps
/// pointers to.
fn known_headers() -> Vec<&'static [u8]> {
    let mut known = Vec::new();
    // SAFETY: `ngx_http_headers_in` is nginx's static table, ended by an
    // entry with an empty name; its strings are static too.
    unsafe {
        let mut h = ptr::addr_of!(ngx_http_headers_in).cast::<ngx_http_header_t>();
        while (*h).name.len != 0 {
            known.push(core::slice::from_raw_parts((*h).name.data, (*h).name.len));
            h = h.add(1);
        }
    }
    known
}

/// The names removed where the directive is not set.
fn default_names() -> &'static HeaderNames {
    static DEFAULT: OnceLock<HeaderNames> = OnceLock::new();
    DEFAULT.get_or_init(HeaderNames::default_names)
}

/// Precontent phase: removes the configured headers from the request.
pub extern "C" fn precontent_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request being processed.
    let r = unsafe { Request::from_ngx_http_request(r) };
    catch_unwind(AssertUnwindSafe(|| {
        // Seen once per connection: a certificate that reaches content
        // counts in the status even where no rule or variable looked at it.
        // SAFETY: the request's connection is live while the request is.
        let _ = unsafe { crate::tls::client_cert(r.connection()) };
        let names = Module::location_conf(r)
            .and_then(|lcf| lcf.clear_headers.as_deref())
            .unwrap_or_else(|| default_names());
        if names.is_empty() {
            return NGX_DECLINED as ngx_int_t;
        }
        let pool = r.pool().as_mut() as *mut ngx_pool_t;
        // SAFETY: the request's header list and its pool, both live.
        match unsafe { remove(&mut r.as_mut().headers_in.headers, pool, names) } {
            Ok(()) => NGX_DECLINED as ngx_int_t,
            Err(()) => NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        }
    }))
    .unwrap_or(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}

/// The elements of `list`, each as the header it starts with.
///
/// # Safety
/// `list` must be a live list of `ngx_table_elt_t` (or of a larger element
/// that starts with one, as `size` says).
unsafe fn elements(list: &ngx_list_t) -> impl Iterator<Item = *const ngx_table_elt_t> + '_ {
    let size = list.size;
    let mut part: *const ngx_list_part_t = &list.part;
    let mut i = 0;
    core::iter::from_fn(move || loop {
        if part.is_null() {
            return None;
        }
        if i < (*part).nelts {
            let elt = (*part).elts.cast::<u8>().add(i * size);
            i += 1;
            return Some(elt.cast::<ngx_table_elt_t>().cast_const());
        }
        part = (*part).next;
        i = 0;
    })
}

/// Removes the headers `names` matches from `list`. Where one is present
/// (only when a client sent it), the list is rebuilt without it in new
/// memory from `pool`: elements keep their content where they were, so
/// that nginx's pointers into the list (`r->headers_in.host`, ...) stay
/// valid.
///
/// # Safety
/// `list` must be a request's live `headers_in.headers`, `pool` its pool.
unsafe fn remove(
    list: &mut ngx_list_t,
    pool: *mut ngx_pool_t,
    names: &HeaderNames,
) -> Result<(), ()> {
    let name = |elt: *const ngx_table_elt_t| {
        let key = (*elt).key;
        if key.data.is_null() {
            &[][..]
        } else {
            core::slice::from_raw_parts(key.data, key.len)
        }
    };
    let (mut total, mut removed) = (0usize, 0usize);
    for elt in elements(list) {
        total += 1;
        removed += usize::from(names.matches(name(elt)));
    }
    if removed == 0 {
        return Ok(());
    }
    let size = list.size;
    let keep = total - removed;
    let nalloc = keep.max(1);
    let elts = ngx_palloc(pool, nalloc * size).cast::<u8>();
    if elts.is_null() {
        return Err(());
    }
    let mut n = 0;
    for elt in elements(list) {
        if !names.matches(name(elt)) {
            ptr::copy_nonoverlapping(elt.cast::<u8>(), elts.add(n * size), size);
            n += 1;
        }
    }
    list.part = ngx_list_part_t {
        elts: elts.cast(),
        nelts: n,
        next: ptr::null_mut(),
    };
    list.nalloc = nalloc;
    list.last = &mut list.part;
    Ok(())
}

/// Where `lcf` sets nothing, the enclosing level's setting.
pub fn merge(lcf: &mut LocConf, prev: &LocConf) {
    if lcf.clear_headers.is_none() {
        lcf.clear_headers.clone_from(&prev.clear_headers);
    }
}
