//! Certificate identity: everything the policy and the variables need from a
//! client certificate, read once from its DER encoding.
//!
//! This runs once per TLS handshake, so it reads only what it must:
//! x509-parser leaves the extensions unparsed but for the three read here,
//! and the fingerprint is hashed on first use.

pub mod dn;
pub mod san;
pub mod spiffe;

use std::sync::OnceLock;

use x509_parser::certificate::X509CertificateParser;
use x509_parser::extensions::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use x509_parser::nom::Parser;
use x509_parser::oid_registry::{
    Oid, OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::{FromDer, X509Certificate, X509Error};

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
    #[error("certificate has an invalid {0} extension")]
    InvalidExtension(&'static str),
}

impl IdentityError {
    /// For x509-parser's look-up of the extension `name`.
    fn extension(name: &'static str) -> impl Fn(X509Error) -> IdentityError {
        move |e| match e {
            X509Error::DuplicateExtensions => IdentityError::DuplicateExtension(name),
            _ => IdentityError::InvalidExtension(name),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub subject: Dn,
    pub issuer: Dn,
    /// SHA-256 of the issuer Name's DER, the key of its CRL.
    pub issuer_key: [u8; 32],
    /// The subject's CN when there is exactly one and it is a string.
    pub cn: Option<String>,
    pub serial: Serial,
    /// The certificate, for its fingerprint.
    der: Box<[u8]>,
    fingerprint: OnceLock<Fingerprint>,
    pub sans: Sans,
    /// Set only for a valid X.509-SVID.
    pub spiffe_id: Option<SpiffeId>,
    /// Unix time.
    pub not_after: i64,
}

impl Identity {
    pub fn from_der(der: impl Into<Box<[u8]>>) -> Result<Identity, IdentityError> {
        let der = der.into();
        let (_, cert) = X509CertificateParser::new()
            .with_deep_parse_extensions(false)
            .parse(&der)
            .map_err(|e| IdentityError::Parse(e.to_string()))?;
        let subject = Dn::from_x509(cert.subject());
        let sans = extension::<SubjectAlternativeName>(&cert, &OID_X509_EXT_SUBJECT_ALT_NAME)
            .map_err(IdentityError::extension("subjectAltName"))?
            .map(|ext| Sans::from_general_names(&ext.general_names))
            .unwrap_or_default();
        let spiffe_id = svid_id(&cert, &sans)?;
        Ok(Identity {
            cn: single_cn(&subject),
            issuer: Dn::from_x509(cert.issuer()),
            issuer_key: crate::revocation::issuer_key(cert.issuer().as_raw()),
            subject,
            serial: Serial::from_der_content(cert.raw_serial()),
            sans,
            spiffe_id,
            not_after: cert.validity().not_after.timestamp(),
            fingerprint: OnceLock::new(),
            der,
        })
    }

    /// The SHA-256 of the certificate's DER encoding, hashed on first use:
    /// only fingerprint rules, deny lists and `$mtls_fingerprint` need it.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.fingerprint
            .get_or_init(|| crate::hex::sha256(&self.der))
    }
}

/// The value of the extension `oid`, which must be unique and well formed;
/// `None` without one. What follows the value in its OCTET STRING is
/// ignored, as x509-parser's own reading of extensions does.
fn extension<'a, T: FromDer<'a, X509Error>>(
    cert: &X509Certificate<'a>,
    oid: &Oid,
) -> Result<Option<T>, X509Error> {
    match cert.get_extension_unique(oid)? {
        None => Ok(None),
        Some(ext) => match T::from_der(ext.value) {
            Ok((_, value)) => Ok(Some(value)),
            Err(_) => Err(X509Error::InvalidExtensions),
        },
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
    // A malformed extension is an error, not an absent one: for
    // basicConstraints, that would read a CA as not a CA.
    let ca = extension::<BasicConstraints>(cert, &OID_X509_EXT_BASIC_CONSTRAINTS)
        .map_err(IdentityError::extension("basicConstraints"))?
        .is_some_and(|bc| bc.ca);
    let signs = extension::<KeyUsage>(cert, &OID_X509_EXT_KEY_USAGE)
        .map_err(IdentityError::extension("keyUsage"))?
        .is_some_and(|ku| ku.key_cert_sign() || ku.crl_sign());
    if ca || signs {
        return Ok(None);
    }
    Ok(SpiffeId::parse(uri).ok())
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, Identity, IdentityError};
    use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::{X509Extension, X509Name, X509};

    /// A self-signed certificate with these extensions (dotted OID, DER
    /// value), in this order.
    fn certificate(extensions: &[(&str, &[u8])]) -> Vec<u8> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "x").unwrap();
        let name = name.build();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        for (oid, value) in extensions {
            let oid = Asn1Object::from_str(oid).unwrap();
            let value = Asn1OctetString::new_from_bytes(value).unwrap();
            let ext = X509Extension::new_from_der(&oid, false, &value).unwrap();
            cert.append_extension(ext).unwrap();
        }
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        cert.build().to_der().unwrap()
    }

    /// Found while writing the fuzz targets: a malformed extension was
    /// reported as a duplicate one, and a malformed basicConstraints was
    /// taken for none (so a certificate claiming cA could pass as an SVID;
    /// OpenSSL does not verify such a certificate, so nginx never let one
    /// through).
    #[test]
    fn extension_errors_say_which() {
        const SAN: &str = "2.5.29.17";
        let dns = b"\x30\x03\x82\x01a";
        let one = Identity::from_der(certificate(&[(SAN, dns)])).unwrap();
        assert_eq!(one.sans.dns, ["a"]);
        let two = Identity::from_der(certificate(&[(SAN, dns), (SAN, dns)]));
        assert_eq!(
            two.unwrap_err(),
            IdentityError::DuplicateExtension("subjectAltName")
        );
        let bad = Identity::from_der(certificate(&[(SAN, b"\x30\x03\x82\x05a")]));
        let bad = bad.unwrap_err();
        assert_eq!(bad, IdentityError::InvalidExtension("subjectAltName"));
        assert_eq!(
            bad.to_string(),
            "certificate has an invalid subjectAltName extension"
        );
        // An SVID candidate, so that both extensions are read.
        let uri = b"\x30\x16\x86\x14spiffe://example.org";
        let svid = Identity::from_der(certificate(&[(SAN, uri)])).unwrap();
        assert_eq!(svid.spiffe_id.unwrap().as_str(), "spiffe://example.org");
        let ca = b"\x30\x03\x01\x01\xff";
        let not_svid = Identity::from_der(certificate(&[(SAN, uri), ("2.5.29.19", ca)]));
        assert_eq!(not_svid.unwrap().spiffe_id, None);
        for (oid, name) in [("2.5.29.19", "basicConstraints"), ("2.5.29.15", "keyUsage")] {
            let bad = Identity::from_der(certificate(&[(SAN, uri), (oid, b"\x30\x03\x01")]));
            assert_eq!(bad.unwrap_err(), IdentityError::InvalidExtension(name));
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_801_397_045), "2027-01-31T12:04:05Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
