//! Certificate identity: everything the policy and the variables need from a
//! client certificate, read once from its DER encoding.

pub mod dn;
pub mod san;
pub mod spiffe;

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::hex::{Fingerprint, Serial};
use dn::{AvaValue, Dn, OID_CN};
use san::Sans;
use spiffe::SpiffeId;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate does not parse: {0}")]
    Parse(String),
    #[error("certificate has more than one {0} extension")]
    DuplicateExtension(&'static str),
}

#[derive(Clone, Debug)]
pub struct Identity {
    pub subject: Dn,
    pub issuer: Dn,
    /// SHA-256 of the issuer Name's DER, the key of its CRL.
    pub issuer_key: [u8; 32],
    /// The subject's CN when there is exactly one and it is a string.
    pub cn: Option<String>,
    pub serial: Serial,
    pub fingerprint: Fingerprint,
    pub sans: Sans,
    /// Set only for a valid X.509-SVID.
    pub spiffe_id: Option<SpiffeId>,
    /// Unix time.
    pub not_after: i64,
}

impl Identity {
    pub fn from_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| IdentityError::Parse(e.to_string()))?;
        let subject = Dn::from_x509(cert.subject());
        let sans = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::DuplicateExtension("subjectAltName"))?
            .map(|ext| Sans::from_general_names(&ext.value.general_names))
            .unwrap_or_default();
        let spiffe_id = svid_id(&cert, &sans)?;
        Ok(Identity {
            cn: single_cn(&subject),
            issuer: Dn::from_x509(cert.issuer()),
            issuer_key: crate::revocation::issuer_key(cert.issuer().as_raw()),
            subject,
            serial: Serial::from_der_content(cert.raw_serial()),
            fingerprint: openssl::sha::sha256(der),
            sans,
            spiffe_id,
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// Unix time as RFC 3339 in UTC, `2027-01-31T12:00:00Z`.
pub fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn single_cn(subject: &Dn) -> Option<String> {
    let mut cns = subject.values_of(OID_CN);
    match (cns.next(), cns.next()) {
        (Some(AvaValue::Text(cn)), None) => Some(cn.clone()),
        _ => None,
    }
}

/// An X.509-SVID carries exactly one URI SAN, a valid SPIFFE ID, and is not
/// a CA: not `cA`, no `keyCertSign`, no `cRLSign`.
fn svid_id(cert: &X509Certificate<'_>, sans: &Sans) -> Result<Option<SpiffeId>, IdentityError> {
    let [uri] = sans.uri.as_slice() else {
        return Ok(None);
    };
    let ca = cert
        .basic_constraints()
        .map_err(|_| IdentityError::DuplicateExtension("basicConstraints"))?
        .is_some_and(|bc| bc.value.ca);
    let signs = cert
        .key_usage()
        .map_err(|_| IdentityError::DuplicateExtension("keyUsage"))?
        .is_some_and(|ku| ku.value.key_cert_sign() || ku.value.crl_sign());
    if ca || signs {
        return Ok(None);
    }
    Ok(SpiffeId::parse(uri).ok())
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_801_397_045), "2027-01-31T12:04:05Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
