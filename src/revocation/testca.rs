//! A test CA that signs CRLs, for the unit tests and the look-up benchmark
//! (`benches/lookup.rs`). The CRL's TBSCertList is encoded here,
//! by hand, so that tests control every field, including ones OpenSSL's CRL
//! builder would refuse; it is signed with ECDSA P-256.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509Name, X509};

/// ecdsa-with-SHA256, without parameters.
const ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

pub struct TestCa {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl TestCa {
    /// A self-signed CA `CN=<cn>` with keyUsage keyCertSign and cRLSign.
    pub fn new(cn: &str) -> TestCa {
        TestCa::with_key_usage(cn, true)
    }

    /// A CA whose keyUsage has `cRLSign` only if `crl_sign`.
    pub fn with_key_usage(cn: &str, crl_sign: bool) -> TestCa {
        TestCa::build(cn, crl_sign, None, 1)
    }

    /// A CA `CN=<cn>` issued by this one, with this serial.
    pub fn intermediate(&self, cn: &str, serial: u32) -> TestCa {
        TestCa::build(cn, true, Some(self), serial)
    }

    fn build(cn: &str, crl_sign: bool, issuer: Option<&TestCa>, serial: u32) -> TestCa {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
        cert.set_serial_number(&serial).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(issuer.map_or(&*name, |ca| ca.cert.subject_name()))
            .unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
            .unwrap();
        cert.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        let mut usage = KeyUsage::new();
        usage.critical().key_cert_sign();
        if crl_sign {
            usage.crl_sign();
        }
        cert.append_extension(usage.build().unwrap()).unwrap();
        cert.sign(issuer.map_or(&key, |ca| &ca.key), MessageDigest::sha256())
            .unwrap();
        TestCa {
            cert: cert.build(),
            key,
        }
    }

    /// A client certificate with this serial (a magnitude), issued by this CA.
    pub fn issue(&self, serial: &[u8]) -> X509 {
        self.issue_with_cdp(serial, &[])
    }

    /// A client certificate whose CRL Distribution Points extension names
    /// `uris` (none: no extension), one distribution point each.
    pub fn issue_with_cdp(&self, serial: &[u8], uris: &[&str]) -> X509 {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "client").unwrap();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        let serial = BigNum::from_slice(serial)
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        cert.set_serial_number(&serial).unwrap();
        cert.set_subject_name(&name.build()).unwrap();
        cert.set_issuer_name(self.cert.subject_name()).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        if !uris.is_empty() {
            let value: Vec<String> = uris.iter().map(|u| format!("URI:{u}")).collect();
            // The one way the openssl crate makes this extension from text.
            #[allow(deprecated)]
            let ext = openssl::x509::X509Extension::new_nid(
                None,
                None,
                Nid::CRL_DISTRIBUTION_POINTS,
                &value.join(","),
            )
            .unwrap();
            cert.append_extension(ext).unwrap();
        }
        cert.sign(&self.key, MessageDigest::sha256()).unwrap();
        cert.build()
    }

    /// This CA alone, as the CA list CRLs are checked against.
    pub fn cas(&self) -> &[X509] {
        std::slice::from_ref(&self.cert)
    }

    /// The subject Name, DER.
    pub fn name_der(&self) -> Vec<u8> {
        self.cert.subject_name().to_der().unwrap()
    }

    /// A CRL signed by this CA, DER.
    pub fn crl(&self, spec: &CrlSpec) -> Vec<u8> {
        self.crl_as(&self.name_der(), spec)
    }

