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
use openssl::nid::Nid;
use openssl::x509::{X509NameRef, X509Ref};

extern "C" {
    // Not in openssl-sys; all three are in OpenSSL since 1.1.1.
    fn X509_NAME_get0_der(
        name: *const openssl_sys::X509_NAME,
        der: *mut *const u8,
        len: *mut usize,
    ) -> c_int;
    fn X509_get0_serialNumber(x: *const openssl_sys::X509) -> *const openssl_sys::ASN1_INTEGER;
    fn ASN1_TIME_to_tm(time: *const openssl_sys::ASN1_TIME, tm: *mut libc::tm) -> c_int;
    fn i2d_ASN1_INTEGER(a: *const openssl_sys::ASN1_INTEGER, out: *mut *mut u8) -> c_int;
}

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

/// The content octets of the serialNumber INTEGER, as the certificate
/// encodes it and CRL entries are read: two's complement. OpenSSL decodes
/// only minimal encodings, so encoding its value again gives the same
/// octets.
pub fn serial_content(cert: &X509Ref) -> Option<Vec<u8>> {
    // SAFETY: the serial belongs to `cert`, alive for this call. The first
    // call measures the encoding, the second writes exactly that many bytes
    // into `der`, which has room for them.
    let der = unsafe {
        let serial = X509_get0_serialNumber(cert.as_ptr());
        let len = usize::try_from(i2d_ASN1_INTEGER(serial, ptr::null_mut())).ok()?;
        let mut der = vec![0u8; len];
        let mut out = der.as_mut_ptr();
        if usize::try_from(i2d_ASN1_INTEGER(serial, &mut out)).ok()? != len {
            return None;
        }
        der
    };
    tlv_content(&der).map(<[u8]>::to_vec)
}

/// notAfter as Unix time.
pub fn not_after(cert: &X509Ref) -> Option<i64> {
    // SAFETY: `tm` is plain data that ASN1_TIME_to_tm fills in; notAfter
    // belongs to `cert`, alive for this call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if ASN1_TIME_to_tm(cert.not_after().as_ptr(), &mut tm) != 1 {
            return None;
        }
        tm
    };
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

#[cfg(test)]
mod tests {
    use super::tlv_content;

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
}
