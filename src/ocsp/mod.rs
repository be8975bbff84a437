//! OCSP for client certificates (RFC 6960), as pure logic: the key a
//! certificate's answer is cached under, the request sent for it, and the
//! checks a response must pass. The shared answer cache and the queue of
//! look-ups are in [`cache`]; the loader process asks the responders
//! (`crate::loader::ocsp`), the access phase reads the answers
//! (`crate::access::ocsp`).
//!
//! Requests and responses are built and verified with OpenSSL's own OCSP
//! code, the library nginx uses for `ssl_ocsp`.

pub mod cache;

use openssl::hash::{hash, MessageDigest};
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse, OcspResponseStatus,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509Ref, X509};

use crate::identity::x509;

/// How far a responder's clock may be off ours: thisUpdate may be this far
/// in the future, nextUpdate this far in the past.
pub const CLOCK_SKEW: u32 = 60;

/// The key of a certificate's answer: its issuer and serial, as its
/// CertID names them, hashed. 16 bytes of SHA-256.
pub type CertKey = [u8; 16];

/// What an answer says of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked,
    /// The responder does not know the certificate: not good.
    Unknown,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Good => "good",
            CertStatus::Revoked => "revoked",
            CertStatus::Unknown => "unknown",
        }
    }
}

/// A verified answer about one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: CertStatus,
    pub this_update: i64,
    /// `None` where the responder gave none (newer information is always
    /// available): the answer is then kept for the configured maximum age.
    pub next_update: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error("cannot read the certificate's issuer, key or serial")]
    Certificate,
    #[error("cannot build the OCSP request: {0}")]
    Request(openssl::error::ErrorStack),
    #[error("the response is not an OCSP response")]
    Malformed,
    #[error("the responder answered \"{0}\"")]
    Refused(&'static str),
    #[error("the response is not signed by the issuer or a responder it delegated: {0}")]
    Signature(openssl::error::ErrorStack),
    #[error("the response does not answer for this certificate")]
    OtherCertificate,
    #[error("the response is not current (thisUpdate {this_update}, nextUpdate {next_update})")]
    NotCurrent {
        this_update: String,
        next_update: String,
    },
}

/// The cache key of `cert`, issued by `issuer`: made once per TLS
/// connection, so it is cheap. The issuer is taken by its SHA-1
/// fingerprint, which OpenSSL computed when it decoded the certificate
/// (it names the issuer's name and key, as the CertID does; a CA in two
/// certificates, reissued, only makes two keys).
pub fn cert_key(cert: &X509Ref, issuer: &X509Ref) -> Result<CertKey, OcspError> {
    let issuer_id = issuer
        .digest(MessageDigest::sha1())
        .map_err(|_| OcspError::Certificate)?;
    let serial = x509::serial(cert).ok_or(OcspError::Certificate)?;
    let mut input = Vec::with_capacity(issuer_id.len() + serial.as_bytes().len());
    input.extend_from_slice(&issuer_id);
    input.extend_from_slice(serial.as_bytes());
    let digest = hash(MessageDigest::sha256(), &input).map_err(|_| OcspError::Certificate)?;
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    Ok(out)
}

/// The CertID that requests and responses name `cert` by: SHA-1, which
/// every responder supports (RFC 5019).
fn cert_id(cert: &X509Ref, issuer: &X509Ref) -> Result<OcspCertId, OcspError> {
    OcspCertId::from_cert(MessageDigest::sha1(), cert, issuer).map_err(OcspError::Request)
}

/// The DER of a request for `cert`'s status, without a nonce, so that
/// responders may answer from a cache of signed responses.
pub fn request(cert: &X509Ref, issuer: &X509Ref) -> Result<Vec<u8>, OcspError> {
    let mut req = OcspRequest::new().map_err(OcspError::Request)?;
    req.add_id(cert_id(cert, issuer)?)
        .map_err(OcspError::Request)?;
    req.to_der().map_err(OcspError::Request)
}

/// The responder URLs of `cert`'s Authority Information Access.
pub fn aia_url(cert: &X509Ref) -> Option<String> {
    let urls = cert.ocsp_responders().ok()?;
    let url = urls.iter().find(|u| u.starts_with("http://"));
    url.or_else(|| urls.iter().next()).map(|u| u.to_string())
}

/// Checks `der`, a response about `cert` (issued by `issuer`), and returns
/// its answer. `trusted` are the CA certificates nginx verifies clients
/// with: the issuer's chain must end in one of them. `now` is Unix time.
pub fn verify(
    der: &[u8],
    cert: &X509Ref,
    issuer: &X509Ref,
    trusted: &[X509],
) -> Result<Answer, OcspError> {
    let response = OcspResponse::from_der(der).map_err(|_| OcspError::Malformed)?;
    let status = response.status();
    if status != OcspResponseStatus::SUCCESSFUL {
        return Err(OcspError::Refused(response_status_name(status)));
    }
    let basic = response.basic().map_err(|_| OcspError::Malformed)?;
    let mut store = X509StoreBuilder::new().map_err(OcspError::Signature)?;
    for ca in trusted {
        // A certificate listed twice is not an error worth failing on.
        let _ = store.add_cert(ca.clone());
    }
    let store = store.build();
    // The issuer may be an intermediate the client sent: untrusted, it
    // must chain to a trusted CA like the responder's certificate.
    let mut untrusted = Stack::new().map_err(OcspError::Signature)?;
    untrusted
        .push(issuer.to_owned())
        .map_err(OcspError::Signature)?;
    // OCSP_basic_verify: the signer is the CertID's issuer, or a
    // certificate that issuer signed with id-kp-OCSPSigning.
    basic
        .verify(&untrusted, &store, OcspFlag::empty())
        .map_err(OcspError::Signature)?;
    let id = cert_id(cert, issuer)?;
    let single = basic.find_status(&id).ok_or(OcspError::OtherCertificate)?;
    if single.check_validity(CLOCK_SKEW, None).is_err() {
        return Err(OcspError::NotCurrent {
            this_update: single.this_update.to_string(),
            next_update: single
                .next_update()
                .map_or_else(|| "none".to_owned(), ToString::to_string),
        });
    }
    let this_update = unix_time(single.this_update).ok_or(OcspError::Malformed)?;
    let next_update = match single.next_update() {
        Some(t) => Some(unix_time(t).ok_or(OcspError::Malformed)?),
        None => None,
    };
    let status = match single.status {
        OcspCertStatus::GOOD => CertStatus::Good,
        OcspCertStatus::REVOKED => CertStatus::Revoked,
        _ => CertStatus::Unknown,
    };
    Ok(Answer {
        status,
        this_update,
        next_update,
    })
}

fn response_status_name(status: OcspResponseStatus) -> &'static str {
    match status {
        OcspResponseStatus::MALFORMED_REQUEST => "malformedRequest",
        OcspResponseStatus::INTERNAL_ERROR => "internalError",
        OcspResponseStatus::TRY_LATER => "tryLater",
        OcspResponseStatus::SIG_REQUIRED => "sigRequired",
        OcspResponseStatus::UNAUTHORIZED => "unauthorized",
        _ => "an unknown status",
    }
}

fn unix_time(t: &openssl::asn1::Asn1GeneralizedTimeRef) -> Option<i64> {
    use foreign_types::ForeignTypeRef;
    // SAFETY: a GeneralizedTime is an ASN1_TIME to OpenSSL; it belongs to
    // the response, alive for this call.
    unsafe { x509::time(t.as_ptr().cast()) }
}

#[cfg(test)]
mod tests;
