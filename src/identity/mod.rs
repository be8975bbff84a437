//! Certificate identity: everything the policy and the variables need from a
//! client certificate, read once per TLS connection, part by part.
//!
//! Each part is read on first use, from the certificate OpenSSL decoded in
//! the handshake (see [`x509`]): a CN rule needs the CN, a DN rule the
//! subject, a SPIFFE rule the subjectAltName and, for an SVID,
//! basicConstraints and keyUsage. Nothing else of the certificate is read,
//! so what a location does not ask about costs nothing, and a part the
//! module cannot read fails only what needs it. Revocation reads its keys
//! (issuer and serial) from the certificate itself: see
//! [`crate::tls::Link`].

pub mod cdp;
pub mod der;
pub mod dn;
pub mod fingerprint;
pub mod san;
pub mod serial;
pub mod spiffe;
pub mod x509;

use std::borrow::Borrow;
use std::sync::OnceLock;

use openssl::nid::Nid;
use openssl::x509::{X509Ref, X509};
use x509_parser::extensions::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use x509_parser::prelude::{FromDer, X509Error};

use dn::Dn;
use fingerprint::Fingerprint;
use san::Sans;
use serial::Serial;
use spiffe::SpiffeId;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate does not parse: {0}")]
    Parse(String),
    #[error("certificate has an invalid {0}")]
    Invalid(&'static str),
    #[error("certificate has more than one {0} extension")]
    DuplicateExtension(&'static str),
    #[error("certificate has an invalid {0} extension")]
    InvalidExtension(&'static str),
}

/// A part of the certificate, or why it cannot be read.
pub type Part<'a, T> = Result<T, &'a IdentityError>;

type Cell<T> = OnceLock<Result<T, IdentityError>>;

/// A verified certificate and the parts of it read so far.
#[derive(Clone, Debug)]
pub struct Identity {
    cert: X509,
    subject: Cell<Dn>,
    /// The CN when there is exactly one and it is a string.
    cn: Cell<Option<String>>,
    issuer: Cell<Dn>,
    serial: Cell<Serial>,
    /// SHA-256 of the certificate's DER encoding.
    fingerprint: Cell<Fingerprint>,
    sans: Cell<Sans>,
    /// Set only for a valid X.509-SVID.
    spiffe_id: Cell<Option<SpiffeId>>,
    /// Unix time.
    not_after: Cell<i64>,
}

/// The part in `cell`, read by `read` on first use.
fn part<'a, T>(
    cell: &'a Cell<T>,
    read: impl FnOnce() -> Result<T, IdentityError>,
) -> Part<'a, &'a T> {
    cell.get_or_init(read).as_ref()
}

impl Identity {
    /// The identity of a certificate OpenSSL has decoded; nothing is read
    /// yet.
    pub fn new(cert: X509) -> Identity {
        Identity {
            cert,
            subject: OnceLock::new(),
            cn: OnceLock::new(),
            issuer: OnceLock::new(),
            serial: OnceLock::new(),
            fingerprint: OnceLock::new(),
            sans: OnceLock::new(),
            spiffe_id: OnceLock::new(),
            not_after: OnceLock::new(),
        }
    }

    /// The identity of a DER certificate, decoded by OpenSSL first, as in a
    /// handshake.
    pub fn from_der(der: impl AsRef<[u8]>) -> Result<Identity, IdentityError> {
        let cert = X509::from_der(der.as_ref()).map_err(|e| IdentityError::Parse(e.to_string()))?;
        Ok(Identity::new(cert))
    }

    /// The certificate itself, for what is not a part of the identity:
    /// revocation's keys (see [`crate::tls::Link`]).
    pub fn cert(&self) -> &X509Ref {
        &self.cert
    }

    pub fn subject(&self) -> Part<'_, &Dn> {
        part(&self.subject, || {
            x509::name_der(self.cert.subject_name())
                .and_then(Dn::from_der)
                .ok_or(IdentityError::Invalid("subject"))
        })
    }

    /// The subject's CN when there is exactly one and it is a string: the
    /// subject's, decoded alone. Decoding the whole subject, for the one
    /// attribute a CN rule looks at, was most of that rule's cost.
    pub fn cn(&self) -> Part<'_, Option<&str>> {
        part(&self.cn, || {
            x509::name_der(self.cert.subject_name())
                .and_then(Dn::single_cn_from_der)
                .ok_or(IdentityError::Invalid("subject"))
        })
        .map(Option::as_deref)
    }

    pub fn issuer(&self) -> Part<'_, &Dn> {
        part(&self.issuer, || {
            x509::name_der(self.cert.issuer_name())
                .and_then(Dn::from_der)
                .ok_or(IdentityError::Invalid("issuer"))
        })
    }

    pub fn serial(&self) -> Part<'_, &Serial> {
        part(&self.serial, || {
            x509::serial(&self.cert).ok_or(IdentityError::Invalid("serialNumber"))
        })
    }

    /// The SHA-256 of the certificate's DER encoding.
    pub fn fingerprint(&self) -> Part<'_, &Fingerprint> {
        part(&self.fingerprint, || {
            self.cert
                .to_der()
                .map(|der| fingerprint::sha256(&der))
                .map_err(|e| IdentityError::Parse(e.to_string()))
        })
    }

    pub fn sans(&self) -> Part<'_, &Sans> {
        part(&self.sans, || {
            let ext = extension::<SubjectAlternativeName>(
                &self.cert,
                Nid::SUBJECT_ALT_NAME,
                "subjectAltName",
            )?;
            Ok(ext
                .map(|ext| Sans::from_general_names(&ext.general_names))
                .unwrap_or_default())
        })
    }

    /// The SPIFFE ID of an X.509-SVID; `None` for any other certificate.
    pub fn spiffe_id(&self) -> Part<'_, Option<&SpiffeId>> {
        part(&self.spiffe_id, || {
            let sans = self.sans().map_err(IdentityError::clone)?;
            svid_id(&self.cert, sans)
        })
        .map(Option::as_ref)
    }

    /// notAfter, as Unix time.
    pub fn not_after(&self) -> Part<'_, i64> {
        part(&self.not_after, || {
            x509::not_after(&self.cert).ok_or(IdentityError::Invalid("notAfter"))
        })
        .copied()
    }

    /// Why a part read so far could not be read, if one could not.
    pub fn problem(&self) -> Option<&IdentityError> {
        fn failed<T>(cell: &Cell<T>) -> Option<&IdentityError> {
            cell.get()?.as_ref().err()
        }
        failed(&self.subject)
            .or_else(|| failed(&self.cn))
            .or_else(|| failed(&self.issuer))
            .or_else(|| failed(&self.serial))
            .or_else(|| failed(&self.fingerprint))
            .or_else(|| failed(&self.sans))
            .or_else(|| failed(&self.spiffe_id))
            .or_else(|| failed(&self.not_after))
    }

    /// The names of the parts read so far, for tests of what a decision
    /// reads.
    #[cfg(test)]
    pub fn parts_read(&self) -> Vec<&'static str> {
        let read = [
            ("subject", self.subject.get().is_some()),
            ("cn", self.cn.get().is_some()),
            ("issuer", self.issuer.get().is_some()),
            ("serial", self.serial.get().is_some()),
            ("fingerprint", self.fingerprint.get().is_some()),
            ("sans", self.sans.get().is_some()),
            ("spiffe_id", self.spiffe_id.get().is_some()),
            ("not_after", self.not_after.get().is_some()),
        ];
        read.into_iter().filter(|r| r.1).map(|r| r.0).collect()
    }

    /// What was read of the certificate so far, with the values a rule
    /// compares, for the debug log: `cn "alice", serial 1002`.
    pub fn describe_read(&self) -> String {
        /// `name value` for a part that was read, `name unreadable (why)`
        /// for one that could not be.
        fn shown<T>(cell: &Cell<T>, name: &str, show: impl Fn(&T) -> String) -> Option<String> {
            Some(match cell.get()? {
                Ok(v) => format!("{name} {}", show(v)).trim_end().to_owned(),
                Err(e) => format!("{name} unreadable ({e})"),
            })
        }
        let quoted = |text: &str| format!("\"{}\"", dn::escape_value(text));
        let parts = [
            shown(&self.subject, "subject", |d| format!("\"{d}\"")),
            shown(&self.cn, "cn", |c| {
                c.as_deref()
                    .map_or_else(|| "none a rule can match".to_owned(), quoted)
            }),
            shown(&self.issuer, "issuer", |d| format!("\"{d}\"")),
            shown(&self.serial, "serial", ToString::to_string),
            shown(&self.fingerprint, "fingerprint", |f| {
                crate::hex::lower_hex(f)
            }),
            shown(&self.sans, "subjectAltName", |_| String::new()),
            shown(&self.spiffe_id, "spiffe_id", |id| {
                id.as_ref()
                    .map_or_else(|| "none".to_owned(), |id| quoted(id.borrow()))
            }),
            shown(&self.not_after, "notAfter", ToString::to_string),
        ];
        let read: Vec<String> = parts.into_iter().flatten().collect();
        if read.is_empty() {
            "nothing".to_owned()
        } else {
            read.join(", ")
        }
    }
}

