//! The `$mtls_*` variables.
//!
//! Certificate variables describe only a certificate that verified, so an
//! unverified certificate's names never reach a header. Every value is
//! printable ASCII: control characters and non-ASCII bytes are escaped.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::*;
use ngx::http::Request;
use ngx::ngx_string;

use crate::access::{verdict, Verdict};
use crate::forward::x5t_s256;
use crate::hex::lower_hex;
use crate::identity::dn::{escape_value, Dn};
use crate::identity::Identity;
use crate::tls::{client_cert, client_cert_chain_field, client_cert_field};

#[derive(Clone, Copy)]
enum Var {
    Decision,
    Reason,
    Subject,
    Issuer,
    Cn,
    Serial,
    Fingerprint,
    SanDns,
    SanEmail,
    SanUri,
    SanIp,
    SpiffeId,
    NotAfter,
    ExpiresIn,
    ClientCert,
    ClientCertChain,
    X5tS256,
}

const VARS: [(ngx_str_t, Var, u32); 17] = [
    (
        ngx_string!("mtls_decision"),
        Var::Decision,
        NGX_HTTP_VAR_NOCACHEABLE,
    ),
    (
        ngx_string!("mtls_reason"),
        Var::Reason,
        NGX_HTTP_VAR_NOCACHEABLE,
    ),
    (ngx_string!("mtls_subject"), Var::Subject, 0),
    (ngx_string!("mtls_issuer"), Var::Issuer, 0),
    (ngx_string!("mtls_cn"), Var::Cn, 0),
    (ngx_string!("mtls_serial"), Var::Serial, 0),
    (ngx_string!("mtls_fingerprint"), Var::Fingerprint, 0),
    (ngx_string!("mtls_san_dns"), Var::SanDns, 0),
    (ngx_string!("mtls_san_email"), Var::SanEmail, 0),
    (ngx_string!("mtls_san_uri"), Var::SanUri, 0),
    (ngx_string!("mtls_san_ip"), Var::SanIp, 0),
    (ngx_string!("mtls_spiffe_id"), Var::SpiffeId, 0),
    (ngx_string!("mtls_not_after"), Var::NotAfter, 0),
    (
        ngx_string!("mtls_expires_in"),
        Var::ExpiresIn,
        NGX_HTTP_VAR_NOCACHEABLE,
    ),
    // Set only where the module allowed the request: they depend on the
    // location's decision, as $mtls_decision does.
    (
        ngx_string!("mtls_client_cert"),
        Var::ClientCert,
        NGX_HTTP_VAR_NOCACHEABLE,
    ),
    (
        ngx_string!("mtls_client_cert_chain"),
        Var::ClientCertChain,
        NGX_HTTP_VAR_NOCACHEABLE,
    ),
    (
        ngx_string!("mtls_x5t_s256"),
        Var::X5tS256,
        NGX_HTTP_VAR_NOCACHEABLE,
    ),
];

/// Registers the variables; called from preconfiguration.
///
/// # Safety
/// `cf` must be the configuration nginx passes to preconfiguration.
pub unsafe fn add_variables(cf: *mut ngx_conf_t) -> ngx_int_t {
    for (index, (name, _, flags)) in VARS.into_iter().enumerate() {
        let mut name = name;
        let v = ngx_http_add_variable(cf, &mut name, flags as ngx_uint_t);
        if v.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        (*v).get_handler = Some(get_variable);
        (*v).data = index;
    }
    NGX_OK as ngx_int_t
}

extern "C" fn get_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_variable_value_t,
    data: usize,
) -> ngx_int_t {
    let Some(&(_, var, _)) = VARS.get(data) else {
        return NGX_ERROR as ngx_int_t;
    };
    // SAFETY: nginx passes the live request and the value slot to fill.
    let (r, v) = unsafe { (Request::from_ngx_http_request(r), &mut *v) };
    catch_unwind(AssertUnwindSafe(|| {
        let value = value(r, var);
        set_value(r, v, value.as_bytes())
    }))
    .unwrap_or(NGX_ERROR as ngx_int_t)
}

