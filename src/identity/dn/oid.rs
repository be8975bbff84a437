//! OIDs in their dotted and DER forms, and the DER encoding of attributes,
//! which orders the attributes of a multi-valued RDN.

use std::cmp::Ordering;

use x509_parser::asn1_rs::Tag;

use super::{Ava, AvaValue};
use crate::identity::der;

impl Ava {
    /// Text values are taken as UTF8String: the original string type is not
    /// kept, so two AVAs differing only in it may print in another order.
    pub(super) fn der_order(&self, other: &Ava) -> Ordering {
        self.der_key()
            .cmp(&other.der_key())
            .then_with(|| self.cmp(other))
    }

    fn der_key(&self) -> Vec<u8> {
        let oid = encode_oid(&self.oid).unwrap_or_else(|| self.oid.as_bytes().to_vec());
        let mut content = encode_tlv(der::UNIVERSAL, false, Tag::Oid.0, &oid);
        content.extend(self.value.to_der());
        encode_tlv(der::UNIVERSAL, true, Tag::Sequence.0, &content)
    }
}

impl AvaValue {
    pub(super) fn to_der(&self) -> Vec<u8> {
        match self {
            AvaValue::Text(text) => {
                encode_tlv(der::UNIVERSAL, false, Tag::Utf8String.0, text.as_bytes())
            }
            AvaValue::Der(der) => der.clone(),
        }
    }
}

pub(super) fn encode_tlv(class: u8, constructed: bool, tag: u32, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 16);
    let identifier = (class << 6) | (u8::from(constructed) << 5);
    match u8::try_from(tag) {
        Ok(short) if short < 0x1f => out.push(identifier | short),
        _ => {
            out.push(identifier | 0x1f);
            push_base128(&mut out, tag.into());
        }
    }
    match u8::try_from(content.len()) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let len = content.len().to_be_bytes();
            let skip = len.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (len.len() - skip) as u8);
            out.extend_from_slice(&len[skip..]);
        }
    }
    out.extend_from_slice(content);
    out
}

fn push_base128(out: &mut Vec<u8>, value: u128) {
    let groups = (128 - value.leading_zeros()).div_ceil(7).max(1);
    for i in (0..groups).rev() {
        let group = (value >> (7 * i)) as u8 & 0x7f;
        out.push(if i == 0 { group } else { group | 0x80 });
    }
}

/// The content octets of a dotted OID; `None` unless it is canonical
/// (no leading zeros) and encodable, with arcs up to 128 bits.
///
/// Hand-written rather than asn1-rs's `Oid::from`, which takes arcs of 64
/// bits (a UUID OID, `2.25.<128 bits>`, does not fit) and packs the first
/// two arcs into one octet (`2.999.1` comes out wrong).
pub(super) fn encode_oid(dotted: &str) -> Option<Vec<u8>> {
    let arcs = dotted
        .split('.')
        .map(parse_arc)
        .collect::<Option<Vec<u128>>>()?;
    let [first, second, rest @ ..] = arcs.as_slice() else {
        return None;
    };
    if *first > 2 || (*first < 2 && *second > 39) {
        return None;
    }
    let mut out = Vec::new();
    push_base128(&mut out, second.checked_add(first * 40)?);
    rest.iter().for_each(|&arc| push_base128(&mut out, arc));
    Some(out)
}

fn parse_arc(arc: &str) -> Option<u128> {
    let canonical =
        arc.bytes().all(|b| b.is_ascii_digit()) && (arc == "0" || !arc.starts_with('0'));
    canonical.then(|| arc.parse().ok()).flatten()
}

/// The dotted form of an OID's content octets; `None` if they are malformed
/// or an arc exceeds 128 bits.
pub(super) fn decode_oid(der: &[u8]) -> Option<String> {
    if !matches!(der.last(), Some(last) if last & 0x80 == 0) {
        return None;
    }
    // Written digit by digit into one string: this runs for every
    // attribute of a client certificate's names.
    let mut out = String::with_capacity(der.len() * 3 + 2);
    for (i, chunk) in der.split_inclusive(|b| b & 0x80 == 0).enumerate() {
        if chunk.first() == Some(&0x80) {
            return None;
        }
        let arc = chunk.iter().try_fold(0u128, |acc, b| {
            acc.checked_mul(128).map(|acc| acc | u128::from(b & 0x7f))
        })?;
        if i == 0 {
            let (a, b) = match arc {
                0..=39 => (0, arc),
                40..=79 => (1, arc - 40),
                _ => (2, arc - 80),
            };
            push_decimal(&mut out, a);
            out.push('.');
            push_decimal(&mut out, b);
        } else {
            out.push('.');
            push_decimal(&mut out, arc);
        }
    }
    Some(out)
}

fn push_decimal(out: &mut String, mut n: u128) {
    let mut digits = [0u8; 39];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use super::*;

    #[test]
    fn oids_decode_to_dotted_decimal() {
        let big = u128::MAX.to_string();
        for dotted in [
            "0.0",
            "0.39",
            "1.0",
            "1.39",
            "2.0",
            "2.39",
            "2.40",
            "2.999.1",
            "2.5.4.3",
            "1.2.840.113549.1.9.1",
            "0.9.2342.19200300.100.1.25",
            &format!("1.3.{big}.7"),
        ] {
            let der = encode_oid(dotted).unwrap();
            assert_eq!(decode_oid(&der).as_deref(), Some(dotted), "{der:02x?}");
        }
        // An arc past u128, a non-minimal arc, a truncated one, none.
        let past = [&[0x83][..], &[0xff; 18], &[0x7f]].concat();
        for der in [&past[..], b"\x55\x80\x04", b"\x55\x84", b""] {
            assert_eq!(decode_oid(der), None, "{der:02x?}");
        }
    }

    #[test]
    fn x509_malformed_oids_match_nothing() {
        for oid in [
            &[][..],
            &[0x55, 0x04, 0x83],
            &[0x55, 0x80, 0x04, 0x03],
            &[0xff; 20],
        ] {
            let raw = name_der(&[&[tlv(0x30, &[tlv(0x06, oid), utf8("a")].concat())]]);
            let parsed = decode(&raw);
            let Rdn(avas) = &parsed.0[0];
            assert!(avas[0].oid.starts_with("invalid-oid:"), "{:?}", avas[0].oid);
            assert!(printable(&parsed.to_rfc4514()));
        }
    }
}
