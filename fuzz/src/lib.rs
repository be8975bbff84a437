//! Helpers shared by the fuzz targets and the seed generators: the CA that
//! signs fuzzed CRLs, OpenSSL's view of names and SANs for the
//! differential target, and the corpus a seed generator reads.

use std::ffi::{c_int, c_ulong};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use ngx_http_mtls_module::identity::dn::{Ava, AvaValue, Dn, Rdn};
use ngx_http_mtls_module::revocation::crl::{self, CrlError, LoadedCrls};
use ngx_http_mtls_module::revocation::testca::{pem, tlv, TestCa};
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use openssl::x509::X509NameRef;

/// The subject of the CA that signs the CRL seeds: `scripts/fuzz --seed`
/// makes them with `mtls-pki init --cn` this name, which encodes it as one
/// UTF8String CN, as `TestCa` does.
pub const CA_CN: &str = "mtls fuzz CA";

/// ecdsa-with-SHA256, without parameters.
const ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

/// The files of a corpus directory, sorted, so that seeds derived from them
/// come out in the same order on every run.
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The CA the CRL target checks CRLs against. Its key is made once per run:
/// the seeds carry its name, and the target signs them again (see
/// [`crl_input`]).
pub fn ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new(CA_CN))
}

/// The CRL target's input: a flag byte, then a CRL file. Flag bit 0: the
/// file is one DER CRL whose TBSCertList is signed again by [`ca`], so that
/// mutations reach past the signature check into the entries; bit 1: that
/// CRL is then PEM-armoured. Without bit 0 the file is loaded as it is
/// (PEM splitting, corrupt files, unknown issuers, bad signatures).
pub fn crl_input(data: &[u8]) -> Option<Result<LoadedCrls, CrlError>> {
    let (&flags, file) = data.split_first()?;
    let cas = ca().cas();
    if flags & 1 == 0 {
        return Some(crl::parse(file, "fuzz", cas));
    }
    let crl = resign(file)?;
    Some(if flags & 2 == 0 {
        crl::parse(&crl, "fuzz", cas)
    } else {
        crl::parse(pem(&crl).as_bytes(), "fuzz", cas)
    })
}

/// The CRL `der` with its TBSCertList signed by [`ca`]; `None` when `der`
/// does not start with a SEQUENCE holding a TLV.
pub fn resign(der: &[u8]) -> Option<Vec<u8>> {
    let (outer, _) = split_tlv(der)?;
    let (_, after_tbs) = split_tlv(outer)?;
    let tbs = &outer[..outer.len() - after_tbs.len()];
    let mut signer = Signer::new(MessageDigest::sha256(), &ca().key).ok()?;
    signer.update(tbs).ok()?;
    let mut signature = vec![0];
    signature.extend(signer.sign_to_vec().ok()?);
    let mut content = tbs.to_vec();
    content.extend_from_slice(ECDSA_SHA256);
    content.extend(tlv(0x03, &signature));
    Some(tlv(0x30, &content))
}

