//! The client certificate of a request's TLS connection.
//!
//! What the handshake established is looked at once per TLS connection and
//! kept in the `SSL` object's ex_data, so keep-alive requests, HTTP/2
//! streams and the HTTP/3 streams of a QUIC connection reuse it; OpenSSL
//! frees it with the connection. The identity of
//! a verified certificate is read part by part on first use: a location
//! without rules reads nothing of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use foreign_types::ForeignTypeRef;
use ngx::ffi::ngx_connection_t;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslRef};
use openssl::x509::{X509Ref, X509VerifyResult, X509};

use crate::identity::Identity;
use crate::policy::Peer;
use crate::revocation::Link;

/// What the handshake established about the client, as cached per connection.
pub enum ClientCert {
    None,
    Unverified(X509VerifyResult),
    /// A certificate the module could not even look at.
    Unreadable(String),
    Verified(Box<Verified>),
}

/// A client certificate that verified.
pub struct Verified {
    /// Its parts are read on first use.
    pub identity: Identity,
    pub chain: Chain,
    /// `$mtls_client_cert` and `$mtls_client_cert_chain`, made on first
    /// use for the connection's requests.
    client_cert: OnceLock<String>,
    client_cert_chain: OnceLock<String>,
}

/// What revocation needs of a verified connection, beyond the leaf's
/// identity.
pub struct Chain {
    /// The certificates of the verified chain above the leaf, the root
    /// (or whichever trusted certificate ended it) last. `None` where
    /// OpenSSL kept no chain (a resumed TLS session): then it is rebuilt
    /// from the configured CA certificates.
    above: Option<Vec<X509>>,
    /// The leaf's link, made on first use: `None` where its issuer or
    /// serial cannot be read.
    leaf: OnceLock<Option<Link>>,
    /// The links of the CA certificates, made on first use: only where
    /// CRLs are checked for the whole chain.
    ca_links: OnceLock<Vec<Link>>,
    /// The connection's last request that passed, so that the next ones in
    /// the same location skip the look-ups while no table changed.
    passed: Mutex<Option<Passed>>,
    /// Whether a request of the connection was already passed by
    /// `mtls_crl_cdp optional` without a CRL, with its warning.
    warned_without_crl: AtomicBool,
}

/// Where and until when a connection's certificate passed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Passed {
    /// The location's configuration, by address: fixed for the worker's
    /// configuration, to which the connection belongs.
    location: usize,
    /// [`crate::state::Shared::epoch`] read before the decision.
    epoch: u64,
    /// Unix time after which a CRL it relied on is stale; `i64::MIN` where
    /// it may not be reused at all.
    until: i64,
}

impl Chain {
    /// The chain of a verified connection, without the leaf.
    fn of(ssl: &SslRef) -> Chain {
        let above = ssl
            .verified_chain()
            .map(|chain| chain.iter().skip(1).map(X509Ref::to_owned).collect());
        Chain {
            above,
            leaf: OnceLock::new(),
            ca_links: OnceLock::new(),
            passed: Mutex::new(None),
            warned_without_crl: AtomicBool::new(false),
        }
    }

    /// Whether the connection's requests passed without a CRL were warned
    /// about already.
    pub fn warned_without_crl(&self) -> bool {
        self.warned_without_crl.load(Ordering::Relaxed)
    }

    /// Records that a request of the connection was passed without a CRL,
    /// with a warning.
    pub fn set_warned_without_crl(&self) {
        self.warned_without_crl.store(true, Ordering::Relaxed);
    }

    /// Whether the certificate passed in `location` at `epoch`, with every
    /// CRL it relied on still fresh at `now`.
    pub fn passed(&self, location: usize, epoch: u64, now: i64) -> bool {
        self.passed.try_lock().is_ok_and(|p| {
            p.is_some_and(|p| p.location == location && p.epoch == epoch && now <= p.until)
        })
    }

    /// Records that the certificate passed in `location`, deciding on the
    /// tables of `epoch` or newer, until `until`.
    pub fn pass(&self, location: usize, epoch: u64, until: i64) {
        if let Ok(mut p) = self.passed.try_lock() {
            *p = Some(Passed {
                location,
                epoch,
                until,
            });
        }
    }

    /// The link of `leaf`, this chain's leaf certificate, kept for the
    /// connection's requests; `None` where it cannot be read. With `cdp`
    /// (fixed for the worker's configuration), its CRL Distribution Points
    /// are read too.
    pub fn leaf(&self, leaf: &X509Ref, cdp: bool) -> Option<&Link> {
        self.leaf
            .get_or_init(|| Link::of(leaf, false, cdp))
            .as_ref()
    }

    /// The links of the CA certificates of the verified chain, from the
    /// leaf's issuer up; or where OpenSSL kept no chain, or a CA of it
    /// cannot be read, the ones `rebuild` makes from the leaf's link. Made
    /// once for the connection's requests.
    pub fn ca_links(
        &self,
        leaf: &Link,
        cdp: bool,
        rebuild: impl FnOnce(&Link) -> Vec<Link>,
    ) -> &[Link] {
        // Between the leaf and the root, which verifies itself.
        let cas = self
            .above
            .as_deref()
            .map(|above| &above[..above.len().saturating_sub(1)]);
        if cas.is_some_and(<[X509]>::is_empty) {
            return &[]; // a leaf issued by the root itself
        }
        self.ca_links.get_or_init(|| {
            let cas: Option<Vec<Link>> =
                cas.and_then(|cas| cas.iter().map(|ca| Link::of(ca, true, cdp)).collect());
            cas.unwrap_or_else(|| rebuild(leaf))
        })
    }
}

