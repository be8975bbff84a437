//! CRL files: PEM with one or more `X509 CRL` blocks, or one DER CRL.
//!
//! A file is taken whole or not at all: every CRL in it must parse, be
//! signed by one of the CA certificates nginx verifies clients with, and be
//! one this module can apply exactly (no delta, indirect, partitioned or
//! partial-reason CRLs, no unknown critical extension). A file cut short
//! while being written fails to parse, so it is rejected; it never yields a
//! partial CRL. (A PEM file cut exactly between two blocks reads as a file
//! with fewer CRLs: the issuers of the missing ones then have no CRL, which
//! denies their certificates. Replace files with `rename(2)`.)
//!
//! CRLs are keyed by the DER encoding of their issuer Name, byte for byte,
//! where OpenSSL compares canonical forms. A CA writes the same bytes in the
//! certificates and the CRLs it signs; a certificate whose issuer is encoded
//! otherwise finds no CRL, which denies it (`crl_missing`), never allows it.

use std::collections::HashMap;
use std::path::Path;

use foreign_types::ForeignTypeRef;
use openssl::x509::{X509Crl, X509};
use x509_parser::oid_registry::{
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_CRL_NUMBER,
    OID_X509_EXT_DELTA_CRL_INDICATOR, OID_X509_EXT_ISSUER, OID_X509_EXT_ISSUER_DISTRIBUTION_POINT,
};
use x509_parser::prelude::{FromDer, ParsedExtension, ReasonCode, X509Extension};
use x509_parser::revocation_list::CertificateRevocationList;

use super::table::{
    CrlNumber, IssuerInfo, IssuerKey, Kind, Scope, Table, TableBuilder, TableError,
};
use crate::identity::dn::Dn;
use crate::identity::rfc3339;

const PEM_BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
const PEM_END: &[u8] = b"-----END X509 CRL-----";

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("cannot read CRL file \"{file}\": {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("no CRL found in \"{file}\"")]
    Empty { file: String },
    #[error("truncated or corrupt CRL #{index} in \"{file}\": {reason}")]
    Corrupt {
        index: usize,
        file: String,
        reason: String,
    },
    #[error("CRL #{index} in \"{file}\" is not signed by a known CA (\"{issuer}\")")]
    UnknownIssuer {
        index: usize,
        file: String,
        issuer: String,
    },
    #[error("CRL #{index} in \"{file}\" has a bad signature: it does not verify with the CA \"{issuer}\"")]
    BadSignature {
        index: usize,
        file: String,
        issuer: String,
    },
    #[error("CRL #{index} in \"{file}\" is signed by a CA not allowed to sign CRLs (\"{issuer}\", keyUsage without cRLSign)")]
    NotCrlSigner {
        index: usize,
        file: String,
        issuer: String,
    },
    #[error("CRL #{index} in \"{file}\" (\"{issuer}\") is not supported: {reason}")]
    Unsupported {
        index: usize,
        file: String,
        issuer: String,
        reason: String,
    },
    #[error("CRL #{index} in \"{file}\" has the same issuer as CRL #{first} (\"{issuer}\")")]
    DuplicateIssuer {
        index: usize,
        first: usize,
        file: String,
        issuer: String,
    },
    #[error("{crl} is older than the one in force ({why})")]
    Older { crl: String, why: Regression },
    #[error("CRLs in \"{file}\": {source}")]
    Table { file: String, source: TableError },
}

/// One CRL of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlSummary {
    /// The issuer, RFC 4514.
    pub issuer: String,
    pub info: IssuerInfo,
}

/// A CRL file read into a table.
#[derive(Debug)]
pub struct LoadedCrls {
    pub file: String,
    /// A [`Table`] of kind [`Kind::Crl`].
    pub table: Vec<u8>,
    /// The CRLs in file order.
    pub crls: Vec<CrlSummary>,
}

