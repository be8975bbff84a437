//! Responses made here with OpenSSL's responder-side calls, so that each
//! check of [`super::verify`] meets the response that must fail it.

use foreign_types::ForeignType;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ocsp::{OcspBasicResponse, OcspCertId, OcspResponse, OcspResponseStatus};
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::ExtendedKeyUsage;
use openssl::x509::{X509Name, X509};

use super::{cert_key, request, verify, CertStatus, OcspError};
use crate::revocation::testca::TestCa;

extern "C" {
    fn OCSP_basic_add1_status(
        rsp: *mut openssl_sys::OCSP_BASICRESP,
        cid: *mut openssl_sys::OCSP_CERTID,
        status: libc::c_int,
        reason: libc::c_int,
        revtime: *mut openssl_sys::ASN1_TIME,
        thisupd: *mut openssl_sys::ASN1_TIME,
        nextupd: *mut openssl_sys::ASN1_TIME,
    ) -> *mut libc::c_void;
    fn OCSP_basic_sign(
        brsp: *mut openssl_sys::OCSP_BASICRESP,
        signer: *mut openssl_sys::X509,
        key: *mut openssl_sys::EVP_PKEY,
        dgst: *const openssl_sys::EVP_MD,
        certs: *mut libc::c_void,
        flags: libc::c_ulong,
    ) -> libc::c_int;
}

struct Spec<'a> {
    status: libc::c_int,
    /// thisUpdate and nextUpdate, seconds from now.
    this: i64,
    next: Option<i64>,
    signer: (&'a X509, &'a PKey<Private>),
}

fn respond(cert: &X509, issuer: &X509, spec: &Spec<'_>) -> Vec<u8> {
    let now = super::super::loader::now();
    let id = OcspCertId::from_cert(MessageDigest::sha1(), cert, issuer).unwrap();
    let this = Asn1Time::from_unix(now + spec.this).unwrap();
    let next = spec.next.map(|n| Asn1Time::from_unix(now + n).unwrap());
    let revtime = Asn1Time::from_unix(now - 100).unwrap();
    // SAFETY: every pointer is a live object owned by this function; the
    // response copies what it keeps (add1), and takes the new basic
    // response only for the call that encodes it.
    unsafe {
        let basic = openssl_sys::OCSP_BASICRESP_new();
        assert!(!basic.is_null());
        let basic = OcspBasicResponse::from_ptr(basic);
        assert!(!OCSP_basic_add1_status(
            basic.as_ptr(),
            id.as_ptr(),
            spec.status,
            if spec.status == 1 { 1 } else { -1 },
            if spec.status == 1 {
                revtime.as_ptr()
            } else {
                core::ptr::null_mut()
            },
            this.as_ptr(),
            next.as_ref().map_or(core::ptr::null_mut(), |n| n.as_ptr()),
        )
        .is_null());
        assert_eq!(
            OCSP_basic_sign(
                basic.as_ptr(),
                spec.signer.0.as_ptr(),
                spec.signer.1.as_ptr(),
                MessageDigest::sha256().as_ptr(),
                core::ptr::null_mut(),
                0,
            ),
            1
        );
        OcspResponse::create(OcspResponseStatus::SUCCESSFUL, Some(&basic))
            .unwrap()
            .to_der()
            .unwrap()
    }
}

/// A certificate issued by `ca`, with extendedKeyUsage OCSPSigning if
/// `ocsp_signing`, and its key.
fn responder(ca: &TestCa, ocsp_signing: bool) -> (X509, PKey<Private>) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", "responder").unwrap();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&BigNum::from_u32(77).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    cert.set_subject_name(&name.build()).unwrap();
    cert.set_issuer_name(ca.cert.subject_name()).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    if ocsp_signing {
        let eku = ExtendedKeyUsage::new()
            .other("OCSPSigning")
            .build()
            .unwrap();
        cert.append_extension(eku).unwrap();
    }
    cert.sign(&ca.key, MessageDigest::sha256()).unwrap();
    (cert.build(), key)
}

