//! Builders and OpenSSL oracles shared by the tests of the `dn` files.

use super::oid::{encode_oid, encode_tlv};
use super::*;
use std::ffi::{c_int, c_long, c_ulong, CString};
use std::ptr;
use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Name as OpensslName, X509};
use x509_parser::prelude::{parse_x509_certificate, FromDer};
use x509_parser::x509::X509Name;

pub(super) const UID: &str = "0.9.2342.19200300.100.1.1";

pub(super) fn dn(s: &str) -> Dn {
    Dn::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

pub(super) fn text(s: &str) -> AvaValue {
    AvaValue::Text(s.to_owned())
}

pub(super) fn ava(oid: &str, value: AvaValue) -> Ava {
    Ava {
        oid: oid.to_owned(),
        value,
    }
}

pub(super) fn cn(value: AvaValue) -> Dn {
    Dn(vec![Rdn(vec![ava(OID_CN, value)])])
}

pub(super) fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

pub(super) fn assert_round_trip(dn: &Dn) {
    let printed = dn.to_rfc4514();
    assert!(printable(&printed), "{printed:?}");
    assert_eq!(printed, dn.to_string());
    assert_eq!(Dn::parse(&printed).as_ref(), Ok(dn), "{printed:?}");
}

// DER builders for names that OpenSSL's API cannot make.

pub(super) fn tlv(identifier: u8, content: &[u8]) -> Vec<u8> {
    encode_tlv(
        identifier >> 6,
        identifier & 0x20 != 0,
        u32::from(identifier & 0x1f),
        content,
    )
}

pub(super) fn atv(oid: &str, value: &[u8]) -> Vec<u8> {
    let oid = tlv(0x06, &encode_oid(oid).unwrap());
    tlv(0x30, &[oid, value.to_vec()].concat())
}

pub(super) fn name_der(rdns: &[&[Vec<u8>]]) -> Vec<u8> {
    let sets: Vec<u8> = rdns
        .iter()
        .flat_map(|set| tlv(0x31, &set.concat()))
        .collect();
    tlv(0x30, &sets)
}

pub(super) fn utf8(s: &str) -> Vec<u8> {
    tlv(0x0c, s.as_bytes())
}

pub(super) fn bmp(s: &str) -> Vec<u8> {
    let units: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
    tlv(0x1e, &units)
}

pub(super) fn universal(s: &str) -> Vec<u8> {
    let chars: Vec<u8> = s.chars().flat_map(|c| u32::from(c).to_be_bytes()).collect();
    tlv(0x1c, &chars)
}

/// `None` unless every character is in ISO-8859-1.
pub(super) fn latin1(identifier: u8, s: &str) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c).ok()).collect();
    Some(tlv(identifier, &bytes?))
}

/// x509-parser's reading of a name, which is also the module's own,
/// and whose CN is the one the module reads alone.
pub(super) fn decode(der: &[u8]) -> Dn {
    let (rest, name) = X509Name::from_der(der).unwrap();
    assert!(rest.is_empty());
    let dn = Dn::from_x509(&name);
    assert_eq!(Dn::from_der(der).as_ref(), Some(&dn));
    let cn = single_cn(&dn).map(str::to_owned);
    assert_eq!(Dn::single_cn_from_der(der), Some(cn));
    dn
}

// Certificates and OpenSSL's view of them.

pub(super) fn key() -> &'static PKey<Private> {
    static KEY: OnceLock<PKey<Private>> = OnceLock::new();
    KEY.get_or_init(|| {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    })
}

pub(super) fn certificate(subject_der: &[u8]) -> Vec<u8> {
    let name = OpensslName::from_der(subject_der).unwrap();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(key()).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    builder.sign(key(), MessageDigest::sha256()).unwrap();
    builder.build().to_der().unwrap()
}

/// The subject of a certificate made with this name, as `from_x509` and
/// as OpenSSL (nginx's `$ssl_client_s_dn`) see it. The module's own
/// reading of it, and of its CN alone, is x509-parser's.
pub(super) fn subject(subject_der: &[u8]) -> (Dn, String) {
    let der = certificate(subject_der);
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    let dn = Dn::from_x509(cert.subject());
    let id = crate::identity::Identity::from_der(&der).unwrap();
    assert_eq!(id.subject(), Ok(&dn));
    assert_eq!(id.cn(), Ok(single_cn(&dn)), "{dn:?}");
    let openssl_subject = X509::from_der(&der)
        .unwrap()
        .subject_name()
        .to_der()
        .unwrap();
    (dn, openssl_rfc2253(&openssl_subject))
}