/// The value of `cert`'s extension `nid`, called `name` in errors, which
/// must be unique and well formed; `None` without one. What follows the
/// value in its OCTET STRING is ignored, as x509-parser's own reading of
/// extensions does.
fn extension<'a, T: FromDer<'a, X509Error>>(
    cert: &'a X509Ref,
    nid: Nid,
    name: &'static str,
) -> Result<Option<T>, IdentityError> {
    match x509::extension(cert, nid) {
        Err(x509::Repeated) => Err(IdentityError::DuplicateExtension(name)),
        Ok(None) => Ok(None),
        Ok(Some(value)) => match T::from_der(value) {
            Ok((_, value)) => Ok(Some(value)),
            Err(_) => Err(IdentityError::InvalidExtension(name)),
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

/// Unix time of a UTC date (proleptic Gregorian calendar) and the seconds
/// into that day: the inverse of [`rfc3339`]'s reckoning. Arithmetic, as
/// glibc's `timegm` reckons, for a valid date: `timegm` took about 1,000
/// instructions, once per new connection for the expiry status
/// (bench/NOTES.md, change 19).
pub fn unix_time(year: i64, month: i64, day: i64, secs: i64) -> i64 {
    // Days since 1970-01-01, counted in years that start on March 1st, so
    // that a leap day ends its year; 400 years are 146,097 days.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era - 719_468) * 86_400 + secs
}

/// Unix time of an RFC 5280 time's text: UTCTime `YYMMDDHHMMSSZ` (years
/// 1950 to 2049) or GeneralizedTime `YYYYMMDDHHMMSSZ`; `None` for any
/// other form, or a date that does not exist.
pub fn rfc5280_time(generalized: bool, text: &[u8]) -> Option<i64> {
    let (year, rest) = if generalized {
        (digits(text.get(..4)?)?, text.get(4..)?)
    } else {
        let yy = digits(text.get(..2)?)?;
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
    };
    let [m @ .., b'Z'] = rest else {
        return None;
    };
    let [month, day, hour, minute, second] =
        [0, 2, 4, 6, 8].map(|i| m.get(i..i + 2).and_then(digits));
    let (month, day, hour, minute, second) = (month?, day?, hour?, minute?, second?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if m.len() != 10 || day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(unix_time(
        year,
        month,
        day,
        hour * 3600 + minute * 60 + second,
    ))
}

/// The value of ASCII decimal digits, all of them digits.
fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |v, &c| {
        c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
    })
}

/// An X.509-SVID carries exactly one URI SAN, a valid SPIFFE ID, and is not
/// a CA: not `cA`, no `keyCertSign`, no `cRLSign`.
fn svid_id(cert: &X509Ref, sans: &Sans) -> Result<Option<SpiffeId>, IdentityError> {
    let [uri] = sans.uri.as_slice() else {
        return Ok(None);
    };
    // A malformed extension is an error, not an absent one: for
    // basicConstraints, that would read a CA as not a CA.
    let ca = extension::<BasicConstraints>(cert, Nid::BASIC_CONSTRAINTS, "basicConstraints")?
        .is_some_and(|bc| bc.ca);
    let signs = extension::<KeyUsage>(cert, Nid::KEY_USAGE, "keyUsage")?
        .is_some_and(|ku| ku.key_cert_sign() || ku.crl_sign());
    if ca || signs {
        return Ok(None);
    }
    Ok(SpiffeId::parse(uri).ok())
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, unix_time, Identity, IdentityError};
    use crate::identity::dn::Dn;
    use crate::identity::serial::Serial;
    use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time, Asn1TimeRef};
    use openssl::bn::{BigNum, BigNumRef};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::{X509Extension, X509Name, X509NameRef, X509};

    /// A self-signed certificate with these extensions (dotted OID, DER
    /// value), in this order.
    fn certificate(extensions: &[(&str, &[u8])]) -> Vec<u8> {
        let name =
            X509Name::from_der(b"\x30\x0c\x31\x0a\x30\x08\x06\x03\x55\x04\x03\x0c\x01x").unwrap();
        let serial = BigNum::from_u32(1).unwrap();
        let not_after = Asn1Time::days_from_now(1).unwrap();
        certificate_with(&name, &serial, &not_after, extensions)
    }

    fn certificate_with(
        name: &X509NameRef,
        serial: &BigNumRef,
        not_after: &Asn1TimeRef,
        extensions: &[(&str, &[u8])],
    ) -> Vec<u8> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        cert.set_serial_number(&Asn1Integer::from_bn(serial).unwrap())
            .unwrap();
        cert.set_subject_name(name).unwrap();
        cert.set_issuer_name(name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::from_unix(0).unwrap())
            .unwrap();
        cert.set_not_after(not_after).unwrap();
        for (oid, value) in extensions {
            let oid = Asn1Object::from_str(oid).unwrap();
            let value = Asn1OctetString::new_from_bytes(value).unwrap();
            let ext = X509Extension::new_from_der(&oid, false, &value).unwrap();
            cert.append_extension(ext).unwrap();
        }
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        cert.build().to_der().unwrap()
    }

    /// What is read from OpenSSL's decoded certificate is what decoding the
    /// whole DER certificate reads: the names' own bytes (the issuer key
    /// is a hash of them), serials as encoded, negative ones included, and
    /// notAfter as UTCTime and as GeneralizedTime.
    #[test]
    fn reads_what_a_whole_parse_reads() {
        let serials = [
            "0",
            "1",
            "7F",
            "80",
            "FF",
            "0100",
            "-1",
            "-80",
            "-81",
            "-FF",
            "-100",
            "-8000",
            "-8001",
            "FF00",
            "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        ];
        let times = [
            "20490101000000Z",
            "20491231235959Z",
            "20500101000000Z",
            "99991231235959Z",
            "19700101000000Z",
            "19500101000000Z",
            "21060207062816Z",
        ];
        // CN=b+CN=a, its SET OF out of DER order, and a BMPString O: OpenSSL
        // would encode this name otherwise, so only its own bytes hash to
        // the same issuer key as a CRL naming this issuer.
        let name_der = b"\x30\x25\x31\x14\x30\x08\x06\x03\x55\x04\x03\x0c\x01b\
                         \x30\x08\x06\x03\x55\x04\x03\x0c\x01a\
                         \x31\x0d\x30\x0b\x06\x03\x55\x04\x0a\x1e\x04\x00O\x00k";
        let odd = X509Name::from_der(name_der).unwrap();
        let plain =
            X509Name::from_der(b"\x30\x0c\x31\x0a\x30\x08\x06\x03\x55\x04\x03\x0c\x01x").unwrap();
        for (i, serial) in serials.iter().enumerate() {
            let when = times[i % times.len()];
            let time = Asn1Time::from_str_x509(when).unwrap();
            let name = if i % 2 == 0 { &odd } else { &plain };
            let der = certificate_with(name, &BigNum::from_hex_str(serial).unwrap(), &time, &[]);
            let id = Identity::from_der(&der).unwrap();
            let (_, whole) = x509_parser::parse_x509_certificate(&der).unwrap();
            let at = format!("serial {serial}, notAfter {when}");
            assert_eq!(
                id.serial(),
                Ok(&Serial::from_der_content(whole.raw_serial())),
                "{at}"
            );
            let not_after = whole.validity().not_after.timestamp();
            assert_eq!(id.not_after(), Ok(not_after), "{at}");
            assert_eq!(id.subject(), Ok(&Dn::from_x509(whole.subject())), "{at}");
            assert_eq!(id.issuer(), Ok(&Dn::from_x509(whole.issuer())), "{at}");
            let issuer = super::x509::name_der(id.cert().issuer_name());
            assert_eq!(issuer, Some(whole.issuer().as_raw()), "{at}");
            let fingerprint = super::fingerprint::sha256(&der);
            assert_eq!(id.fingerprint(), Ok(&fingerprint), "{at}");
        }
        // The odd name's bytes are the certificate's, not OpenSSL's.
        let der = certificate_with(
            &odd,
            &BigNum::from_u32(1).unwrap(),
            &Asn1Time::days_from_now(1).unwrap(),
            &[],
        );
        let id = Identity::from_der(&der).unwrap();
        assert_eq!(
            super::x509::name_der(id.cert().issuer_name()),
            Some(&name_der[..])
        );
        assert_eq!(
            Identity::from_der(&der)
                .unwrap()
                .subject()
                .unwrap()
                .to_rfc4514(),
            "O=Ok,CN=b+CN=a"
        );
        // Negative serials keep their two's complement octets, as CRLs.
        let der = certificate_with(
            &plain,
            &BigNum::from_hex_str("-81").unwrap(),
            &Asn1Time::days_from_now(1).unwrap(),
            &[],
        );
        assert_eq!(
            Identity::from_der(&der)
                .unwrap()
                .serial()
                .unwrap()
                .as_bytes(),
            b"\xff\x7f"
        );
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
        assert_eq!(one.sans().unwrap().dns, ["a"]);
        let two = Identity::from_der(certificate(&[(SAN, dns), (SAN, dns)])).unwrap();
        let duplicate = IdentityError::DuplicateExtension("subjectAltName");
        assert_eq!(two.sans().unwrap_err(), &duplicate);
        assert_eq!(two.spiffe_id().unwrap_err(), &duplicate);
        let bad = Identity::from_der(certificate(&[(SAN, b"\x30\x03\x82\x05a")])).unwrap();
        let bad = bad.sans().unwrap_err();
        assert_eq!(bad, &IdentityError::InvalidExtension("subjectAltName"));
        assert_eq!(
            bad.to_string(),
            "certificate has an invalid subjectAltName extension"
        );
        // An SVID candidate, so that both extensions are read.
        let uri = b"\x30\x16\x86\x14spiffe://example.org";
        let svid = Identity::from_der(certificate(&[(SAN, uri)])).unwrap();
        let id = svid.spiffe_id().unwrap().unwrap();
        assert_eq!(id.as_str(), "spiffe://example.org");
        let ca = b"\x30\x03\x01\x01\xff";
        let not_svid = Identity::from_der(certificate(&[(SAN, uri), ("2.5.29.19", ca)])).unwrap();
        assert_eq!(not_svid.spiffe_id(), Ok(None));
        for (oid, name) in [("2.5.29.19", "basicConstraints"), ("2.5.29.15", "keyUsage")] {
            let bad = certificate(&[(SAN, uri), (oid, b"\x30\x03\x01")]);
            let bad = Identity::from_der(bad).unwrap();
            let invalid = IdentityError::InvalidExtension(name);
            assert_eq!(bad.spiffe_id(), Err(&invalid));
            // The SANs themselves are readable, and so is all the rest.
            assert_eq!(bad.sans().unwrap().uri, ["spiffe://example.org"]);
            assert!(bad.subject().is_ok() && bad.serial().is_ok());
            assert_eq!(bad.problem(), Some(&invalid));
        }
    }

    /// Each part is read on its own, when first asked for, and once.
    #[test]
    fn parts_are_read_on_first_use() {
        let uri = b"\x30\x16\x86\x14spiffe://example.org";
        let id = Identity::from_der(certificate(&[("2.5.29.17", uri)])).unwrap();
        assert!(id.parts_read().is_empty());
        assert_eq!(id.cn(), Ok(Some("x")));
        assert_eq!(id.parts_read(), ["cn"]);
        id.serial().unwrap();
        assert_eq!(id.parts_read(), ["cn", "serial"]);
        id.spiffe_id().unwrap();
        assert_eq!(id.parts_read(), ["cn", "serial", "sans", "spiffe_id"]);
        id.subject().unwrap();
        id.issuer().unwrap();
        id.fingerprint().unwrap();
        id.not_after().unwrap();
        assert_eq!(id.parts_read().len(), 8);
        assert_eq!(id.problem(), None);
    }

    #[test]
    fn unix_time_inverts_rfc3339() {
        assert_eq!(unix_time(1970, 1, 1, 0), 0);
        assert_eq!(unix_time(2000, 2, 29, 0), 951_782_400);
        assert_eq!(
            unix_time(2027, 1, 31, 12 * 3600 + 4 * 60 + 5),
            1_801_397_045
        );
        assert_eq!(unix_time(9999, 12, 31, 86_399), 253_402_300_799);
        assert_eq!(unix_time(1969, 12, 31, 86_399), -1);
        for t in (-5_000_000_000i64..253_402_300_800).step_by(86_400 * 37 + 3_601) {
            let text = rfc3339(t);
            let num = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
            let secs = num(11..13) * 3600 + num(14..16) * 60 + num(17..19);
            assert_eq!(
                unix_time(num(0..4), num(5..7), num(8..10), secs),
                t,
                "{text}"
            );
        }
    }

    /// The arithmetic gives what glibc's timegm gives, over the years a
    /// certificate can name and beyond.
    #[test]
    fn unix_time_as_timegm() {
        let timegm = |year: i64, month: i64, day: i64, secs: i64| {
            // SAFETY: a zeroed tm is valid; timegm reads and normalizes it.
            unsafe {
                let mut tm: libc::tm = core::mem::zeroed();
                tm.tm_year = (year - 1900) as libc::c_int;
                tm.tm_mon = (month - 1) as libc::c_int;
                tm.tm_mday = day as libc::c_int;
                tm.tm_sec = secs as libc::c_int;
                libc::timegm(&mut tm)
            }
        };
        for year in (0..=9999).step_by(7).chain(1896..=2104) {
            for month in 1..=12 {
                for day in [1, 15, 28, 29, 30, 31] {
                    if day > 28
                        && super::rfc5280_time(
                            true,
                            format!("{year:04}{month:02}{day:02}000000Z").as_bytes(),
                        )
                        .is_none()
                    {
                        continue; // no such date
                    }
                    for secs in [0, 1, 43_210, 86_399] {
                        assert_eq!(
                            unix_time(year, month, day, secs),
                            timegm(year, month, day, secs),
                            "{year}-{month}-{day} +{secs}"
                        );
                    }
                }
            }
        }
    }

    /// RFC 5280's two forms read as OpenSSL reads them; anything else is
    /// left to OpenSSL.
    #[test]
    fn rfc5280_times() {
        use super::rfc5280_time;
        assert_eq!(rfc5280_time(false, b"700101000000Z"), Some(0));
        assert_eq!(rfc5280_time(false, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(rfc5280_time(false, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(rfc5280_time(true, b"20000229000000Z"), Some(951_782_400));
        assert_eq!(
            rfc5280_time(true, b"99991231235959Z"),
            Some(253_402_300_799)
        );
        for bad in [
            &b"19000229000000Z"[..], // not a leap year
            b"20230229000000Z",
            b"20230431000000Z",
            b"20231301000000Z",
            b"20230100000000Z",
            b"20230101240000Z",
            b"20230101006000Z",
            b"20230101000060Z",
            b"2023010100000Z",
            b"202301010000000Z",
            b"20230101000000",
            b"20230101000000+0100",
            b"20230101000000.5Z",
            b"2023-1-1000000Z",
            b"2023010100000 Z",
            b"",
        ] {
            assert_eq!(
                rfc5280_time(true, bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(rfc5280_time(false, b"20230101000000Z"), None);
        assert_eq!(rfc5280_time(true, b"230101000000Z"), None);
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