const GOOD: libc::c_int = 0;
const REVOKED: libc::c_int = 1;
const UNKNOWN: libc::c_int = 2;

#[test]
fn answers_by_status() {
    let ca = TestCa::new("OCSP CA");
    let cert = ca.issue(&[0x10, 0x02]);
    for (status, expect) in [
        (GOOD, CertStatus::Good),
        (REVOKED, CertStatus::Revoked),
        (UNKNOWN, CertStatus::Unknown),
    ] {
        let der = respond(
            &cert,
            &ca.cert,
            &Spec {
                status,
                this: -10,
                next: Some(3600),
                signer: (&ca.cert, &ca.key),
            },
        );
        let answer = verify(&der, &cert, &ca.cert, ca.cas()).unwrap();
        assert_eq!(answer.status, expect);
        let now = crate::loader::now();
        assert!((answer.this_update - (now - 10)).abs() <= 2);
        assert!((answer.next_update.unwrap() - (now + 3600)).abs() <= 2);
    }
    // No nextUpdate: still an answer.
    let der = respond(
        &cert,
        &ca.cert,
        &Spec {
            status: GOOD,
            this: 0,
            next: None,
            signer: (&ca.cert, &ca.key),
        },
    );
    assert_eq!(
        verify(&der, &cert, &ca.cert, ca.cas()).unwrap().next_update,
        None
    );
}

#[test]
fn signer_must_be_the_issuer_or_its_delegate() {
    let ca = TestCa::new("OCSP CA");
    let other = TestCa::new("Other CA");
    let cert = ca.issue(&[0x10, 0x02]);
    let spec = |signer| Spec {
        status: GOOD,
        this: 0,
        next: Some(600),
        signer,
    };
    let trusted = [ca.cert.clone(), other.cert.clone()];
    // Another CA, even one nginx trusts, does not speak for this one.
    let der = respond(&cert, &ca.cert, &spec((&other.cert, &other.key)));
    assert!(matches!(
        verify(&der, &cert, &ca.cert, &trusted),
        Err(OcspError::Signature(_))
    ));
    // The right name, the wrong key.
    let impostor = TestCa::new("OCSP CA");
    let der = respond(&cert, &ca.cert, &spec((&impostor.cert, &impostor.key)));
    assert!(matches!(
        verify(&der, &cert, &ca.cert, ca.cas()),
        Err(OcspError::Signature(_))
    ));
    // A delegated responder needs id-kp-OCSPSigning.
    let (delegate, key) = responder(&ca, true);
    let der = respond(&cert, &ca.cert, &spec((&delegate, &key)));
    assert_eq!(
        verify(&der, &cert, &ca.cert, ca.cas()).unwrap().status,
        CertStatus::Good
    );
    let (plain, key) = responder(&ca, false);
    let der = respond(&cert, &ca.cert, &spec((&plain, &key)));
    assert!(matches!(
        verify(&der, &cert, &ca.cert, ca.cas()),
        Err(OcspError::Signature(_))
    ));
    // A delegate of another CA does not speak for this one.
    let (foreign, key) = responder(&other, true);
    let der = respond(&cert, &ca.cert, &spec((&foreign, &key)));
    assert!(matches!(
        verify(&der, &cert, &ca.cert, &trusted),
        Err(OcspError::Signature(_))
    ));
}

#[test]
fn issued_by_an_intermediate() {
    let root = TestCa::new("Root");
    let inter = root.intermediate("Intermediate", 5);
    let cert = inter.issue(&[0x42]);
    let der = respond(
        &cert,
        &inter.cert,
        &Spec {
            status: REVOKED,
            this: 0,
            next: Some(600),
            signer: (&inter.cert, &inter.key),
        },
    );
    // Only the root is trusted: the intermediate comes with the request.
    assert_eq!(
        verify(&der, &cert, &inter.cert, root.cas()).unwrap().status,
        CertStatus::Revoked
    );
    // An intermediate that does not chain to a trusted CA.
    let stranger = TestCa::new("Stranger");
    assert!(matches!(
        verify(&der, &cert, &inter.cert, stranger.cas()),
        Err(OcspError::Signature(_))
    ));
}