fn value(r: &mut Request, var: Var) -> String {
    match var {
        Var::Decision => return verdict(r).decision().to_owned(),
        Var::Reason => return verdict(r).reason().to_owned(),
        Var::ClientCert | Var::ClientCertChain | Var::X5tS256 => return forwarded(r, var),
        _ => {}
    }
    // SAFETY: the request's connection is live while the request is.
    let Some(id) = (unsafe { client_cert(r.connection()) }).identity() else {
        return String::new();
    };
    certificate_value(id, var)
}

/// What is passed on to an upstream: only for a certificate the module
/// allowed in the request's location. Not in an `mtls off` location, where
/// no rule and no revocation was checked, nor for a denied request that
/// `satisfy any` lets through.
fn forwarded(r: &mut Request, var: Var) -> String {
    if verdict(r) != Verdict::Allow {
        return String::new();
    }
    let c = r.connection();
    // SAFETY: the request's connection is live while the request is.
    let value = unsafe {
        match var {
            Var::ClientCert => client_cert_field(c),
            Var::ClientCertChain => client_cert_chain_field(c),
            _ => {
                return client_cert(c)
                    .identity()
                    .and_then(|id| id.fingerprint().ok())
                    .map(x5t_s256)
                    .unwrap_or_default()
            }
        }
    };
    value.unwrap_or_default().to_owned()
}

/// The value of `var` for `id`: empty where the part it shows cannot be
/// read.
fn certificate_value(id: &Identity, var: Var) -> String {
    let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(" ");
    let value = match var {
        Var::Subject => id.subject().map(Dn::to_rfc4514),
        Var::Issuer => id.issuer().map(Dn::to_rfc4514),
        Var::Cn => id.cn().map(|cn| cn.map(escape_value).unwrap_or_default()),
        Var::Serial => id.serial().map(ToString::to_string),
        Var::Fingerprint => id.fingerprint().map(|f| lower_hex(f)),
        Var::SanDns => id
            .sans()
            .map(|s| list(&mut s.dns.iter().map(|s| escape_list_item(s)))),
        Var::SanEmail => id
            .sans()
            .map(|s| list(&mut s.email.iter().map(|s| escape_list_item(s)))),
        Var::SanUri => id
            .sans()
            .map(|s| list(&mut s.uri.iter().map(|s| escape_list_item(s)))),
        Var::SanIp => id
            .sans()
            .map(|s| list(&mut s.ip.iter().map(|ip| ip.to_string()))),
        Var::SpiffeId => id
            .spiffe_id()
            .map(|sid| sid.map(|s| s.as_str().to_owned()).unwrap_or_default()),
        Var::NotAfter => id.not_after().map(crate::identity::rfc3339),
        // nginx's cached time, as the access handler's: no clock read per
        // request.
        Var::ExpiresIn => id
            .not_after()
            .map(|not_after| (not_after - ngx_time() as i64).to_string()),
        Var::Decision | Var::Reason | Var::ClientCert | Var::ClientCertChain | Var::X5tS256 => {
            Ok(String::new())
        }
    };
    value.unwrap_or_default()
}

/// SAN values are IA5 strings, but a certificate may carry any byte: escape
/// what is not visible ASCII (and the space that separates list items).
fn escape_list_item(item: &str) -> String {
    item.bytes()
        .fold(String::with_capacity(item.len()), |mut out, b| {
            if b.is_ascii_graphic() {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
            out
        })
}

fn set_value(r: &Request, v: &mut ngx_variable_value_t, value: &[u8]) -> ngx_int_t {
    let data = if value.is_empty() {
        core::ptr::null_mut()
    } else {
        let p = r.pool().alloc_unaligned(value.len()).cast::<u8>();
        if p.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        // SAFETY: `p` is fresh pool memory of `value.len()` bytes.
        unsafe { core::ptr::copy_nonoverlapping(value.as_ptr(), p, value.len()) };
        p
    };
    v.data = data;
    v.set_len(value.len() as u32);
    v.set_valid(1);
    v.set_no_cacheable(0);
    v.set_not_found(0);
    NGX_OK as ngx_int_t
}