    /// A CRL that names `issuer` (a Name, DER) but is signed by this CA.
    pub fn crl_as(&self, issuer: &[u8], spec: &CrlSpec) -> Vec<u8> {
        let mut tbs = Vec::new();
        tbs.extend(tlv(0x02, &[1])); // v2
        tbs.extend_from_slice(ECDSA_SHA256);
        tbs.extend_from_slice(issuer);
        tbs.extend(utc_time(&spec.this_update));
        if let Some(next) = &spec.next_update {
            tbs.extend(utc_time(next));
        }
        if !spec.serials.is_empty() {
            let mut list = Vec::with_capacity(spec.serials.len() * 24);
            for (i, serial) in spec.serials.iter().enumerate() {
                let mut entry = integer(serial);
                entry.extend(utc_time(&spec.this_update));
                if i == 0 && !spec.first_entry_extensions.is_empty() {
                    entry.extend(tlv(0x30, &spec.first_entry_extensions.concat()));
                }
                list.extend(tlv(0x30, &entry));
            }
            tbs.extend(tlv(0x30, &list));
        }
        let mut extensions = spec.extensions.concat();
        if let Some(number) = &spec.number {
            extensions.extend(extension(&[0x55, 0x1d, 0x14], false, &integer(number)));
        }
        if !extensions.is_empty() {
            tbs.extend(tlv(0xa0, &tlv(0x30, &extensions)));
        }
        let tbs = tlv(0x30, &tbs);
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        signer.update(&tbs).unwrap();
        let mut signature = vec![0];
        signature.extend(signer.sign_to_vec().unwrap());
        let mut crl = tbs;
        crl.extend_from_slice(ECDSA_SHA256);
        crl.extend(tlv(0x03, &signature));
        tlv(0x30, &crl)
    }
}

/// xorshift64*, for reproducible serials, keys and corruptions.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// 16 bytes without a leading zero: distinct arrays, distinct serials.
    pub fn serial(&mut self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        out[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        out[0] |= 1;
        out
    }
}

/// The fields of a test CRL. Times are UTCTime, `YYMMDDHHMMSSZ`.
#[derive(Clone)]
pub struct CrlSpec {
    pub this_update: String,
    pub next_update: Option<String>,
    /// The CRL number's magnitude, big-endian.
    pub number: Option<Vec<u8>>,
    /// Magnitudes, big-endian.
    pub serials: Vec<Vec<u8>>,
    /// Encoded Extensions added to the CRL, besides the CRL number.
    pub extensions: Vec<Vec<u8>>,
    /// Encoded Extensions of the first entry.
    pub first_entry_extensions: Vec<Vec<u8>>,
}

impl Default for CrlSpec {
    fn default() -> CrlSpec {
        CrlSpec {
            this_update: "250101000000Z".into(),
            next_update: Some("250201000000Z".into()),
            number: Some(vec![1]),
            serials: Vec::new(),
            extensions: Vec::new(),
            first_entry_extensions: Vec::new(),
        }
    }
}

/// An Extension: `oid` is the OID's content octets, `value` the DER that
/// goes in the OCTET STRING.
pub fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut content = tlv(0x06, oid);
    if critical {
        content.extend([0x01, 0x01, 0xff]);
    }
    content.extend(tlv(0x04, value));
    tlv(0x30, &content)
}

/// A DER INTEGER from a non-negative magnitude.
pub fn integer(magnitude: &[u8]) -> Vec<u8> {
    let significant = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let mut content = magnitude[significant..].to_vec();
    if content.first().map_or(true, |&b| b & 0x80 != 0) {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

/// PEM armour around a DER CRL.
pub fn pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::from("-----BEGIN X509 CRL-----\n");
    for line in der.chunks(48) {
        for group in line.chunks(3) {
            let n =
                group.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - group.len()));
            for i in 0..4 {
                text.push(if i <= group.len() {
                    ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        text.push('\n');
    }
    text.push_str("-----END X509 CRL-----\n");
    text
}

fn utc_time(text: &str) -> Vec<u8> {
    tlv(0x17, text.as_bytes())
}

/// A DER tag, definite length and content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - significant) as u8);
        out.extend_from_slice(&bytes[significant..]);
    }
    out.extend_from_slice(content);
    out
}
