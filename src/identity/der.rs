//! The DER reader for the names in client certificates: the one piece of
//! ASN.1 the module reads on every request a CN or DN rule decides.
//!
//! It is small on purpose. The handshake before it pushes the module's code
//! and data out of the CPU's caches, so a request pays for every cache line
//! of code the reading touches; a general ASN.1 parser touched many. It is
//! as lenient as OpenSSL where OpenSSL decodes the certificate the name
//! comes from (long-form lengths with leading zeros, tags in the high-tag
//! form, a SET or SEQUENCE in the primitive form) and strict elsewhere:
//! definite lengths only, and a Name with nothing but RDNs in it, each
//! with nothing but attributes.

/// The universal class.
pub const UNIVERSAL: u8 = 0;
const TAG_OID: u32 = 6;
const TAG_SEQUENCE: u32 = 16;
const TAG_SET: u32 = 17;

/// One element: its identifier and its content octets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// 0 universal, 1 application, 2 context-specific, 3 private.
    pub class: u8,
    pub constructed: bool,
    pub tag: u32,
    pub content: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The element at the front of `input`, and what follows it.
    pub fn read(input: &'a [u8]) -> Option<(Tlv<'a>, &'a [u8])> {
        let (&identifier, mut rest) = input.split_first()?;
        let mut tag = u32::from(identifier & 0x1f);
        if tag == 0x1f {
            // High-tag form: base 128, at most 5 octets, within a u32.
            tag = 0;
            for octets in 1.. {
                let (&octet, after) = rest.split_first()?;
                rest = after;
                if octets > 5 || tag >> 25 != 0 {
                    return None;
                }
                tag = tag << 7 | u32::from(octet & 0x7f);
                if octet & 0x80 == 0 {
                    break;
                }
            }
        }
        let (&first, after) = rest.split_first()?;
        rest = after;
        let len = match first {
            0..=0x7f => usize::from(first),
            // Indefinite (BER only), and the reserved 0xff.
            0x80 | 0xff => return None,
            _ => {
                let (octets, after) = rest.split_at_checked(usize::from(first & 0x7f))?;
                rest = after;
                octets.iter().try_fold(0usize, |len, &octet| {
                    (len >> (usize::BITS - 8) == 0).then(|| len << 8 | usize::from(octet))
                })?
            }
        };
        let (content, rest) = rest.split_at_checked(len)?;
        let tlv = Tlv {
            class: identifier >> 6,
            constructed: identifier & 0x20 != 0,
            tag,
            content,
        };
        Some((tlv, rest))
    }

    /// The content of `input` if it is one universal element with this
    /// tag and nothing else.
    fn content_of(input: &'a [u8], tag: u32) -> Option<&'a [u8]> {
        match Tlv::read(input)? {
            (tlv, []) if tlv.is(tag) => Some(tlv.content),
            _ => None,
        }
    }

    /// Whether this is a universal element with this tag, in either form.
    fn is(&self, tag: u32) -> bool {
        self.class == UNIVERSAL && self.tag == tag
    }
}

/// One attribute of a name: the content octets of its type's OID, and its
/// value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Whether it is the first of its RDN.
    pub first: bool,
    pub oid: &'a [u8],
    pub value: Tlv<'a>,
}