impl LoadedCrls {
    /// Checks each CRL against the one in force for its issuer, if any, in
    /// a table loaded earlier from the same file: see [`check_newer`].
    pub fn check_newer_than(&self, in_force: &Table<'_>) -> Result<(), CrlError> {
        for (i, crl) in self.crls.iter().enumerate() {
            if let Some(old) = in_force.issuer(&crl.info.key) {
                if let Err(why) = older(&old, &crl.info) {
                    return Err(CrlError::Older {
                        crl: format!("CRL #{} in \"{}\" (\"{}\")", i + 1, self.file, crl.issuer),
                        why,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The key of an issuer, from its Name's DER encoding: the CRL's issuer
/// when loading, a certificate's issuer (`X509Certificate::issuer().as_raw()`)
/// when looking up.
pub fn issuer_key(name_der: &[u8]) -> IssuerKey {
    crate::identity::fingerprint::sha256(name_der)
}

/// Rejects a CRL that is older than the one in force for the same issuer:
/// a lower CRL number, or, when either has no number, an earlier
/// thisUpdate. A replayed old CRL would un-revoke certificates.
pub fn check_newer(old: &IssuerInfo, new: &IssuerInfo) -> Result<(), CrlError> {
    older(old, new).map_err(|why| CrlError::Older {
        crl: "CRL".into(),
        why,
    })
}

/// How a CRL is older than the one in force.
#[derive(Debug, thiserror::Error)]
pub enum Regression {
    #[error("CRL number {new}, in force {old}")]
    Number { new: CrlNumber, old: CrlNumber },
    #[error("thisUpdate {}, in force {}", rfc3339(*new), rfc3339(*old))]
    ThisUpdate { new: i64, old: i64 },
}

fn older(old: &IssuerInfo, new: &IssuerInfo) -> Result<(), Regression> {
    match (old.number, new.number) {
        (Some(old), Some(new)) if new < old => Err(Regression::Number { new, old }),
        (Some(_), Some(_)) => Ok(()),
        _ if new.this_update < old.this_update => Err(Regression::ThisUpdate {
            new: new.this_update,
            old: old.this_update,
        }),
        _ => Ok(()),
    }
}

/// Reads and checks a CRL file; `cas` are the certificates that may sign
/// CRLs (those of `ssl_client_certificate` and `ssl_trusted_certificate`).
pub fn load(path: &Path, cas: &[X509]) -> Result<LoadedCrls, CrlError> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(data) => parse(&data, &file, cas),
        Err(source) => Err(CrlError::Read { file, source }),
    }
}

/// Checks the CRLs in `data`, read from `file` (named in errors).
pub fn parse(data: &[u8], file: &str, cas: &[X509]) -> Result<LoadedCrls, CrlError> {
    let signers: Vec<CrlSigner<'_>> = cas.iter().filter_map(CrlSigner::new).collect();
    let mut builder = TableBuilder::new(Kind::Crl);
    let mut crls = Vec::new();
    let mut issuers = HashMap::new();
    for (i, block) in blocks(data).enumerate() {
        let index = i + 1;
        let corrupt = |reason: String| CrlError::Corrupt {
            index,
            file: file.into(),
            reason,
        };
        let der = block.map_err(|reason| corrupt(reason.into()))?;
        let crl = Crl {
            index,
            file,
            der: &der,
        };
        let (issuer_der, issuer) = crl.verify(&signers)?;
        let key = issuer_key(&issuer_der);
        if let Some(&first) = issuers.get(&key) {
            return Err(CrlError::DuplicateIssuer {
                index,
                first,
                file: file.into(),
                issuer,
            });
        }
        issuers.insert(key, index);
        let info = crl.read_entries(&issuer_der, &issuer, &mut builder)?;
        builder.add_issuer(info).map_err(|source| CrlError::Table {
            file: file.into(),
            source,
        })?;
        crls.push(CrlSummary { issuer, info });
    }
    if crls.is_empty() {
        return Err(CrlError::Empty { file: file.into() });
    }
    let table = builder.finish().map_err(|source| CrlError::Table {
        file: file.into(),
        source,
    })?;
    Ok(LoadedCrls {
        file: file.into(),
        table,
        crls,
    })
}

/// A CA certificate that may sign CRLs.
struct CrlSigner<'a> {
    subject: Vec<u8>,
    cert: &'a X509,
    crl_sign: bool,
}

impl<'a> CrlSigner<'a> {
    fn new(cert: &'a X509) -> Option<CrlSigner<'a>> {
        // SAFETY: `cert` is a valid X509 for this call. OpenSSL computes and
        // caches the certificate's extensions under its own lock; the result
        // is all ones without a keyUsage extension, and 0 for a certificate
        // whose extensions are invalid.
        let usage = unsafe { openssl_sys::X509_get_key_usage(cert.as_ptr()) };
        Some(CrlSigner {
            subject: cert.subject_name().to_der().ok()?,
            cert,
            crl_sign: usage & openssl_sys::X509v3_KU_CRL_SIGN != 0,
        })
    }
}

/// One CRL of a file, DER.
struct Crl<'a> {
    index: usize,
    file: &'a str,
    der: &'a [u8],
}

impl Crl<'_> {
    /// Checks the signature with OpenSSL against the CAs named like the
    /// CRL's issuer; returns the issuer Name, DER and RFC 4514.
    fn verify(&self, signers: &[CrlSigner<'_>]) -> Result<(Vec<u8>, String), CrlError> {
        // Parsed by OpenSSL for the signature only, and dropped before the
        // entries are read again, so that a large CRL is held once at a time.
        let crl = X509Crl::from_der(self.der).map_err(|e| self.corrupt(openssl_reason(&e)))?;
        let issuer_der = crl
            .issuer_name()
            .to_der()
            .map_err(|e| self.corrupt(openssl_reason(&e)))?;
        // OpenSSL wrote this DER itself, from a name it decoded.
        let issuer = match Dn::from_der(&issuer_der) {
            Some(dn) => dn.to_rfc4514(),
            None => return Err(self.corrupt("issuer: not a valid Name".into())),
        };
        let (index, file) = (self.index, self.file.to_owned());
        let named: Vec<&CrlSigner<'_>> =
            signers.iter().filter(|s| s.subject == issuer_der).collect();
        if named.is_empty() {
            return Err(CrlError::UnknownIssuer {
                index,
                file,
                issuer,
            });
        }
        // Several CAs may share a name, as across a key rollover: any will do.
        let mut allowed = named.iter().filter(|s| s.crl_sign).peekable();
        if allowed.peek().is_none() {
            return Err(CrlError::NotCrlSigner {
                index,
                file,
                issuer,
            });
        }
        let verifies = |s: &CrlSigner<'_>| {
            s.cert
                .public_key()
                .and_then(|key| crl.verify(&key))
                .unwrap_or(false)
        };
        if !allowed.any(|s| verifies(s)) {
            return Err(CrlError::BadSignature {
                index,
                file,
                issuer,
            });
        }
        Ok((issuer_der, issuer))
    }

    /// Reads the CRL's fields and adds its entries to `builder`.
    fn read_entries(
        &self,
        issuer_der: &[u8],
        issuer: &str,
        builder: &mut TableBuilder,
    ) -> Result<IssuerInfo, CrlError> {
        let crl = match CertificateRevocationList::from_der(self.der) {
            Ok(([], crl)) => crl,
            Ok(_) => return Err(self.corrupt("data after the CRL".into())),
            Err(e) => return Err(self.corrupt(e.to_string())),
        };
        // The signature was checked on OpenSSL's reading of the same bytes.
        if crl.issuer().as_raw() != issuer_der {
            return Err(self.corrupt("issuer name is not DER".into()));
        }
        if crl.tbs_cert_list.extensions_map().is_err() {
            return Err(self.corrupt("an extension appears twice".into()));
        }
        let unsupported = |reason: String| CrlError::Unsupported {
            index: self.index,
            file: self.file.into(),
            issuer: issuer.into(),
            reason,
        };
        let (number, scope) = self.crl_extensions(crl.extensions(), &unsupported)?;
        let key = issuer_key(issuer_der);
        let mut entries = 0u64;
        for revoked in crl.iter_revoked_certificates() {
            let mut removed = false;
            for ext in revoked.extensions() {
                // An indirect CRL's entries may belong to other issuers.
                if ext.oid == OID_X509_EXT_ISSUER {
                    return Err(unsupported("indirect CRL (certificateIssuer)".into()));
                }
                if ext.critical {
                    return Err(unsupported(format!("critical entry extension {}", ext.oid)));
                }
                removed |= matches!(
                    ext.parsed_extension(),
                    ParsedExtension::ReasonCode(ReasonCode::RemoveFromCRL)
                );
            }
            // A hold lifted: the certificate is valid again, as OpenSSL
            // reads such an entry.
            if removed {
                continue;
            }
            builder.add_revoked(&key, revoked.raw_serial());
            entries += 1;
        }
        Ok(IssuerInfo {
            key,
            this_update: crl.last_update().timestamp(),
            next_update: crl.next_update().map_or(i64::MAX, |t| t.timestamp()),
            number,
            scope,
            entries,
        })
    }

    /// The CRL number and scope; rejects what would be applied wrongly.
    fn crl_extensions(
        &self,
        extensions: &[X509Extension<'_>],
        unsupported: &dyn Fn(String) -> CrlError,
    ) -> Result<(Option<CrlNumber>, Scope), CrlError> {
        let (mut number, mut scope) = (None, Scope::All);
        for ext in extensions {
            if ext.oid == OID_X509_EXT_CRL_NUMBER {
                let ParsedExtension::CRLNumber(n) = ext.parsed_extension() else {
                    return Err(self.corrupt("invalid CRL number".into()));
                };
                number = Some(
                    CrlNumber::from_be_bytes(&n.to_bytes_be())
                        .ok_or_else(|| unsupported("CRL number longer than 20 octets".into()))?,
                );
            } else if ext.oid == OID_X509_EXT_DELTA_CRL_INDICATOR {
                // Only the changes since a base CRL: applied alone, it
                // would un-revoke everything else.
                return Err(unsupported("delta CRL".into()));
            } else if ext.oid == OID_X509_EXT_ISSUER_DISTRIBUTION_POINT {
                let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension() else {
                    return Err(self.corrupt("invalid issuingDistributionPoint".into()));
                };
                if idp.indirect_crl {
                    return Err(unsupported("indirect CRL".into()));
                }
                // It may be one partition of its issuer's certificates
                // (those naming this point in their cRLDistributionPoints):
                // taken for all of them, it would leave the others unchecked.
                if idp.distribution_point.is_some() {
                    return Err(unsupported(
                        "partitioned CRL (issuingDistributionPoint names a distribution point)"
                            .into(),
                    ));
                }
                if idp.only_some_reasons.is_some() {
                    return Err(unsupported("CRL for some revocation reasons only".into()));
                }
                scope = match (
                    idp.only_contains_user_certs,
                    idp.only_contains_ca_certs,
                    idp.only_contains_attribute_certs,
                ) {
                    (false, false, false) => Scope::All,
                    (true, false, false) => Scope::EndEntity,
                    (false, true, false) => Scope::Ca,
                    (_, _, true) => {
                        return Err(unsupported("CRL for attribute certificates".into()))
                    }
                    (true, true, false) => {
                        return Err(self.corrupt("invalid issuingDistributionPoint".into()))
                    }
                };
            } else if ext.oid == OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER {
                // Names the signing key; OpenSSL accepts it critical too.
            } else if ext.critical {
                return Err(unsupported(format!("critical extension {}", ext.oid)));
            }
        }
        Ok((number, scope))
    }

    fn corrupt(&self, reason: String) -> CrlError {
        CrlError::Corrupt {
            index: self.index,
            file: self.file.into(),
            reason,
        }
    }
}

/// The first of OpenSSL's errors, without its codes and source lines.
fn openssl_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors().first().map_or_else(
        || "does not parse".into(),
        |e| {
            format!(
                "{}: {}",
                e.library().unwrap_or("OpenSSL"),
                e.reason().unwrap_or("error")
            )
        },
    )
}

/// The DER CRLs of a file: each PEM `X509 CRL` block, decoded, or the whole
/// file when it has no such block and starts like DER. A block without its
/// END line (a file cut short) is an error.
fn blocks(
    data: &[u8],
) -> Box<dyn Iterator<Item = Result<std::borrow::Cow<'_, [u8]>, &'static str>> + '_> {
    if find(data, PEM_BEGIN).is_none() {
        let der = (data.first() == Some(&0x30)).then_some(Ok(data.into()));
        return Box::new(der.into_iter());
    }
    let mut rest = data;
    Box::new(std::iter::from_fn(move || {
        let begin = find(rest, PEM_BEGIN)?;
        let body = &rest[begin + PEM_BEGIN.len()..];
        // Base64 has no '-': the first one after BEGIN starts the END line.
        let end = body.iter().position(|&b| b == b'-');
        let Some(end) = end.filter(|&end| body[end..].starts_with(PEM_END)) else {
            rest = &[];
            return Some(Err("PEM block without its END line"));
        };
        rest = &body[end + PEM_END.len()..];
        Some(base64(&body[..end]).map(Into::into))
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Decodes base64 (RFC 4648, with padding), ignoring whitespace; as
/// lenient as OpenSSL about the unused bits of the last group.
fn base64(text: &[u8]) -> Result<Vec<u8>, &'static str> {
    static BASE64: std::sync::LazyLock<data_encoding::Encoding> = std::sync::LazyLock::new(|| {
        let mut spec = data_encoding::BASE64.specification();
        spec.ignore.push_str(" \t\r\n");
        spec.check_trailing_bits = false;
        spec.encoding().expect("a valid base64 specification")
    });
    // data-encoding reads "TQ==TWFu" as two padded groups; a PEM body,
    // as OpenSSL reads it, ends at its padding.
    let data = |c: &u8| !b"= \t\r\n".contains(c);
    if let Some(pad) = memchr::memchr(b'=', text) {
        if text[pad..].iter().any(data) {
            return Err("invalid base64 padding");
        }
    }
    BASE64.decode(text).map_err(|e| match e.kind {
        data_encoding::DecodeKind::Length => "invalid base64 length",
        data_encoding::DecodeKind::Padding => "invalid base64 padding",
        _ => "invalid base64",
    })
}

#[cfg(test)]
mod tests {
    use super::super::testca::{self, extension, integer, tlv, CrlSpec, TestCa};
    use super::*;

    /// 2025-01-01 and 2025-02-01, the default CrlSpec's times.
    const JAN: i64 = 1_735_689_600;
    const FEB: i64 = 1_738_368_000;

    fn spec(serials: &[&[u8]]) -> CrlSpec {
        CrlSpec {
            serials: serials.iter().map(|s| s.to_vec()).collect(),
            ..CrlSpec::default()
        }
    }

    fn table(loaded: &LoadedCrls) -> Table<'_> {
        Table::new(&loaded.table).unwrap()
    }

    fn error(data: &[u8], cas: &[X509]) -> String {
        parse(data, "crl.pem", cas).unwrap_err().to_string()
    }

    #[test]
    fn der_crl() {
        let ca = TestCa::new("Test CA");
        let der = ca.crl(&CrlSpec {
            number: Some(vec![0x01, 0x00]),
            ..spec(&[&[0x10, 0x01], &[0x80, 0x00], &[0x00, 0x10, 0x03]])
        });
        let loaded = parse(&der, "crl.der", ca.cas()).unwrap();
        let key = issuer_key(&ca.name_der());
        assert_eq!(
            loaded.crls,
            [CrlSummary {
                issuer: "CN=Test CA".into(),
                info: IssuerInfo {
                    key,
                    this_update: JAN,
                    next_update: FEB,
                    number: Some(CrlNumber::from(256)),
                    scope: Scope::All,
                    entries: 3,
                },
            }]
        );
        let table = table(&loaded);
        assert_eq!((table.kind(), table.len()), (Kind::Crl, 3));
        assert_eq!(table.issuer(&key), Some(loaded.crls[0].info));
        for serial in [&[0x10, 0x01][..], &[0x00, 0x80, 0x00], &[0x10, 0x03]] {
            assert!(table.is_revoked(&key, serial), "{serial:?}");
        }
        assert!(!table.is_revoked(&key, &[0x10, 0x02]));
    }

    #[test]
    fn certificate_issuer_finds_its_crl() {
        let ca = TestCa::new("Test CA");
        let revoked = ca.issue(&[0x8f, 0x01]);
        let valid = ca.issue(&[0x8f, 0x02]);
        let loaded = parse(&ca.crl(&spec(&[&[0x8f, 0x01]])), "crl", ca.cas()).unwrap();
        let table = table(&loaded);
        for (cert, want) in [(revoked, true), (valid, false)] {
            let der = cert.to_der().unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            let key = issuer_key(cert.issuer().as_raw());
            assert!(table.issuer(&key).is_some());
            assert_eq!(table.is_revoked(&key, cert.raw_serial()), want);
            let serial = crate::identity::serial::Serial::from_der_content(cert.raw_serial());
            assert_eq!(table.is_revoked(&key, serial.as_bytes()), want);
        }
    }

    #[test]
    fn pem_with_several_crls() {
        let (one, two) = (TestCa::new("One"), TestCa::new("Two"));
        let mut text =
            String::from("Certificate Revocation List (CRL):\n  text that openssl prints\n");
        text += &testca::pem(&one.crl(&spec(&[&[1], &[2]])));
        text += "\n# between\n";
        text += &testca::pem(&two.crl(&CrlSpec {
            next_update: None,
            number: None,
            ..spec(&[&[2]])
        }));
        for text in [text.clone(), text.replace('\n', "\r\n")] {
            let loaded = parse(
                text.as_bytes(),
                "crl.pem",
                &[two.cert.clone(), one.cert.clone()],
            )
            .unwrap();
            let names: Vec<&str> = loaded.crls.iter().map(|c| c.issuer.as_str()).collect();
            assert_eq!(names, ["CN=One", "CN=Two"]);
            let info = loaded.crls[1].info;
            assert_eq!(
                (info.next_update, info.number, info.entries),
                (i64::MAX, None, 1)
            );
            let table = table(&loaded);
            let (k1, k2) = (issuer_key(&one.name_der()), issuer_key(&two.name_der()));
            assert!(table.is_revoked(&k1, &[1]) && table.is_revoked(&k1, &[2]));
            assert!(table.is_revoked(&k2, &[2]) && !table.is_revoked(&k2, &[1]));
            assert_eq!(table.issuers().count(), 2);
        }
    }

    #[test]
    fn other_pem_blocks_are_ignored() {
        let ca = TestCa::new("Test CA");
        let cert = String::from_utf8(ca.cert.to_pem().unwrap()).unwrap();
        let text = cert.clone() + &testca::pem(&ca.crl(&spec(&[&[7]])));
        let loaded = parse(text.as_bytes(), "crl.pem", ca.cas()).unwrap();
        assert_eq!(loaded.crls.len(), 1);
        assert_eq!(
            error(cert.as_bytes(), ca.cas()),
            "no CRL found in \"crl.pem\""
        );
    }

    #[test]
    fn crl_without_entries() {
        let ca = TestCa::new("Test CA");
        let loaded = parse(&ca.crl(&spec(&[])), "crl", ca.cas()).unwrap();
        assert_eq!(loaded.crls[0].info.entries, 0);
        assert!(table(&loaded).is_empty());
        assert!(table(&loaded).issuer(&issuer_key(&ca.name_der())).is_some());
    }

    #[test]
    fn crl_built_by_openssl() {
        use openssl::asn1::Asn1Time;
        use openssl::bn::BigNum;
        use openssl::hash::MessageDigest;
        use openssl::x509::extension::{AuthorityKeyIdentifier, CrlNumber as CrlNumberExt};
        use openssl::x509::{X509CrlBuilder, X509RevokedBuilder};

        let ca = TestCa::new("OpenSSL CA");
        let mut crl = X509CrlBuilder::new().unwrap();
        crl.set_issuer_name(ca.cert.subject_name()).unwrap();
        crl.set_last_update(&Asn1Time::from_unix(JAN).unwrap())
            .unwrap();
        crl.set_next_update(&Asn1Time::from_unix(FEB).unwrap())
            .unwrap();
        let context = X509::builder().unwrap();
        let context = context.x509v3_context(Some(&ca.cert), None);
        let aki = AuthorityKeyIdentifier::new()
            .issuer(true)
            .build(&context)
            .unwrap();
        crl.append_extension(aki).unwrap();
        let number = CrlNumberExt::new(BigNum::from_u32(42).unwrap()).unwrap();
        crl.append_extension(number.build().unwrap()).unwrap();
        for serial in [0x1001u32, 0xff_ffff] {
            let mut revoked = X509RevokedBuilder::new().unwrap();
            let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
            revoked.set_serial_number(&serial).unwrap();
            revoked
                .set_revocation_date(&Asn1Time::from_unix(JAN).unwrap())
                .unwrap();
            crl.add_revoked(revoked.build()).unwrap();
        }
        crl.sign(&ca.key, MessageDigest::sha256()).unwrap();
        let pem = crl.build().unwrap().to_pem().unwrap();
        let loaded = parse(&pem, "crl.pem", ca.cas()).unwrap();
        let info = loaded.crls[0].info;
        assert_eq!((info.this_update, info.next_update), (JAN, FEB));
        assert_eq!((info.number, info.entries), (Some(CrlNumber::from(42)), 2));
        let key = issuer_key(&ca.name_der());
        assert!(table(&loaded).is_revoked(&key, &[0x10, 0x01]));
        assert!(table(&loaded).is_revoked(&key, &[0xff, 0xff, 0xff]));
    }

    #[test]
    fn files() {
        let ca = TestCa::new("Test CA");
        let dir = std::env::temp_dir().join(format!("mtls-crl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crl.der");
        std::fs::write(&path, ca.crl(&spec(&[&[5]]))).unwrap();
        let loaded = load(&path, ca.cas()).unwrap();
        assert_eq!(loaded.file, path.display().to_string());
        assert_eq!(loaded.crls[0].info.entries, 1);
        let missing = dir.join("missing.pem");
        let e = load(&missing, ca.cas()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot read CRL file \"{}\": ", missing.display())),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_files() {
        for data in [&b""[..], b"\n\n  ", b"hello", b"-----BEGIN X509 CR"] {
            assert_eq!(error(data, &[]), "no CRL found in \"crl.pem\"", "{data:?}");
        }
    }

    #[test]
    fn unknown_issuer() {
        let (ca, other) = (TestCa::new("Test CA"), TestCa::new("Other CA"));
        let text = testca::pem(&ca.crl(&spec(&[&[1]]))) + &testca::pem(&other.crl(&spec(&[&[1]])));
        assert_eq!(
            error(text.as_bytes(), ca.cas()),
            "CRL #2 in \"crl.pem\" is not signed by a known CA (\"CN=Other CA\")"
        );
        assert_eq!(
            error(text.as_bytes(), &[]),
            "CRL #1 in \"crl.pem\" is not signed by a known CA (\"CN=Test CA\")"
        );
    }

    #[test]
    fn bad_signature() {
        let ca = TestCa::new("Test CA");
        let impostor = TestCa::new("Test CA");
        let der = impostor.crl(&spec(&[&[1]]));
        assert_eq!(
            error(&der, ca.cas()),
            "CRL #1 in \"crl.pem\" has a bad signature: it does not verify with the CA \"CN=Test CA\""
        );
        // CAs sharing a name, as across a key rollover: each is tried.
        assert!(parse(&der, "crl", &[ca.cert.clone(), impostor.cert.clone()]).is_ok());
        // One signature bit flipped.
        let mut der = ca.crl(&spec(&[&[1]]));
        let last = der.len() - 1;
        der[last] ^= 1;
        assert_eq!(
            error(&der, ca.cas()),
            "CRL #1 in \"crl.pem\" has a bad signature: it does not verify with the CA \"CN=Test CA\""
        );
        // A revoked serial changed after signing.
        let good = ca.crl(&spec(&[&[0x42]]));
        let at = good
            .windows(3)
            .position(|w| w == [0x02, 0x01, 0x42])
            .unwrap();
        let mut der = good.clone();
        der[at + 2] = 0x43;
        assert!(error(&der, ca.cas()).contains("bad signature"));
    }

    #[test]
    fn issuer_must_be_allowed_to_sign_crls() {
        let ca = TestCa::with_key_usage("Test CA", false);
        assert_eq!(
            error(&ca.crl(&spec(&[&[1]])), ca.cas()),
            "CRL #1 in \"crl.pem\" is signed by a CA not allowed to sign CRLs (\"CN=Test CA\", keyUsage without cRLSign)"
        );
    }

    #[test]
    fn truncated_der_is_rejected() {
        let ca = TestCa::new("Test CA");
        let der = ca.crl(&spec(&[&[1], &[2], &[3]]));
        for len in 0..der.len() {
            assert!(parse(&der[..len], "crl", ca.cas()).is_err(), "{len}");
        }
        let e = error(&der[..der.len() - 1], ca.cas());
        assert!(
            e.starts_with("truncated or corrupt CRL #1 in \"crl.pem\": asn1 encoding routines: "),
            "{e}"
        );
        let mut longer = der.clone();
        longer.push(0);
        assert_eq!(
            error(&longer, ca.cas()),
            "truncated or corrupt CRL #1 in \"crl.pem\": data after the CRL"
        );
    }

    #[test]
    fn truncated_pem_is_rejected() {
        let (one, two) = (TestCa::new("One"), TestCa::new("Two"));
        let first = testca::pem(&one.crl(&spec(&[&[1]])));
        let text = first.clone() + &testca::pem(&two.crl(&spec(&[&[2]])));
        let cas = [one.cert.clone(), two.cert.clone()];
        let end_of_first = first.trim_end().len();
        for len in 0..text.len() {
            match parse(&text.as_bytes()[..len], "crl.pem", &cas) {
                Err(_) => {}
                // Cut between two blocks, a file with fewer CRLs remains:
                // the missing issuer has no CRL, and its certificates are
                // denied, never allowed.
                Ok(loaded) if len < text.trim_end().len() => {
                    assert!(len >= end_of_first, "{len}");
                    assert_eq!(loaded.crls.len(), 1, "{len}");
                }
                Ok(loaded) => assert_eq!(loaded.crls.len(), 2),
            }
        }
        assert_eq!(
            error(&text.as_bytes()[..text.len() - 10], &cas),
            "truncated or corrupt CRL #2 in \"crl.pem\": PEM block without its END line"
        );
        // Ten characters into the first line of base64.
        let cut = first.find('\n').unwrap() + 10;
        let broken = format!("{}\n{}", &first[..cut], &first[cut + 1..]);
        assert_eq!(
            error(broken.as_bytes(), &cas),
            "truncated or corrupt CRL #1 in \"crl.pem\": invalid base64 length"
        );
    }

    #[test]
    fn corrupt_pem() {
        let ca = TestCa::new("Test CA");
        let first = testca::pem(&ca.crl(&spec(&[&[1]])));
        let bad = first.replacen("\n", "\n*", 2);
        assert_eq!(
            error(bad.as_bytes(), ca.cas()),
            "truncated or corrupt CRL #1 in \"crl.pem\": invalid base64"
        );
        let not_a_crl = testca::pem(b"not DER at all");
        assert!(error(not_a_crl.as_bytes(), &[]).starts_with("truncated or corrupt CRL #1"));
    }

    #[test]
    fn duplicate_issuer() {
        let ca = TestCa::new("Test CA");
        let text = testca::pem(&ca.crl(&spec(&[&[1]]))) + &testca::pem(&ca.crl(&spec(&[&[2]])));
        assert_eq!(
            error(text.as_bytes(), ca.cas()),
            "CRL #2 in \"crl.pem\" has the same issuer as CRL #1 (\"CN=Test CA\")"
        );
    }

    #[test]
    fn crl_numbers() {
        let ca = TestCa::new("Test CA");
        let number = |bytes: Vec<u8>| {
            let der = ca.crl(&CrlSpec {
                number: Some(bytes),
                ..spec(&[])
            });
            parse(&der, "crl.pem", ca.cas()).map(|l| l.crls[0].info.number.unwrap())
        };
        assert_eq!(number(vec![0]).unwrap(), CrlNumber::from(0));
        let twenty = number(vec![0xff; 20]).unwrap();
        assert_eq!(twenty.as_bytes(), [0xff; 20]);
        assert_eq!(
            number(vec![1; 21]).unwrap_err().to_string(),
            "CRL #1 in \"crl.pem\" (\"CN=Test CA\") is not supported: CRL number longer than 20 octets"
        );
        // A negative CRL number, INTEGER -1.
        let der = ca.crl(&CrlSpec {
            number: None,
            extensions: vec![extension(&[0x55, 0x1d, 0x14], false, &[0x02, 0x01, 0xff])],
            ..spec(&[])
        });
        assert_eq!(
            error(&der, ca.cas()),
            "truncated or corrupt CRL #1 in \"crl.pem\": invalid CRL number"
        );
    }

    #[test]
    fn unsupported_crls() {
        let ca = TestCa::new("Test CA");
        let idp = |content: &[u8]| extension(&[0x55, 0x1d, 0x1c], true, &tlv(0x30, content));
        let cert_issuer = extension(
            &[0x55, 0x1d, 0x1d],
            true,
            &tlv(0x30, &tlv(0xa4, &ca.name_der())),
        );
        let private_oid = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x01];
        let cases = [
            (
                vec![extension(&[0x55, 0x1d, 0x1b], true, &integer(&[1]))],
                vec![],
                "delta CRL",
            ),
            (vec![idp(&[0x84, 0x01, 0xff])], vec![], "indirect CRL"),
            (
                vec![idp(&tlv(
                    0xa0,
                    &tlv(0xa0, &tlv(0x86, b"http://ca.example/1.crl")),
                ))],
                vec![],
                "partitioned CRL (issuingDistributionPoint names a distribution point)",
            ),
            (
                vec![idp(&[0x83, 0x02, 0x06, 0x40])],
                vec![],
                "CRL for some revocation reasons only",
            ),
            (
                vec![idp(&[0x85, 0x01, 0xff])],
                vec![],
                "CRL for attribute certificates",
            ),
            (
                vec![extension(&private_oid, true, &[0x05, 0x00])],
                vec![],
                "critical extension 1.3.6.1.4.1.311.1",
            ),
            (
                vec![],
                vec![cert_issuer],
                "indirect CRL (certificateIssuer)",
            ),
            (
                vec![],
                vec![extension(&private_oid, true, &[0x05, 0x00])],
                "critical entry extension 1.3.6.1.4.1.311.1",
            ),
        ];
        for (extensions, first_entry_extensions, reason) in cases {
            let der = ca.crl(&CrlSpec {
                extensions,
                first_entry_extensions,
                ..spec(&[&[1]])
            });
            assert_eq!(
                error(&der, ca.cas()),
                format!("CRL #1 in \"crl.pem\" (\"CN=Test CA\") is not supported: {reason}")
            );
        }
    }

    #[test]
    fn corrupt_extensions() {
        let ca = TestCa::new("Test CA");
        let idp = extension(
            &[0x55, 0x1d, 0x1c],
            true,
            &tlv(0x30, &[0x81, 0x01, 0xff, 0x82, 0x01, 0xff]),
        );
        let number = extension(&[0x55, 0x1d, 0x14], false, &integer(&[2]));
        for (extensions, reason) in [
            (vec![idp], "invalid issuingDistributionPoint"),
            (vec![number], "an extension appears twice"),
        ] {
            let der = ca.crl(&CrlSpec {
                extensions,
                ..spec(&[])
            });
            assert_eq!(
                error(&der, ca.cas()),
                format!("truncated or corrupt CRL #1 in \"crl.pem\": {reason}")
            );
        }
    }

    #[test]
    fn supported_extensions() {
        let ca = TestCa::new("Test CA");
        let idp = |content: &[u8]| extension(&[0x55, 0x1d, 0x1c], true, &tlv(0x30, content));
        let private_oid = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x01];
        let reason_code = extension(&[0x55, 0x1d, 0x15], false, &[0x0a, 0x01, 0x01]);
        let aki = extension(&[0x55, 0x1d, 0x23], true, &tlv(0x30, &tlv(0x80, &[1; 20])));
        let cases = [
            (vec![aki], Scope::All),
            (vec![idp(&[0x81, 0x01, 0xff])], Scope::EndEntity),
            (vec![idp(&[0x82, 0x01, 0xff])], Scope::Ca),
            (vec![idp(&[])], Scope::All),
            (
                vec![extension(&private_oid, false, &[0x05, 0x00])],
                Scope::All,
            ),
        ];
        for (extensions, scope) in cases {
            let der = ca.crl(&CrlSpec {
                extensions,
                first_entry_extensions: vec![reason_code.clone()],
                ..spec(&[&[1]])
            });
            let loaded = parse(&der, "crl", ca.cas()).unwrap();
            assert_eq!(loaded.crls[0].info.scope, scope);
        }
    }

    #[test]
    fn removed_from_crl_is_not_revoked() {
        let ca = TestCa::new("Test CA");
        let remove = extension(&[0x55, 0x1d, 0x15], false, &[0x0a, 0x01, 0x08]);
        let der = ca.crl(&CrlSpec {
            first_entry_extensions: vec![remove],
            ..spec(&[&[1], &[2]])
        });
        let loaded = parse(&der, "crl", ca.cas()).unwrap();
        assert_eq!(loaded.crls[0].info.entries, 1);
        let key = issuer_key(&ca.name_der());
        assert!(!table(&loaded).is_revoked(&key, &[1]));
        assert!(table(&loaded).is_revoked(&key, &[2]));
    }

    #[test]
    fn older_crls_are_rejected() {
        let with = |number: Option<u64>, this_update: i64| IssuerInfo {
            key: [1; 32],
            this_update,
            next_update: i64::MAX,
            number: number.map(CrlNumber::from),
            scope: Scope::All,
            entries: 0,
        };
        let in_force = with(Some(7), FEB);
        assert!(check_newer(&in_force, &with(Some(7), FEB)).is_ok());
        assert!(
            check_newer(&in_force, &with(Some(8), JAN)).is_ok(),
            "the number decides"
        );
        assert_eq!(
            check_newer(&in_force, &with(Some(6), FEB))
                .unwrap_err()
                .to_string(),
            "CRL is older than the one in force (CRL number 6, in force 7)"
        );
        assert!(check_newer(&in_force, &with(None, FEB)).is_ok());
        assert_eq!(
            check_newer(&in_force, &with(None, JAN)).unwrap_err().to_string(),
            "CRL is older than the one in force (thisUpdate 2025-01-01T00:00:00Z, in force 2025-02-01T00:00:00Z)"
        );
        assert!(check_newer(&with(None, JAN), &with(Some(1), FEB)).is_ok());
    }

    #[test]
    fn older_file_is_rejected() {
        let (one, two) = (TestCa::new("One"), TestCa::new("Two"));
        let cas = [one.cert.clone(), two.cert.clone()];
        let file = |n1: u8, n2: u8| {
            let text = testca::pem(&one.crl(&CrlSpec {
                number: Some(vec![n1]),
                ..spec(&[&[1]])
            })) + &testca::pem(&two.crl(&CrlSpec {
                number: Some(vec![n2]),
                ..spec(&[&[1]])
            }));
            parse(text.as_bytes(), "crl.pem", &cas).unwrap()
        };
        let in_force = file(5, 9);
        let in_force = table(&in_force);
        assert!(file(5, 9).check_newer_than(&in_force).is_ok());
        assert!(file(6, 10).check_newer_than(&in_force).is_ok());
        assert_eq!(
            file(6, 8).check_newer_than(&in_force).unwrap_err().to_string(),
            "CRL #2 in \"crl.pem\" (\"CN=Two\") is older than the one in force (CRL number 8, in force 9)"
        );
        // An issuer new to the file has nothing to be older than.
        let only_one = parse(&one.crl(&spec(&[])), "crl", &cas[..1]).unwrap();
        assert!(file(1, 1).check_newer_than(&table(&only_one)).is_ok());
    }

    #[test]
    fn base64_decoding() {
        assert_eq!(base64(b"").unwrap(), b"");
        assert_eq!(base64(b"TWFu").unwrap(), b"Man");
        assert_eq!(base64(b"TWE=").unwrap(), b"Ma");
        assert_eq!(base64(b"TQ==\r\n").unwrap(), b"M");
        assert_eq!(base64(b" TW\tFu\nTQ== ").unwrap(), b"ManM");
        assert_eq!(base64(b"+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        for bad in [
            &b"TWF"[..],
            b"TQ=",
            b"T===",
            b"TQ==TWFu",
            b"TW=u",
            b"TW-u",
            b"====",
        ] {
            assert!(base64(bad).is_err(), "{bad:?}");
        }
    }
}