/// The CN as a CN rule reads it: the one CN, if it is text.
pub(super) fn single_cn(dn: &Dn) -> Option<&str> {
    let mut cns = dn.values_of(OID_CN);
    match (cns.next(), cns.next()) {
        (Some(AvaValue::Text(cn)), None) => Some(cn),
        _ => None,
    }
}

pub(super) fn assert_like_openssl(subject_der: &[u8]) -> Dn {
    let (dn, openssl) = subject(subject_der);
    assert_eq!(dn.to_rfc4514(), openssl, "{dn:?}");
    assert_round_trip(&dn);
    dn
}

pub(super) fn openssl_rfc2253(name_der: &[u8]) -> String {
    extern "C" {
        fn X509_NAME_print_ex(
            out: *mut openssl_sys::BIO,
            name: *const openssl_sys::X509_NAME,
            indent: c_int,
            flags: c_ulong,
        ) -> c_int;
    }
    const XN_FLAG_RFC2253: c_ulong = 0x0111_0317;
    // SAFETY: `name` and `bio` are created here, checked for NULL and
    // freed once; `d2i` reads no more than `name_der.len()` bytes; the
    // memory BIO's buffer is read while the BIO is alive and only when
    // it is non-empty.
    unsafe {
        let mut input = name_der.as_ptr();
        let name =
            openssl_sys::d2i_X509_NAME(ptr::null_mut(), &mut input, name_der.len() as c_long);
        assert!(!name.is_null());
        let bio = openssl_sys::BIO_new(openssl_sys::BIO_s_mem());
        assert!(!bio.is_null());
        let written = X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
        let mut data = ptr::null_mut();
        let len = usize::try_from(openssl_sys::BIO_get_mem_data(bio, &mut data)).unwrap();
        let printed = if len == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec()
        };
        openssl_sys::BIO_free_all(bio);
        openssl_sys::X509_NAME_free(name);
        assert!(written >= 0);
        String::from_utf8(printed).unwrap()
    }
}

/// A name built by OpenSSL from UTF-8 values, in DER form (so with its
/// multi-valued RDNs sorted by OpenSSL). `true` starts a new RDN, `false`
/// adds to the previous one.
pub(super) fn openssl_name(entries: &[(&str, &str, bool)]) -> Vec<u8> {
    // SAFETY: `name` is created here, checked for NULL and freed once;
    // the field and value pointers are valid for the lengths given; the
    // output buffer has exactly the length i2d_X509_NAME reports.
    unsafe {
        let name = openssl_sys::X509_NAME_new();
        assert!(!name.is_null());
        for &(field, value, new_rdn) in entries {
            let field = CString::new(field).unwrap();
            let added = openssl_sys::X509_NAME_add_entry_by_txt(
                name,
                field.as_ptr(),
                openssl_sys::MBSTRING_UTF8,
                value.as_ptr(),
                c_int::try_from(value.len()).unwrap(),
                -1,
                if new_rdn { 0 } else { -1 },
            );
            assert_eq!(added, 1, "{field:?}");
        }
        let len = openssl_sys::i2d_X509_NAME(name, ptr::null_mut());
        let mut der = vec![0; usize::try_from(len).unwrap()];
        let mut out = der.as_mut_ptr();
        assert_eq!(openssl_sys::i2d_X509_NAME(name, &mut out), len);
        openssl_sys::X509_NAME_free(name);
        der
    }
}

/// xorshift64*, for reproducible generated names.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

pub(super) const TRICKY: &[&str] = &[
    "alice",
    "Alice Smith",
    "a,b",
    "a+b",
    "a\"b",
    "a\\b",
    "<x>",
    "a;b",
    "a=b",
    "#hash",
    "mid#dle",
    "x#",
    " lead",
    "trail ",
    " ",
    "  ",
    "",
    "é",
    "caf\u{e9} cr\u{e8}me",
    "日本",
    "😀",
    "tab\there",
    "cr\rlf\n",
    "\0",
    "alice\0evil",
    "del\x7f",
    "\u{80}\u{ff}",
];