#[test]
fn times_are_checked_with_a_small_skew() {
    let ca = TestCa::new("OCSP CA");
    let cert = ca.issue(&[0x10, 0x02]);
    let check = |this: i64, next: Option<i64>| {
        let der = respond(
            &cert,
            &ca.cert,
            &Spec {
                status: GOOD,
                this,
                next,
                signer: (&ca.cert, &ca.key),
            },
        );
        verify(&der, &cert, &ca.cert, ca.cas())
    };
    assert!(check(-7200, Some(-3600)).is_err(), "expired");
    assert!(matches!(
        check(-7200, Some(-600)),
        Err(OcspError::NotCurrent { .. })
    ));
    assert!(check(-7200, Some(-30)).is_ok(), "within the skew");
    assert!(check(30, Some(600)).is_ok(), "within the skew");
    assert!(
        matches!(check(600, Some(3600)), Err(OcspError::NotCurrent { .. })),
        "thisUpdate in the future"
    );
}

#[test]
fn the_answer_must_be_for_this_certificate() {
    let ca = TestCa::new("OCSP CA");
    let cert = ca.issue(&[0x10, 0x02]);
    let other = ca.issue(&[0x10, 0x03]);
    let der = respond(
        &other,
        &ca.cert,
        &Spec {
            status: GOOD,
            this: 0,
            next: Some(600),
            signer: (&ca.cert, &ca.key),
        },
    );
    assert!(matches!(
        verify(&der, &cert, &ca.cert, ca.cas()),
        Err(OcspError::OtherCertificate)
    ));
}

#[test]
fn not_a_response() {
    let ca = TestCa::new("OCSP CA");
    let cert = ca.issue(&[0x10, 0x02]);
    for junk in [&b""[..], b"<html>busy</html>", &[0x30, 0x03, 0x0a, 0x01]] {
        assert!(matches!(
            verify(junk, &cert, &ca.cert, ca.cas()),
            Err(OcspError::Malformed)
        ));
    }
    let try_later = OcspResponse::create(OcspResponseStatus::TRY_LATER, None)
        .unwrap()
        .to_der()
        .unwrap();
    assert!(matches!(
        verify(&try_later, &cert, &ca.cert, ca.cas()),
        Err(OcspError::Refused("tryLater"))
    ));
    // A good response cut short.
    let der = respond(
        &cert,
        &ca.cert,
        &Spec {
            status: GOOD,
            this: 0,
            next: Some(600),
            signer: (&ca.cert, &ca.key),
        },
    );
    assert!(matches!(
        verify(&der[..der.len() - 5], &cert, &ca.cert, ca.cas()),
        Err(OcspError::Malformed)
    ));
}

#[test]
fn keys_and_requests() {
    let ca = TestCa::new("OCSP CA");
    let twin = TestCa::new("OCSP CA");
    let a = ca.issue(&[0x10, 0x02]);
    let b = ca.issue(&[0x10, 0x03]);
    let key = cert_key(&a, &ca.cert).unwrap();
    assert_eq!(key, cert_key(&a, &ca.cert).unwrap());
    assert_ne!(key, cert_key(&b, &ca.cert).unwrap(), "another serial");
    assert_ne!(key, cert_key(&a, &twin.cert).unwrap(), "another issuer key");
    let der = request(&a, &ca.cert).unwrap();
    assert_eq!(der[0], 0x30);
    assert!(openssl::ocsp::OcspRequest::from_der(&der).is_ok());
}
