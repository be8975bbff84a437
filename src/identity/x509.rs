//! The parts of a certificate the identity is read from, taken from the
//! `X509` OpenSSL decoded in the handshake: its names as the DER OpenSSL
//! kept of them, the serial number, notAfter, and the value of an
//! extension.
//!
//! Decoding the whole certificate again, for the few parts the module
//! reads, was most of the module's cost per handshake: little work, but
//! code and data that the handshake had pushed out of the CPU's caches.
//! The names and the extension values are still decoded by the module's
//! own readers ([`super::dn::Dn::from_der`], x509-parser's extension
//! types), from the very bytes the certificate carries.

use std::ffi::c_int;
use std::ptr;

use foreign_types::ForeignTypeRef;
use openssl::asn1::Asn1IntegerRef;
use openssl::nid::Nid;
use openssl::x509::{X509NameRef, X509Ref};
use openssl_sys::{
    ASN1_STRING_get0_data, ASN1_STRING_length, ASN1_STRING_type, ASN1_STRING,
    V_ASN1_GENERALIZEDTIME, V_ASN1_UTCTIME,
};

use crate::identity::serial::Serial;

extern "C" {
    // Not in openssl-sys; all three are in OpenSSL since 1.1.1.
    fn X509_NAME_get0_der(
        name: *const openssl_sys::X509_NAME,
        der: *mut *const u8,
        len: *mut usize,
    ) -> c_int;
    fn X509_get0_serialNumber(x: *const openssl_sys::X509) -> *const openssl_sys::ASN1_INTEGER;
    fn ASN1_TIME_to_tm(time: *const openssl_sys::ASN1_TIME, tm: *mut libc::tm) -> c_int;
}

/// The type of a negative INTEGER's ASN1_STRING: V_ASN1_NEG | V_ASN1_INTEGER.
const V_ASN1_NEG_INTEGER: c_int = 0x100 | 2;

/// The DER encoding of `name` as the certificate carries it: OpenSSL keeps
/// the bytes it decoded a name from, and encodes a name it built.
pub fn name_der(name: &X509NameRef) -> Option<&[u8]> {
    let (mut der, mut len) = (ptr::null(), 0);
    // SAFETY: `name` is a live X509_NAME; OpenSSL points `der` at the
    // name's own cached encoding, which lives as long as the name.
    unsafe {
        if X509_NAME_get0_der(name.as_ptr(), &mut der, &mut len) != 1 || der.is_null() {
            return None;
        }
        Some(std::slice::from_raw_parts(der, len))
    }
}

/// The serial number, as CRL entries are read: the content octets of the
/// serialNumber INTEGER, two's complement, so that a serial the issuer
/// encoded as negative finds its entry. Taken from OpenSSL's decoded
/// INTEGER (sign and magnitude) without encoding it again: OpenSSL decodes
/// only minimal encodings, so the minimal content octets of its value are
/// the certificate's own.
pub fn serial(cert: &X509Ref) -> Option<Serial> {
    // SAFETY: the serial belongs to `cert`, alive for this call.
    let serial = unsafe {
        let serial = X509_get0_serialNumber(cert.as_ptr());
        if serial.is_null() {
            return None;
        }
        Asn1IntegerRef::from_ptr(serial.cast_mut())
    };
    integer_serial(serial)
}

fn integer_serial(integer: &Asn1IntegerRef) -> Option<Serial> {
    let integer = integer.as_ptr().cast::<ASN1_STRING>();
    // SAFETY: an ASN1_INTEGER is an ASN1_STRING; its bytes live as long as
    // the borrowed INTEGER.
    let (magnitude, negative) = unsafe {
        let len = usize::try_from(ASN1_STRING_length(integer)).ok()?;
        let data = ASN1_STRING_get0_data(integer);
        let magnitude = match (len, data.is_null()) {
            (0, _) => &[][..],
            (_, true) => return None,
            (_, false) => std::slice::from_raw_parts(data, len),
        };
        (magnitude, ASN1_STRING_type(integer) == V_ASN1_NEG_INTEGER)
    };
    Some(if negative {
        Serial::from_der_content(&negative_content(magnitude))
    } else {
        // A positive INTEGER's content is its magnitude, with a zero byte
        // in front where the top bit is set, which the serial drops again.
        Serial::from_der_content(magnitude)
    })
}

/// The minimal two's complement content octets of minus `magnitude`.
fn negative_content(magnitude: &[u8]) -> Vec<u8> {
    let significant = magnitude.iter().position(|&b| b != 0);
    let Some(first) = significant else {
        return vec![0]; // minus zero is zero
    };
    let mut content: Vec<u8> = magnitude[first..].iter().map(|b| !b).collect();
    // Add one, carrying from the last byte; the magnitude is not zero, so
    // the carry stops within it.
    for b in content.iter_mut().rev() {
        let (sum, carry) = b.overflowing_add(1);
        *b = sum;
        if !carry {
            break;
        }
    }
    // A sign bit that came out clear needs a byte of ones in front: the
    // magnitude is above 2^(8n-1) for its n bytes.
    if content[0] & 0x80 == 0 {
        content.insert(0, 0xff);
    }
    content
}