/// Calls `each` with the attributes of the Name that is all of `der`, in
/// DER order; `None` (after some calls, maybe) unless `der` is one Name:
/// a SEQUENCE OF RDNs, each a non-empty SET OF AttributeTypeAndValue,
/// each a SEQUENCE of an OBJECT IDENTIFIER and a value.
pub fn attributes<'a>(der: &'a [u8], mut each: impl FnMut(Attribute<'a>)) -> Option<()> {
    let mut rdns = Tlv::content_of(der, TAG_SEQUENCE)?;
    while !rdns.is_empty() {
        let (rdn, after) = Tlv::read(rdns)?;
        rdns = after;
        if !rdn.is(TAG_SET) || rdn.content.is_empty() {
            return None;
        }
        let mut atvs = rdn.content;
        let mut first = true;
        while !atvs.is_empty() {
            let (atv, after) = Tlv::read(atvs)?;
            atvs = after;
            if !atv.is(TAG_SEQUENCE) {
                return None;
            }
            let (oid, after) = Tlv::read(atv.content)?;
            let (value, []) = Tlv::read(after)? else {
                return None;
            };
            if !oid.is(TAG_OID) || oid.constructed {
                return None;
            }
            each(Attribute {
                first,
                oid: oid.content,
                value,
            });
            first = false;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::{attributes, Attribute, Tlv};

    /// A TLV's class, form, tag and content, then the input after it.
    type Read<'a> = (u8, bool, u32, &'a [u8], &'a [u8]);

    fn read(input: &[u8]) -> Option<Read<'_>> {
        let (tlv, rest) = Tlv::read(input)?;
        Some((tlv.class, tlv.constructed, tlv.tag, tlv.content, rest))
    }

    #[test]
    fn tlv_identifiers_and_lengths() {
        assert_eq!(
            read(b"\x0c\x01ab"),
            Some((0, false, 12, &b"a"[..], &b"b"[..]))
        );
        assert_eq!(read(b"\x30\x00"), Some((0, true, 16, &b""[..], &b""[..])));
        assert_eq!(read(b"\xa3\x00"), Some((2, true, 3, &b""[..], &b""[..])));
        // High-tag form, also where the low form would do.
        assert_eq!(
            read(b"\x1f\x81\x00\x00"),
            Some((0, false, 128, &b""[..], &b""[..]))
        );
        assert_eq!(
            read(b"\x5f\x05\x00"),
            Some((1, false, 5, &b""[..], &b""[..]))
        );
        assert_eq!(
            read(b"\x1f\x8f\xff\xff\xff\x7f\x00").map(|r| r.2),
            Some(u32::MAX)
        );
        assert_eq!(read(b"\x1f\x90\x80\x80\x80\x00\x00"), None);
        assert_eq!(read(b"\x1f\x80\x80\x80\x80\x80\x01\x00"), None);
        assert_eq!(read(b"\x1f\x81"), None);
        // Long form, with leading zeros as BER allows.
        assert_eq!(read(b"\x04\x81\x01a").map(|r| r.3), Some(&b"a"[..]));
        let zeros = [&b"\x04\x8a"[..], &[0; 9], b"\x01a"].concat();
        assert_eq!(read(&zeros).map(|r| r.3), Some(&b"a"[..]));
        let long = [&b"\x04\x82\x01\x00"[..], &[7; 256]].concat();
        assert_eq!(read(&long).map(|r| r.3.len()), Some(256));
        // Lengths past the input, too large, indefinite, reserved.
        assert_eq!(read(b"\x04\x02a"), None);
        assert_eq!(read(b"\x04\x89\x01\x00\x00\x00\x00\x00\x00\x00\x00"), None);
        assert_eq!(read(b"\x24\x80\x04\x01a\x00\x00"), None);
        assert_eq!(read(b"\x04\xff"), None);
        assert_eq!(read(b"\x04"), None);
        assert_eq!(read(b""), None);
    }

    /// An attribute: first in its RDN, its type's OID, its value's tag and
    /// content.
    type Named = (bool, Vec<u8>, u32, Vec<u8>);

    fn names(der: &[u8]) -> Option<Vec<Named>> {
        let mut out = Vec::new();
        attributes(der, |a: Attribute<'_>| {
            out.push((
                a.first,
                a.oid.to_vec(),
                a.value.tag,
                a.value.content.to_vec(),
            ))
        })?;
        Some(out)
    }

    #[test]
    fn name_structure() {
        let cn = b"\x30\x08\x06\x03\x55\x04\x03\x0c\x01x";
        let name = [
            &b"\x30\x16\x31\x0a"[..],
            cn,
            b"\x31\x08\x30\x06\x06\x01\x2a\x02\x01\x05",
        ]
        .concat();
        assert_eq!(
            names(&name),
            Some(vec![
                (true, b"\x55\x04\x03".to_vec(), 12, b"x".to_vec()),
                (true, b"\x2a".to_vec(), 2, b"\x05".to_vec()),
            ])
        );
        let multi = [&b"\x30\x16\x31\x14"[..], cn, cn].concat();
        let firsts: Vec<bool> = names(&multi).unwrap().iter().map(|a| a.0).collect();
        assert_eq!(firsts, [true, false]);
        assert_eq!(names(b"\x30\x00"), Some(vec![]));
        // SETs and SEQUENCEs in the primitive form, as OpenSSL reads them.
        let primitive = [&b"\x10\x0c\x11\x0a\x10\x08"[..], &cn[2..]].concat();
        assert_eq!(names(&primitive).map(|n| n.len()), Some(1));
        for bad in [
            // Not one SEQUENCE: trailing octets, another tag or class.
            &b"\x30\x00\x00"[..],
            b"\x31\x00",
            b"\x70\x00",
            // An empty RDN, an RDN that is not a SET.
            b"\x30\x02\x31\x00",
            b"\x30\x0c\x30\x0a\x30\x08\x06\x03\x55\x04\x03\x0c\x01x",
            // An attribute that is not a SEQUENCE, without a value, with
            // more than a value, whose type is not an OID.
            b"\x30\x0c\x31\x0a\x31\x08\x06\x03\x55\x04\x03\x0c\x01x",
            b"\x30\x07\x31\x05\x30\x03\x06\x01\x2a",
            b"\x30\x0e\x31\x0c\x30\x0a\x06\x03\x55\x04\x03\x0c\x01x\x05\x00",
            b"\x30\x0c\x31\x0a\x30\x08\x04\x03\x55\x04\x03\x0c\x01x",
            b"\x30\x0c\x31\x0a\x30\x08\x26\x03\x55\x04\x03\x0c\x01x",
            // Lengths that run past their element.
            b"\x30\x0c\x31\x0b\x30\x08\x06\x03\x55\x04\x03\x0c\x01x",
        ] {
            assert_eq!(names(bad), None, "{bad:02x?}");
        }
    }
}