/// The content of the DER TLV at the start of `data` (one-byte tag,
/// definite length), and what follows it.
fn split_tlv(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len_byte, rest) = data.get(1..)?.split_first()?;
    let (len, rest) = if len_byte < 0x80 {
        (usize::from(len_byte), rest)
    } else {
        let n = usize::from(len_byte & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

extern "C" {
    fn X509_NAME_ENTRY_set(ne: *const openssl_sys::X509_NAME_ENTRY) -> c_int;
    fn X509_NAME_print_ex(
        out: *mut openssl_sys::BIO,
        name: *const openssl_sys::X509_NAME,
        indent: c_int,
        flags: c_ulong,
    ) -> c_int;
}

/// A name as OpenSSL reads it, in the module's model, for comparison with
/// [`Dn::from_x509`]: the RDNs of OpenSSL's entries (grouped by
/// `X509_NAME_ENTRY_set`), each attribute as its dotted OID and, where
/// OpenSSL converts the value to UTF-8 (`ASN1_STRING_to_UTF8`: the string
/// types, and also UTCTime and GeneralizedTime), that text. A value OpenSSL
/// does not convert is `AvaValue::Der` of nothing: only "not text" is
/// compared, since OpenSSL keeps such values in forms of its own (a
/// SEQUENCE whole, an INTEGER's content only, a negative INTEGER as
/// another type). `None` if OpenSSL's UTF-8 is not valid UTF-8 (a lone
/// surrogate in a BMPString), which the module's model cannot hold.
pub fn openssl_dn(name: &X509NameRef) -> Option<Dn> {
    let mut rdns: Vec<(c_int, Vec<Ava>)> = Vec::new();
    for entry in name.entries() {
        let oid = oid_text(entry.object().as_ptr())?;
        let value = match utf8(entry.data().as_ptr()) {
            Some(Ok(text)) => AvaValue::Text(text),
            Some(Err(())) => return None,
            None => AvaValue::Der(Vec::new()),
        };
        // SAFETY: the entry belongs to `name`, alive for this call.
        let set = unsafe { X509_NAME_ENTRY_set(entry.as_ptr()) };
        match rdns.last_mut() {
            Some((last, avas)) if *last == set => avas.push(Ava { oid, value }),
            _ => rdns.push((set, vec![Ava { oid, value }])),
        }
    }
    Some(Dn(rdns
        .into_iter()
        .map(|(_, avas)| Rdn::new(avas))
        .collect()))
}

/// The comparable form of a module DN (see [`openssl_dn`]): every non-text
/// value the same, each RDN's values sorted.
pub fn comparable(dn: &Dn) -> Vec<Vec<Ava>> {
    dn.0.iter()
        .map(|rdn| {
            let mut avas: Vec<Ava> = rdn
                .0
                .iter()
                .map(|ava| Ava {
                    oid: ava.oid.clone(),
                    value: match &ava.value {
                        AvaValue::Text(text) => AvaValue::Text(text.clone()),
                        AvaValue::Der(_) => AvaValue::Der(Vec::new()),
                    },
                })
                .collect();
            avas.sort();
            avas
        })
        .collect()
}

fn oid_text(obj: *const openssl_sys::ASN1_OBJECT) -> Option<String> {
    let mut buf = [0u8; 512];
    // SAFETY: `obj` is alive for this call; OBJ_obj2txt writes at most
    // `buf.len()` bytes, NUL included, and returns the full length.
    let len =
        unsafe { openssl_sys::OBJ_obj2txt(buf.as_mut_ptr().cast(), buf.len() as c_int, obj, 1) };
    let len = usize::try_from(len).ok()?;
    (len < buf.len()).then(|| String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// `None` when OpenSSL does not convert the value; `Err` when what it
/// produces is not UTF-8.
fn utf8(value: *const openssl_sys::ASN1_STRING) -> Option<Result<String, ()>> {
    let mut out = ptr::null_mut();
    // SAFETY: `value` is alive for this call; on success `out` holds `len`
    // bytes allocated by OpenSSL, copied and then freed once.
    unsafe {
        let len = openssl_sys::ASN1_STRING_to_UTF8(&mut out, value);
        let len = usize::try_from(len).ok()?;
        let bytes = if len == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(out, len).to_vec()
        };
        openssl_sys::CRYPTO_free(out.cast(), c"fuzz".as_ptr(), 0);
        Some(String::from_utf8(bytes).map_err(|_| ()))
    }
}

/// `X509_NAME_print_ex(XN_FLAG_RFC2253)`, what nginx puts in
/// `$ssl_client_s_dn`; `None` when OpenSSL fails to print it.
pub fn openssl_rfc2253(name: &X509NameRef) -> Option<String> {
    const XN_FLAG_RFC2253: c_ulong = 0x0111_0317;
    // SAFETY: the BIO is created here, checked for NULL and freed once;
    // its buffer is read while it is alive and only when non-empty.
    unsafe {
        let bio = openssl_sys::BIO_new(openssl_sys::BIO_s_mem());
        if bio.is_null() {
            return None;
        }
        let written = X509_NAME_print_ex(bio, name.as_ptr(), 0, XN_FLAG_RFC2253);
        let mut data = ptr::null_mut();
        let len = usize::try_from(openssl_sys::BIO_get_mem_data(bio, &mut data)).unwrap_or(0);
        let printed = if len == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec()
        };
        openssl_sys::BIO_free_all(bio);
        (written >= 0)
            .then(|| String::from_utf8(printed).ok())
            .flatten()
    }
}

/// A certificate's SANs as OpenSSL reads them: (GeneralName type, raw
/// value) for the types the module reads: email (1), DNS (2), URI (6), IP
/// (7). `None` when OpenSSL finds no (or no single) SAN extension.
pub fn openssl_sans(cert: &openssl::x509::X509Ref) -> Option<Vec<(c_int, Vec<u8>)>> {
    let names = cert.subject_alt_names()?;
    let mut out = Vec::new();
    for name in &names {
        // SAFETY: the GENERAL_NAME is alive with `names`; for these types
        // its `d` is an ASN1_STRING (IA5String or OCTET STRING).
        unsafe {
            let raw = &*name.as_ptr();
            if matches!(raw.type_, 1 | 2 | 6 | 7) {
                let value = openssl::asn1::Asn1StringRef::from_ptr(raw.d.cast());
                out.push((raw.type_, value.as_slice().to_vec()));
            }
        }
    }
    Some(out)
}