/// notAfter as Unix time.
pub fn not_after(cert: &X509Ref) -> Option<i64> {
    // SAFETY: notAfter belongs to `cert`, alive for this call.
    unsafe { time(cert.not_after().as_ptr()) }
}

/// Unix time of an ASN1_TIME (an ASN1_GENERALIZEDTIME is one too). RFC
/// 5280's two forms are read here (about 100 instructions, against about
/// 1,500 for `ASN1_TIME_to_tm` and `timegm`: a certificate's notAfter is
/// read for every new connection, bench/NOTES.md, change 19); any other
/// form as OpenSSL reads it.
///
/// # Safety
/// `time` must be a live ASN1_TIME for the call.
pub unsafe fn time(time: *const openssl_sys::ASN1_TIME) -> Option<i64> {
    // SAFETY: an ASN1_TIME is an ASN1_STRING; its bytes belong to it.
    let s = time.cast::<ASN1_STRING>();
    let data = ASN1_STRING_get0_data(s);
    let len = usize::try_from(ASN1_STRING_length(s)).unwrap_or(0);
    let kind = ASN1_STRING_type(s);
    let strict = (!data.is_null() && (kind == V_ASN1_UTCTIME || kind == V_ASN1_GENERALIZEDTIME))
        .then(|| std::slice::from_raw_parts(data, len))
        .and_then(|text| super::rfc5280_time(kind == V_ASN1_GENERALIZEDTIME, text));
    strict.or_else(|| time_by_openssl(time))
}

/// Unix time of an ASN1_TIME as OpenSSL reads it.
///
/// # Safety
/// As for [`time`].
unsafe fn time_by_openssl(time: *const openssl_sys::ASN1_TIME) -> Option<i64> {
    // SAFETY: `tm` is plain data that ASN1_TIME_to_tm fills in; `time` is
    // live for this call.
    let mut tm: libc::tm = std::mem::zeroed();
    if ASN1_TIME_to_tm(time, &mut tm) != 1 {
        return None;
    }
    Some(super::unix_time(
        i64::from(tm.tm_year) + 1900,
        i64::from(tm.tm_mon) + 1,
        i64::from(tm.tm_mday),
        i64::from(tm.tm_hour) * 3600 + i64::from(tm.tm_min) * 60 + i64::from(tm.tm_sec),
    ))
}

/// A certificate that carries the extension more than once.
#[derive(Debug)]
pub struct Repeated;

