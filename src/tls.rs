//! The client certificate of a request's TLS connection.
//!
//! The certificate is read and parsed once per TLS connection and kept in
//! the `SSL` object's ex_data, so keep-alive requests and HTTP/2 streams
//! reuse it; OpenSSL frees it with the connection.

use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use ngx::ffi::ngx_connection_t;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef};
use openssl::x509::X509VerifyResult;

use crate::identity::Identity;
use crate::policy::Peer;

/// What the handshake established about the client, as cached per connection.
pub enum ClientCert {
    None,
    Unverified(X509VerifyResult),
    Unreadable(String),
    Verified(Box<Identity>),
}

impl ClientCert {
    pub fn peer(&self) -> Peer<'_> {
        match self {
            ClientCert::None => Peer::NoCert,
            ClientCert::Unverified(_) => Peer::Unverified,
            ClientCert::Unreadable(_) => Peer::Unreadable,
            ClientCert::Verified(id) => Peer::Verified(id),
        }
    }

    /// The identity, only for a certificate that verified.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            ClientCert::Verified(id) => Some(id),
            _ => None,
        }
    }

    fn read(ssl: &SslRef) -> ClientCert {
        let Some(cert) = ssl.peer_certificate() else {
            return ClientCert::None;
        };
        let verify = ssl.verify_result();
        if verify != X509VerifyResult::OK {
            return ClientCert::Unverified(verify);
        }
        match cert.to_der().map_err(|e| e.to_string()) {
            Ok(der) => match Identity::from_der(&der) {
                Ok(id) => ClientCert::Verified(Box::new(id)),
                Err(e) => ClientCert::Unreadable(e.to_string()),
            },
            Err(e) => ClientCert::Unreadable(e),
        }
    }
}

static NONE: ClientCert = ClientCert::None;

fn ex_index() -> Option<Index<Ssl, ClientCert>> {
    static INDEX: OnceLock<Option<Index<Ssl, ClientCert>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().ok())
}

/// The client certificate of connection `c`; `None` without TLS.
///
/// # Safety
/// `c` must be a live connection of the current request; for HTTP/2 streams
/// nginx points `ssl` at the TLS state of the real connection.
pub unsafe fn client_cert<'c>(c: *mut ngx_connection_t) -> &'c ClientCert {
    let ssl = (*c).ssl;
    if ssl.is_null() || (*ssl).connection.is_null() {
        return &NONE;
    }
    // SAFETY: nginx's `SSL*` is the OpenSSL object of the same libssl that
    // openssl-sys links; it outlives the connection's requests.
    let ssl = SslRef::from_ptr_mut((*ssl).connection.cast());
    let Some(index) = ex_index() else {
        // Without an index nothing can be cached; fail closed.
        static UNREADABLE: OnceLock<ClientCert> = OnceLock::new();
        return UNREADABLE.get_or_init(|| ClientCert::Unreadable("no SSL ex_data index".into()));
    };
    if ssl.ex_data(index).is_none() {
        let cert = ClientCert::read(ssl);
        ssl.set_ex_data(index, cert);
    }
    match ssl.ex_data(index) {
        Some(cert) => &*(cert as *const ClientCert),
        None => &NONE,
    }
}