impl ClientCert {
    pub fn peer(&self) -> Peer<'_> {
        match self {
            ClientCert::None => Peer::NoCert,
            ClientCert::Unverified(_) => Peer::Unverified,
            ClientCert::Unreadable(_) => Peer::Unreadable,
            ClientCert::Verified(v) => Peer::Verified(&v.identity),
        }
    }

    /// The verified certificate, if it is one.
    pub fn verified(&self) -> Option<&Verified> {
        match self {
            ClientCert::Verified(v) => Some(v),
            _ => None,
        }
    }

    /// The identity, only for a certificate that verified.
    pub fn identity(&self) -> Option<&Identity> {
        Some(&self.verified()?.identity)
    }

    fn read(ssl: &SslRef) -> ClientCert {
        let Some(cert) = ssl.peer_certificate() else {
            return ClientCert::None;
        };
        let verify = ssl.verify_result();
        if verify != X509VerifyResult::OK {
            return ClientCert::Unverified(verify);
        }
        ClientCert::Verified(Box::new(Verified {
            chain: Chain::of(ssl),
            identity: Identity::new(cert),
            client_cert: OnceLock::new(),
            client_cert_chain: OnceLock::new(),
        }))
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
/// `c` must be a live connection of the current request. For HTTP/2
/// streams nginx points `ssl` at the TLS state of the real connection; an
/// HTTP/3 stream has a connection of its own whose `ssl` is the QUIC
/// connection's, shared by all its streams and freed only after the last
/// of them: it is only read here, never shut down or freed.
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
    // SAFETY (both returns): the value stays in the `SSL` object's ex_data,
    // never replaced, until OpenSSL frees the connection, which outlives
    // the requests of `c`: the reference may outlive the borrow of `ssl`.
    if let Some(cert) = ssl.ex_data(index) {
        return &*(cert as *const ClientCert);
    }
    ssl.set_ex_data(index, ClientCert::read(ssl));
    let cert = match ssl.ex_data(index) {
        Some(cert) => &*(cert as *const ClientCert),
        None => &NONE,
    };
    if let ClientCert::Verified(v) = cert {
        crate::status::expiry::seen(&v.identity);
    }
    cert
}

/// The leaf certificate of connection `c` as an RFC 9440 `Client-Cert`
/// value; `None` unless it verified.
///
/// # Safety
/// As for [`client_cert`].
pub unsafe fn client_cert_field<'c>(c: *mut ngx_connection_t) -> Option<&'c str> {
    let v = client_cert(c).verified()?;
    let value = v.client_cert.get_or_init(|| {
        v.identity
            .cert()
            .to_der()
            .map(|der| crate::forward::byte_sequence(&der))
            .unwrap_or_default()
    });
    Some(value.as_str()).filter(|s| !s.is_empty())
}

/// The chain above the leaf of connection `c` as an RFC 9440
/// `Client-Cert-Chain` value: the verified chain in TLS order, the root
/// included; on a resumed session, where OpenSSL kept none, the chain
/// rebuilt from the certificates the client sent and the ones the server
/// verifies clients with. `None` unless the certificate verified; empty
/// for a certificate that is itself trusted.
///
/// # Safety
/// As for [`client_cert`].
pub unsafe fn client_cert_chain_field<'c>(c: *mut ngx_connection_t) -> Option<&'c str> {
    let v = client_cert(c).verified()?;
    let value = v.client_cert_chain.get_or_init(|| {
        let rebuilt;
        let above: &[X509] = match &v.chain.above {
            Some(above) => above,
            None => {
                // SAFETY: `c` has TLS, or it would have no verified
                // certificate; as in `client_cert`.
                let ssl = SslRef::from_ptr_mut((*(*c).ssl).connection.cast());
                rebuilt = rebuild(v.identity.cert(), ssl);
                &rebuilt
            }
        };
        let ders: Vec<Vec<u8>> = above.iter().filter_map(|ca| ca.to_der().ok()).collect();
        crate::forward::byte_sequence_list(ders.iter().map(Vec::as_slice))
    });
    Some(value.as_str())
}

/// The chain above `leaf` of a resumed session: each issuer among the
/// certificates the client sent, if OpenSSL kept them, and the server's
/// trusted ones, as OpenSSL matches an issuer (name, key identifiers, key
/// usage), up to a self-issued certificate. Where several match, the one
/// whose key verifies the signature.
fn rebuild(leaf: &X509Ref, ssl: &SslRef) -> Vec<X509> {
    let mut candidates: Vec<X509> = ssl
        .peer_cert_chain()
        .map(|chain| chain.iter().map(X509Ref::to_owned).collect())
        .unwrap_or_default();
    candidates.extend(ssl.ssl_context().cert_store().all_certificates());
    let mut chain: Vec<X509> = Vec::new();
    let mut current = leaf.to_owned();
    while chain.len() < 16 {
        let der = current.to_der().ok();
        let issuers: Vec<&X509> = candidates
            .iter()
            .filter(|ca| ca.issued(&current) == X509VerifyResult::OK)
            .filter(|ca| ca.to_der().ok() != der)
            .collect();
        let issuer = match issuers[..] {
            [] => break,
            [one] => one,
            [first, ..] => issuers
                .iter()
                .copied()
                .find(|ca| {
                    ca.public_key()
                        .and_then(|key| current.verify(&key))
                        .unwrap_or(false)
                })
                .unwrap_or(first),
        };
        chain.push(issuer.clone());
        if issuer.issued(issuer) == X509VerifyResult::OK {
            break; // self-issued: the root
        }
        current = issuer.clone();
    }
    chain
}