/// The value of `cert`'s extension `nid`, the content of its extnValue
/// OCTET STRING; `None` without one.
pub fn extension(cert: &X509Ref, nid: Nid) -> Result<Option<&[u8]>, Repeated> {
    let x = cert.as_ptr();
    // SAFETY: `x` is live for this call; the extension and its value belong
    // to it, and the slice borrows `cert`.
    unsafe {
        let at = openssl_sys::X509_get_ext_by_NID(x, nid.as_raw(), -1);
        if at < 0 {
            return Ok(None);
        }
        if openssl_sys::X509_get_ext_by_NID(x, nid.as_raw(), at) >= 0 {
            return Err(Repeated);
        }
        let ext = openssl_sys::X509_get_ext(x, at);
        if ext.is_null() {
            return Ok(None);
        }
        let value = openssl_sys::X509_EXTENSION_get_data(ext) as *const openssl_sys::ASN1_STRING;
        let data = openssl_sys::ASN1_STRING_get0_data(value);
        let len = usize::try_from(openssl_sys::ASN1_STRING_length(value)).unwrap_or(0);
        if data.is_null() || len == 0 {
            return Ok(Some(&[]));
        }
        Ok(Some(std::slice::from_raw_parts(data, len)))
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_int;

    use foreign_types::ForeignTypeRef;
    use openssl::asn1::Asn1IntegerRef;
    use openssl::bn::BigNum;

    use super::integer_serial;
    use crate::identity::serial::Serial;

    extern "C" {
        fn i2d_ASN1_INTEGER(a: *const openssl_sys::ASN1_INTEGER, out: *mut *mut u8) -> c_int;
    }

    /// The serial as OpenSSL encodes the INTEGER: what the module took
    /// before it read sign and magnitude itself.
    fn encoded(integer: &Asn1IntegerRef) -> Serial {
        // SAFETY: the first call measures, the second writes that many
        // bytes into `der`.
        let der = unsafe {
            let len =
                usize::try_from(i2d_ASN1_INTEGER(integer.as_ptr(), std::ptr::null_mut())).unwrap();
            let mut der = vec![0u8; len];
            let mut out = der.as_mut_ptr();
            assert_eq!(i2d_ASN1_INTEGER(integer.as_ptr(), &mut out), len as c_int);
            der
        };
        Serial::from_der_content(tlv_content(&der).unwrap())
    }

    /// Every INTEGER around the byte boundaries, where the two's complement
    /// gains or loses a byte, and some long ones: the serial read from sign
    /// and magnitude is the one OpenSSL's encoding gives.
    #[test]
    fn serial_from_sign_and_magnitude() {
        let mut values: Vec<BigNum> = Vec::new();
        for n in -70_000i64..=70_000 {
            values.push(BigNum::from_dec_str(&n.to_string()).unwrap());
        }
        for bits in [
            23, 24, 25, 31, 32, 33, 63, 64, 65, 159, 160, 161, 255, 256, 257,
        ] {
            for delta in [-2i32, -1, 0, 1, 2] {
                for negative in [false, true] {
                    let mut n = BigNum::new().unwrap();
                    n.set_bit(bits).unwrap();
                    let d = BigNum::from_u32(delta.unsigned_abs()).unwrap();
                    let mut v = BigNum::new().unwrap();
                    if delta < 0 {
                        v.checked_sub(&n, &d).unwrap();
                    } else {
                        v.checked_add(&n, &d).unwrap();
                    }
                    v.set_negative(negative);
                    values.push(v);
                }
            }
        }
        for v in &values {
            let integer = v.to_asn1_integer().unwrap();
            assert_eq!(integer_serial(&integer), Some(encoded(&integer)), "{v}");
        }
    }

    /// The content of a DER TLV with a one-byte tag and a definite length that
    /// spans the rest of `der`.
    fn tlv_content(der: &[u8]) -> Option<&[u8]> {
        let (&first, rest) = der.get(1..)?.split_first()?;
        let (len, content) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81..=0x84 => {
                let (len, content) = rest.split_at_checked(usize::from(first & 0x7f))?;
                (len.iter().fold(0, |n, &b| n << 8 | usize::from(b)), content)
            }
            _ => return None,
        };
        (content.len() == len).then_some(content)
    }

    #[test]
    fn tlv_lengths() {
        assert_eq!(tlv_content(b"\x02\x01\x05"), Some(&b"\x05"[..]));
        assert_eq!(tlv_content(b"\x02\x00"), Some(&b""[..]));
        let long = [&[0x02, 0x81, 0x80][..], &[7; 0x80]].concat();
        assert_eq!(tlv_content(&long).map(<[u8]>::len), Some(0x80));
        assert_eq!(tlv_content(b"\x02\x02\x05"), None);
        assert_eq!(tlv_content(b"\x02\x80\x05"), None);
        assert_eq!(tlv_content(b"\x02"), None);
        assert_eq!(tlv_content(b"\x02\x82\x01"), None);
    }

    /// notAfter read from its text as OpenSSL reads it, in both of
    /// RFC 5280's forms and in one that OpenSSL alone reads.
    #[test]
    fn not_after_as_openssl() {
        use openssl::asn1::Asn1Time;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::x509::X509;

        let key = PKey::from_ec_key(
            EcKey::generate(
                &EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let cert = |not_after: &openssl::asn1::Asn1TimeRef| {
            let mut b = X509::builder().unwrap();
            b.set_pubkey(&key).unwrap();
            b.set_not_before(&Asn1Time::from_unix(0).unwrap()).unwrap();
            b.set_not_after(not_after).unwrap();
            b.sign(&key, MessageDigest::sha256()).unwrap();
            b.build()
        };
        // SAFETY: notAfter belongs to the certificate, alive for the call.
        let openssl = |c: &X509| unsafe { super::time_by_openssl(c.not_after().as_ptr()) };
        // UTCTime up to 2049, GeneralizedTime after.
        for t in (-631_152_000i64..253_402_300_800).step_by(86_400 * 97 + 3_607) {
            let c = cert(&Asn1Time::from_unix(t).unwrap());
            assert_eq!(super::not_after(&c), Some(t));
            assert_eq!(openssl(&c), Some(t));
        }
        // GeneralizedTime within UTCTime's years, and with a fraction of a
        // second, which RFC 5280 forbids and OpenSSL reads.
        for (text, t) in [
            ("20300101000000Z", 1_893_456_000),
            ("20300101000000.5Z", 1_893_456_000),
        ] {
            let time = Asn1Time::from_str(text).unwrap();
            let c = cert(&time);
            assert_eq!(super::not_after(&c), Some(t), "{text}");
            assert_eq!(openssl(&c), Some(t), "{text}");
        }
    }
}
