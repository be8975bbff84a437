//! The revocation table: an immutable byte layout, probed in place.
//!
//! The loader serializes a set of revoked certificates once; the bytes can
//! then live in a file mapped read-only into every worker (`/dev/shm`), at
//! any address: the layout holds offsets relative to its start, never
//! pointers, and is read byte by byte, so neither the address nor its
//! alignment matter. Everything read from the bytes is bounds-checked: a
//! corrupt or truncated table is an error or a miss, never a panic.
//!
//! Layout, all integers little-endian, every section 8-byte aligned:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0  | 8 | magic `MTLSREV1` |
//! | 8  | 4 | format version, 2 |
//! | 12 | 2 | kind: 1 CRL, 2 deny list |
//! | 14 | 2 | the kinds of entry it holds: bit `t` set for tag `t` (below) |
//! | 16 | 4 | number of issuer records `m` |
//! | 20 | 4 | bucket bits `b` (0 to 32) |
//! | 24 | 8 | number of entries `n` (at most 2^32 - 1) |
//! | 32 | 8 | offset of the issuer records (64) |
//! | 40 | 8 | offset of the bucket index |
//! | 48 | 8 | offset of the entries |
//! | 56 | 8 | total length |
//!
//! - issuer records: `m` records of 80 bytes, sorted by issuer key (see
//!   [`IssuerInfo`]): key 32, thisUpdate i64, nextUpdate i64, entries u64,
//!   flags u8 (1: has a CRL number), scope u8, CRL number length u8, CRL
//!   number (20 bytes, big-endian magnitude, zero-padded), one zero byte;
//! - bucket index: `2^b + 1` u32, the index of the first entry of each bucket,
//!   the last one `n`; a bucket is the top `b` bits of an entry;
//! - entries: `n` keys of 16 bytes, ascending as big-endian numbers, distinct.
//!
//! An entry is the first 16 bytes of a SHA-256 over a domain tag and what is
//! revoked: (1, issuer key, serial) for a CRL entry, (2, serial) for a serial
//! denied under any issuer, (3, certificate SHA-256) for a fingerprint.
//! Entries are uniform, so with `2^b ≈ n / 4` buckets a look-up hashes
//! once, reads one bucket start and compares two to four entries (about one
//! cache line), whatever `n` is. Four entries per bucket rather than one
//! make the index a sixteenth of the entries' size, small enough to stay
//! cached: a look-up in a large table then misses the caches about once
//! rather than twice (`benches/lookup.rs` measures it).

use std::collections::btree_map::{BTreeMap, Entry};
use std::fmt;

use openssl::sha::Sha256;

use crate::identity::fingerprint::Fingerprint;

/// The SHA-256 of an issuer Name's DER encoding: see [`super::issuer_key`].
pub type IssuerKey = [u8; 32];

const MAGIC: &[u8; 8] = b"MTLSREV1";
const VERSION: u32 = 2;
const HEADER_LEN: usize = 64;
const RECORD_LEN: usize = 80;
const ENTRY_LEN: usize = 16;
const MAX_BITS: u32 = 32;
/// The longest CRL number RFC 5280 allows (20 octets).
const MAX_NUMBER_LEN: usize = 20;

const TAG_CRL: u8 = 1;
const TAG_SERIAL: u8 = 2;
const TAG_FINGERPRINT: u8 = 3;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("revocation table is truncated ({len} bytes, at least {need} expected)")]
    Truncated { len: usize, need: u64 },
    #[error("not a revocation table (bad magic)")]
    Magic,
    #[error("unsupported revocation table version {0}")]
    Version(u32),
    #[error("corrupt revocation table: {0}")]
    Corrupt(&'static str),
    #[error("too many revocation entries ({0})")]
    TooLarge(usize),
    #[error("issuer added twice to a revocation table")]
    DuplicateIssuer,
}

/// What a table holds: the entries of CRLs, or of a deny list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Crl,
    DenyList,
}

impl Kind {
    /// The directive that names a source of this kind.
    pub fn directive(self) -> &'static str {
        match self {
            Kind::Crl => "mtls_crl",
            Kind::DenyList => "mtls_deny_list",
        }
    }

    fn code(self) -> u16 {
        match self {
            Kind::Crl => 1,
            Kind::DenyList => 2,
        }
    }

    fn from_code(code: u16) -> Option<Kind> {
        match code {
            1 => Some(Kind::Crl),
            2 => Some(Kind::DenyList),
            _ => None,
        }
    }
}

/// Which certificates of its issuer a CRL covers, from its
/// issuingDistributionPoint extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    /// `onlyContainsUserCerts`: says nothing about CA certificates.
    EndEntity,
    /// `onlyContainsCACerts`: says nothing about end-entity certificates.
    Ca,
}

impl Scope {
    fn code(self) -> u8 {
        match self {
            Scope::All => 0,
            Scope::EndEntity => 1,
            Scope::Ca => 2,
        }
    }

    fn from_code(code: u8) -> Option<Scope> {
        match code {
            0 => Some(Scope::All),
            1 => Some(Scope::EndEntity),
            2 => Some(Scope::Ca),
            _ => None,
        }
    }
}

/// A CRL number, kept whole: up to the 20 octets RFC 5280 allows, so that
/// "older than the one in force" is decided exactly, never on a truncation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CrlNumber {
    len: u8,
    bytes: [u8; MAX_NUMBER_LEN],
}

impl CrlNumber {
    /// From a big-endian magnitude; leading zero bytes are ignored. `None`
    /// if it is longer than 20 octets.
    pub fn from_be_bytes(magnitude: &[u8]) -> Option<CrlNumber> {
        let magnitude = strip_zeros(magnitude);
        let mut bytes = [0; MAX_NUMBER_LEN];
        bytes.get_mut(..magnitude.len())?.copy_from_slice(magnitude);
        Some(CrlNumber {
            len: magnitude.len() as u8,
            bytes,
        })
    }

    /// The big-endian magnitude without leading zero bytes (empty for zero).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl From<u64> for CrlNumber {
    fn from(n: u64) -> CrlNumber {
        let bytes = n.to_be_bytes();
        let magnitude = strip_zeros(&bytes);
        let mut out = [0; MAX_NUMBER_LEN];
        out[..magnitude.len()].copy_from_slice(magnitude);
        CrlNumber {
            len: magnitude.len() as u8,
            bytes: out,
        }
    }
}

impl Ord for CrlNumber {
    fn cmp(&self, other: &CrlNumber) -> std::cmp::Ordering {
        // Magnitudes without leading zeros: the longer one is the larger.
        self.len
            .cmp(&other.len)
            .then_with(|| self.as_bytes().cmp(other.as_bytes()))
    }
}

impl PartialOrd for CrlNumber {
    fn partial_cmp(&self, other: &CrlNumber) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Decimal, as `openssl crl -text` prints it.
impl fmt::Display for CrlNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = x509_parser::num_bigint::BigUint::from_bytes_be(self.as_bytes());
        fmt::Display::fmt(&n, f)
    }
}

impl fmt::Debug for CrlNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrlNumber({self})")
    }
}

/// What the table records about one CRL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuerInfo {
    pub key: IssuerKey,
    /// Unix time.
    pub this_update: i64,
    /// Unix time; `i64::MAX` when the CRL has no nextUpdate.
    pub next_update: i64,
    pub number: Option<CrlNumber>,
    pub scope: Scope,
    /// Entries the CRL lists.
    pub entries: u64,
}

impl IssuerInfo {
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.this_update.to_le_bytes());
        out.extend_from_slice(&self.next_update.to_le_bytes());
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.push(u8::from(self.number.is_some()));
        out.push(self.scope.code());
        let number = self.number.unwrap_or(CrlNumber::from(0));
        out.push(number.len);
        out.extend_from_slice(&number.bytes);
        out.push(0);
        debug_assert_eq!(out.len() - start, RECORD_LEN);
    }

    /// Decodes a record of exactly `RECORD_LEN` bytes. Out-of-range fields
    /// are clamped here; `check_record` is what rejects them.
    fn decode(record: &[u8]) -> IssuerInfo {
        let number_len = usize::from(record[58]).min(MAX_NUMBER_LEN);
        let number = (record[56] & 1 == 1)
            .then(|| CrlNumber::from_be_bytes(&record[59..59 + number_len]))
            .flatten();
        IssuerInfo {
            key: array(&record[..32]),
            this_update: i64::from_le_bytes(array(&record[32..40])),
            next_update: i64::from_le_bytes(array(&record[40..48])),
            entries: u64::from_le_bytes(array(&record[48..56])),
            number,
            scope: Scope::from_code(record[57]).unwrap_or_default(),
        }
    }

    fn check_record(record: &[u8]) -> Result<(), TableError> {
        let number_len = usize::from(record[58]);
        if record[56] > 1 || Scope::from_code(record[57]).is_none() {
            return Err(TableError::Corrupt("bad issuer flags"));
        }
        if number_len > MAX_NUMBER_LEN || (number_len > 0 && record[59] == 0) {
            return Err(TableError::Corrupt("bad CRL number"));
        }
        Ok(())
    }
}

/// Collects revoked certificates and serializes them into a table.
pub struct TableBuilder {
    kind: Kind,
    /// The tags of the entries added, as bits.
    tags: u16,
    issuers: BTreeMap<IssuerKey, IssuerInfo>,
    keys: Vec<u128>,
}

impl TableBuilder {
    pub fn new(kind: Kind) -> TableBuilder {
        TableBuilder::with_capacity(kind, 0)
    }

    /// Reserves room for `entries` entries.
    pub fn with_capacity(kind: Kind, entries: usize) -> TableBuilder {
        TableBuilder {
            kind,
            tags: 0,
            issuers: BTreeMap::new(),
            keys: Vec::with_capacity(entries),
        }
    }

    /// Records a CRL; one per issuer.
    pub fn add_issuer(&mut self, info: IssuerInfo) -> Result<(), TableError> {
        match self.issuers.entry(info.key) {
            Entry::Occupied(_) => Err(TableError::DuplicateIssuer),
            Entry::Vacant(slot) => {
                slot.insert(info);
                Ok(())
            }
        }
    }

    /// Adds the certificate `serial` of `issuer`: the content octets of its
    /// INTEGER (see [`Table::is_revoked`]); leading zero bytes, such as
    /// DER's sign byte, are ignored.
    pub fn add_revoked(&mut self, issuer: &IssuerKey, serial: &[u8]) {
        self.tags |= 1 << TAG_CRL;
        self.keys.push(crl_entry(issuer, serial));
    }

    /// Adds a serial denied whatever the issuer.
    pub fn add_serial(&mut self, serial: &[u8]) {
        self.tags |= 1 << TAG_SERIAL;
        self.keys.push(serial_entry(serial));
    }

    /// Adds a certificate SHA-256 fingerprint.
    pub fn add_fingerprint(&mut self, fingerprint: &Fingerprint) {
        self.tags |= 1 << TAG_FINGERPRINT;
        self.keys.push(fingerprint_entry(fingerprint));
    }

    /// Sorts the entries (duplicates count once) and serializes the table.
    pub fn finish(mut self) -> Result<Vec<u8>, TableError> {
        self.keys.sort_unstable();
        self.keys.dedup();
        let n = self.keys.len();
        let Ok(issuers) = u32::try_from(self.issuers.len()) else {
            return Err(TableError::TooLarge(self.issuers.len()));
        };
        if u32::try_from(n).is_err() {
            return Err(TableError::TooLarge(n));
        }
        let layout = Layout::of(self.issuers.len() as u64, n as u64, bits_for(n))
            .ok_or(TableError::TooLarge(n))?;
        let mut out = Vec::with_capacity(layout.total as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.kind.code().to_le_bytes());
        out.extend_from_slice(&self.tags.to_le_bytes());
        out.extend_from_slice(&issuers.to_le_bytes());
        out.extend_from_slice(&layout.bits.to_le_bytes());
        for field in [
            n as u64,
            layout.issuers,
            layout.buckets,
            layout.entries,
            layout.total,
        ] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        for info in self.issuers.values() {
            info.encode(&mut out);
        }
        out.resize(layout.buckets as usize, 0);
        // Bucket starts: a running count of the entries below each bucket.
        let mut next = 0usize;
        for bucket in 0..=1u64 << layout.bits {
            while next < n && bucket_of(self.keys[next], layout.bits) < bucket {
                next += 1;
            }
            out.extend_from_slice(&(next as u32).to_le_bytes());
        }
        out.resize(layout.entries as usize, 0);
        for key in &self.keys {
            out.extend_from_slice(&key.to_be_bytes());
        }
        debug_assert_eq!(out.len() as u64, layout.total);
        Ok(out)
    }
}

/// A table, read in place from its bytes.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    kind: Kind,
    tags: u16,
    bits: u32,
    issuers: &'a [u8],
    buckets: &'a [u8],
    entries: &'a [u8],
}

impl<'a> Table<'a> {
    /// Checks the header, the section bounds, the issuer records and that
    /// the bucket index ascends from 0 to the entry count. Costs
    /// O(buckets), about 0.3 ms per million entries: do it once for bytes
    /// read from outside, and keep the table (a worker keeps it with its
    /// mapping of the shared file).
    pub fn new(bytes: &'a [u8]) -> Result<Table<'a>, TableError> {
        let table = Table::open(bytes)?;
        let mut previous: Option<&[u8]> = None;
        for record in table.issuers.chunks_exact(RECORD_LEN) {
            IssuerInfo::check_record(record)?;
            if previous.is_some_and(|p| p >= &record[..32]) {
                return Err(TableError::Corrupt("issuers are not sorted"));
            }
            previous = Some(&record[..32]);
        }
        let mut starts = table
            .buckets
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(array(b)));
        if starts.next() != Some(0) {
            return Err(TableError::Corrupt("bucket index does not start at 0"));
        }
        let mut last = 0;
        for start in starts {
            if start < last {
                return Err(TableError::Corrupt("bucket index is not sorted"));
            }
            last = start;
        }
        if last as usize != table.len() {
            return Err(TableError::Corrupt(
                "bucket index does not end at the entry count",
            ));
        }
        Ok(table)
    }

    /// Checks the header and the section bounds only, in O(1): for bytes
    /// that [`Table::new`] accepted, or that this process built. Look-ups
    /// stay memory-safe on any bytes; on a corrupt bucket index they may
    /// miss.
    pub fn open(bytes: &'a [u8]) -> Result<Table<'a>, TableError> {
        let need = |need: u64| TableError::Truncated {
            len: bytes.len(),
            need,
        };
        let header = bytes.get(..HEADER_LEN).ok_or(need(HEADER_LEN as u64))?;
        if &header[..8] != MAGIC {
            return Err(TableError::Magic);
        }
        let u32_at = |at: usize| u32::from_le_bytes(array(&header[at..at + 4]));
        let u64_at = |at: usize| u64::from_le_bytes(array(&header[at..at + 8]));
        if u32_at(8) != VERSION {
            return Err(TableError::Version(u32_at(8)));
        }
        let u16_at = |at: usize| u16::from_le_bytes(array(&header[at..at + 2]));
        let kind = Kind::from_code(u16_at(12)).ok_or(TableError::Corrupt("unknown kind"))?;
        let tags = u16_at(14);
        if tags & !(1 << TAG_CRL | 1 << TAG_SERIAL | 1 << TAG_FINGERPRINT) != 0 {
            return Err(TableError::Corrupt("unknown kind of entry"));
        }
        let (issuers, bits, n) = (u64::from(u32_at(16)), u32_at(20), u64_at(24));
        if n > u64::from(u32::MAX) || bits > MAX_BITS {
            return Err(TableError::Corrupt("bad counts"));
        }
        let layout = Layout::of(issuers, n, bits).ok_or(TableError::Corrupt("bad counts"))?;
        if [u64_at(32), u64_at(40), u64_at(48), u64_at(56)]
            != [layout.issuers, layout.buckets, layout.entries, layout.total]
        {
            return Err(TableError::Corrupt("bad section offsets"));
        }
        if (bytes.len() as u64) < layout.total {
            return Err(need(layout.total));
        }
        // All ends are at most `layout.total`, which fits in `bytes`.
        let section = |from: u64, len: u64| &bytes[from as usize..(from + len) as usize];
        Ok(Table {
            kind,
            tags,
            bits,
            issuers: section(layout.issuers, issuers * RECORD_LEN as u64),
            buckets: section(layout.buckets, ((1u64 << bits) + 1) * 4),
            entries: section(layout.entries, n * ENTRY_LEN as u64),
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the table may hold serials denied whatever the issuer: a
    /// deny list of fingerprints only does not, and a certificate's serial
    /// need not be looked up in it.
    pub fn holds_serials(&self) -> bool {
        self.tags & 1 << TAG_SERIAL != 0
    }

    /// Whether the table may hold fingerprints: one that does not spares
    /// hashing the certificate.
    pub fn holds_fingerprints(&self) -> bool {
        self.tags & 1 << TAG_FINGERPRINT != 0
    }

    /// The number of distinct entries.
    pub fn len(&self) -> usize {
        self.entries.len() / ENTRY_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a CRL of `issuer` lists `serial`: the content octets of the
    /// certificate's serialNumber INTEGER, as the CRL's are read (x509-parser's
    /// `raw_serial()`, or [`crate::identity::serial::Serial`]); leading zero bytes are
    /// ignored. For a positive serial this is its magnitude; a serial that
    /// a CA encoded as negative must be given in the same two's complement
    /// bytes, not as a BIGNUM's magnitude.
    pub fn is_revoked(&self, issuer: &IssuerKey, serial: &[u8]) -> bool {
        self.contains(crl_entry(issuer, serial))
    }

    /// Whether the table holds `key`: the look-ups above with the hashing
    /// done beforehand.
    pub fn holds(&self, key: Key) -> bool {
        self.contains(key.0)
    }

    /// Whether the deny list names `serial`, whatever the issuer.
    pub fn denies_serial(&self, serial: &[u8]) -> bool {
        self.contains(serial_entry(serial))
    }

    /// Whether the deny list names the certificate with this SHA-256.
    pub fn denies_fingerprint(&self, fingerprint: &Fingerprint) -> bool {
        self.contains(fingerprint_entry(fingerprint))
    }

    /// The CRL in this table for `issuer`, if any.
    pub fn issuer(&self, issuer: &IssuerKey) -> Option<IssuerInfo> {
        let record = |i: usize| &self.issuers[i * RECORD_LEN..(i + 1) * RECORD_LEN];
        let (mut low, mut high) = (0, self.issuers.len() / RECORD_LEN);
        while low < high {
            let mid = low + (high - low) / 2;
            match record(mid)[..32].cmp(issuer) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Some(IssuerInfo::decode(record(mid))),
            }
        }
        None
    }

    /// The CRLs in this table, by issuer key.
    pub fn issuers(&self) -> impl Iterator<Item = IssuerInfo> + 'a {
        self.issuers
            .chunks_exact(RECORD_LEN)
            .map(IssuerInfo::decode)
    }

    fn contains(&self, key: u128) -> bool {
        let bucket = bucket_of(key, self.bits) as usize;
        let start = |b: usize| {
            let at = b * 4;
            self.buckets
                .get(at..at + 4)
                .map(|s| u32::from_le_bytes(array(s)) as usize)
        };
        let (Some(first), Some(end)) = (start(bucket), start(bucket + 1)) else {
            return false;
        };
        // `get` is None when the index is corrupt (first > end, or past n).
        let Some(slots) = self.entries.get(first * ENTRY_LEN..end * ENTRY_LEN) else {
            return false;
        };
        let key = key.to_be_bytes();
        slots.chunks_exact(ENTRY_LEN).any(|entry| entry == key)
    }
}

impl fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("kind", &self.kind)
            .field("entries", &self.len())
            .field("issuers", &(self.issuers.len() / RECORD_LEN))
            .field("bits", &self.bits)
            .finish()
    }
}

/// Section offsets for `issuers` records, `n` entries and `2^bits` buckets;
/// `None` on overflow.
struct Layout {
    bits: u32,
    issuers: u64,
    buckets: u64,
    entries: u64,
    total: u64,
}

impl Layout {
    fn of(issuers: u64, n: u64, bits: u32) -> Option<Layout> {
        let align = |x: u64| x.checked_add(7).map(|x| x & !7);
        let first = HEADER_LEN as u64;
        let buckets = align(first.checked_add(issuers.checked_mul(RECORD_LEN as u64)?)?)?;
        let index_len = 1u64.checked_shl(bits)?.checked_add(1)?.checked_mul(4)?;
        let entries = align(buckets.checked_add(index_len)?)?;
        let total = entries.checked_add(n.checked_mul(ENTRY_LEN as u64)?)?;
        usize::try_from(total).ok()?;
        Some(Layout {
            bits,
            issuers: first,
            buckets,
            entries,
            total,
        })
    }
}

/// Two to four entries per bucket: the smallest `b` with `2^(b + 2) >= n`.
fn bits_for(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        (usize::BITS - (n - 1).leading_zeros()).saturating_sub(2)
    }
}

/// The top `bits` bits of an entry.
fn bucket_of(key: u128, bits: u32) -> u64 {
    // With 0 bits, the shift is by 64: every entry is in bucket 0.
    ((key >> 64) as u64).checked_shr(64 - bits).unwrap_or(0)
}

/// A certificate's key in a table, for [`Table::holds`]. Hashing is most of
/// a look-up's cost, and a certificate's keys never change: a connection
/// computes them once for all its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(u128);

impl Key {
    /// As [`Table::is_revoked`] looks it up.
    pub fn crl(issuer: &IssuerKey, serial: &[u8]) -> Key {
        Key(crl_entry(issuer, serial))
    }

    /// As [`Table::denies_serial`] looks it up.
    pub fn serial(serial: &[u8]) -> Key {
        Key(serial_entry(serial))
    }

    /// As [`Table::denies_fingerprint`] looks it up.
    pub fn fingerprint(fingerprint: &Fingerprint) -> Key {
        Key(fingerprint_entry(fingerprint))
    }
}

fn crl_entry(issuer: &IssuerKey, serial: &[u8]) -> u128 {
    entry_key(TAG_CRL, &[issuer, strip_zeros(serial)])
}

fn serial_entry(serial: &[u8]) -> u128 {
    entry_key(TAG_SERIAL, &[strip_zeros(serial)])
}

fn fingerprint_entry(fingerprint: &Fingerprint) -> u128 {
    entry_key(TAG_FINGERPRINT, &[fingerprint])
}

/// The first 16 bytes of SHA-256(tag || parts): each kind of entry has its
/// own tag, and only the last part varies in length, so distinct inputs
/// never share a hash input.
fn entry_key(tag: u8, parts: &[&[u8]]) -> u128 {
    let mut hash = Sha256::new();
    hash.update(&[tag]);
    for part in parts {
        hash.update(part);
    }
    u128::from_be_bytes(array(&hash.finish()[..16]))
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let significant = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[significant..]
}

/// A fixed-size array from a slice of exactly that size.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::testca::Rng;

    fn info(key: u8, number: Option<u64>) -> IssuerInfo {
        IssuerInfo {
            key: [key; 32],
            this_update: 1_735_689_600,
            next_update: 1_738_368_000,
            number: number.map(CrlNumber::from),
            scope: Scope::All,
            entries: 2,
        }
    }

    fn crl_table() -> Vec<u8> {
        let mut builder = TableBuilder::new(Kind::Crl);
        builder.add_issuer(info(2, Some(7))).unwrap();
        builder.add_issuer(info(1, None)).unwrap();
        builder.add_revoked(&[1; 32], &[0x10, 0x01]);
        builder.add_revoked(&[1; 32], &[0x80]);
        builder.add_revoked(&[2; 32], &[0x10, 0x02]);
        builder.add_revoked(&[2; 32], &[0x10, 0x02]);
        // Enough entries for 8 buckets.
        for serial in 0x20..0x34 {
            builder.add_revoked(&[2; 32], &[serial]);
        }
        builder.finish().unwrap()
    }

    #[test]
    fn crl_round_trip() {
        let bytes = crl_table();
        let table = Table::new(&bytes).unwrap();
        assert_eq!(table.kind(), Kind::Crl);
        assert_eq!(table.len(), 23, "duplicates count once");
        assert!(table.is_revoked(&[1; 32], &[0x10, 0x01]));
        assert!(
            table.is_revoked(&[1; 32], &[0x00, 0x80]),
            "DER sign byte ignored"
        );
        assert!(table.is_revoked(&[2; 32], &[0x10, 0x02]));
        assert!(
            !table.is_revoked(&[2; 32], &[0x10, 0x01]),
            "another issuer's serial"
        );
        assert!(!table.is_revoked(&[3; 32], &[0x10, 0x01]));
        assert!(!table.is_revoked(&[1; 32], &[0x10, 0x01, 0x00]));
        assert!(
            !table.denies_serial(&[0x10, 0x01]),
            "CRL entries are per issuer"
        );
        let issuers: Vec<IssuerInfo> = table.issuers().collect();
        assert_eq!(issuers, [info(1, None), info(2, Some(7))], "sorted by key");
        assert_eq!(table.issuer(&[2; 32]), Some(info(2, Some(7))));
        assert_eq!(table.issuer(&[1; 32]), Some(info(1, None)));
        assert_eq!(table.issuer(&[0; 32]), None);
        assert_eq!(table.issuer(&[9; 32]), None);
    }

    #[test]
    fn precomputed_keys_find_what_look_ups_find() {
        let bytes = crl_table();
        let table = Table::new(&bytes).unwrap();
        assert!(table.holds(Key::crl(&[1; 32], &[0x00, 0x80])));
        assert!(table.holds(Key::crl(&[2; 32], &[0x10, 0x02])));
        assert!(!table.holds(Key::crl(&[2; 32], &[0x10, 0x01])));
        assert!(!table.holds(Key::serial(&[0x10, 0x01])));

        let mut builder = TableBuilder::new(Kind::DenyList);
        builder.add_serial(&[0x1a, 0x2b]);
        builder.add_fingerprint(&[0xab; 32]);
        let bytes = builder.finish().unwrap();
        let table = Table::new(&bytes).unwrap();
        assert!(table.holds(Key::serial(&[0, 0x1a, 0x2b])));
        assert!(!table.holds(Key::serial(&[0x1a])));
        assert!(table.holds(Key::fingerprint(&[0xab; 32])));
        assert!(!table.holds(Key::fingerprint(&[0xac; 32])));
        assert!(!table.holds(Key::crl(&[0xab; 32], &[0x1a, 0x2b])));
    }

    #[test]
    fn deny_list_round_trip() {
        let mut builder = TableBuilder::new(Kind::DenyList);
        builder.add_serial(&[0x1a, 0x2b]);
        builder.add_fingerprint(&[0xab; 32]);
        let bytes = builder.finish().unwrap();
        let table = Table::new(&bytes).unwrap();
        assert_eq!((table.kind(), table.len()), (Kind::DenyList, 2));
        assert!(table.denies_serial(&[0x1a, 0x2b]));
        assert!(table.denies_serial(&[0, 0x1a, 0x2b]));
        assert!(!table.denies_serial(&[0x1a]));
        assert!(table.denies_fingerprint(&[0xab; 32]));
        assert!(!table.denies_fingerprint(&[0xac; 32]));
        assert!(
            !table.denies_serial(&[0xab; 32]),
            "a serial is not a fingerprint"
        );
        assert!(!table.is_revoked(&[0xab; 32], &[0x1a, 0x2b]));
        assert_eq!(table.issuers().count(), 0);
    }

    #[test]
    fn empty_table() {
        let bytes = TableBuilder::new(Kind::DenyList).finish().unwrap();
        assert_eq!(
            bytes.len(),
            HEADER_LEN + 8,
            "one bucket: two starts, padded"
        );
        let table = Table::new(&bytes).unwrap();
        assert!(table.is_empty());
        assert!(!table.denies_serial(&[]));
        assert!(!table.denies_fingerprint(&[0; 32]));
    }

    #[test]
    fn every_size_finds_its_entries() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in (0..=70).chain([255, 256, 257, 1000, 4097]) {
            let serials: Vec<[u8; 16]> = (0..n).map(|_| rng.serial()).collect();
            let mut builder = TableBuilder::new(Kind::Crl);
            for serial in &serials {
                builder.add_revoked(&[7; 32], serial);
            }
            let bytes = builder.finish().unwrap();
            let table = Table::new(&bytes).unwrap();
            assert_eq!(table.len(), n);
            assert!(
                table.bits == bits_for(n)
                    && n <= 4 << table.bits
                    && (n <= 4 || n > 2 << table.bits),
                "{n}"
            );
            assert!(serials.iter().all(|s| table.is_revoked(&[7; 32], s)), "{n}");
            assert!(
                (0..200).all(|_| !table.is_revoked(&[7; 32], &rng.serial())),
                "{n}"
            );
        }
    }

    #[test]
    fn debug_is_short() {
        let bytes = crl_table();
        assert_eq!(
            format!("{:?}", Table::new(&bytes).unwrap()),
            "Table { kind: Crl, entries: 23, issuers: 2, bits: 3 }"
        );
    }

    #[test]
    fn bits_and_buckets() {
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 8, 9, 1024, 1025, 1_000_000].map(bits_for),
            [0, 0, 0, 0, 0, 1, 1, 2, 8, 9, 18]
        );
        let top = 0xfedc_ba98_u128 << 96;
        assert_eq!(bucket_of(top, 0), 0);
        assert_eq!(bucket_of(top, 1), 1);
        assert_eq!(bucket_of(top, 8), 0xfe);
        assert_eq!(bucket_of(top, 32), 0xfedc_ba98);
    }

    #[test]
    fn crl_numbers() {
        let n = |bytes: &[u8]| CrlNumber::from_be_bytes(bytes).unwrap();
        assert_eq!(n(&[0, 0, 5]), CrlNumber::from(5));
        assert_eq!(n(&[]).to_string(), "0");
        assert!(n(&[1, 0]) > n(&[0xff]));
        assert!(n(&[2, 0]) > n(&[1, 0xff]));
        assert_eq!(
            CrlNumber::from(u64::MAX).to_string(),
            "18446744073709551615"
        );
        let big = n(&[0xff; 20]);
        assert!(big > CrlNumber::from(u64::MAX));
        assert_eq!(big.as_bytes(), [0xff; 20]);
        assert_eq!(
            big.to_string(),
            "1461501637330902918203684832716283019655932542975"
        );
        assert_eq!(CrlNumber::from_be_bytes(&[1; 21]), None);
        assert!(CrlNumber::from_be_bytes(&[[0].as_slice(), &[1; 20]].concat()).is_some());
    }

    #[test]
    fn issuer_records_round_trip() {
        let records = [
            IssuerInfo {
                key: [1; 32],
                this_update: -5,
                next_update: i64::MAX,
                number: Some(CrlNumber::from_be_bytes(&[0xee; 20]).unwrap()),
                scope: Scope::Ca,
                entries: u64::MAX,
            },
            IssuerInfo {
                number: Some(CrlNumber::from(0)),
                scope: Scope::EndEntity,
                ..info(2, None)
            },
            info(3, None),
        ];
        let mut builder = TableBuilder::new(Kind::Crl);
        for record in records {
            builder.add_issuer(record).unwrap();
        }
        assert_eq!(
            builder.add_issuer(info(3, Some(1))),
            Err(TableError::DuplicateIssuer)
        );
        let bytes = builder.finish().unwrap();
        let table = Table::new(&bytes).unwrap();
        assert_eq!(table.issuers().collect::<Vec<_>>(), records);
        assert!(records.iter().all(|r| table.issuer(&r.key) == Some(*r)));
    }

    #[test]
    fn layout_is_little_endian_and_aligned() {
        let bytes = crl_table();
        assert_eq!(&bytes[..8], b"MTLSREV1");
        let at = |i: usize| u64::from_le_bytes(array(&bytes[i..i + 8]));
        assert_eq!(u32::from_le_bytes(array(&bytes[8..12])), 2);
        assert_eq!(u16::from_le_bytes(array(&bytes[12..14])), 1, "CRL");
        assert_eq!(u16::from_le_bytes(array(&bytes[14..16])), 2, "CRL entries");
        assert_eq!(u32::from_le_bytes(array(&bytes[16..20])), 2, "issuers");
        assert_eq!(u32::from_le_bytes(array(&bytes[20..24])), 3, "bits");
        assert_eq!(at(24), 23, "entries");
        // Buckets: 9 starts of 4 bytes from 224, padded to 264.
        assert_eq!([at(32), at(40), at(48), at(56)], [64, 224, 264, 632]);
        assert_eq!(bytes.len(), 632);
        let table = Table::new(&bytes).unwrap();
        let entries: Vec<&[u8]> = table.entries.chunks(16).collect();
        assert!(entries.windows(2).all(|w| w[0] < w[1]));
    }

    /// A table says which kinds of entry it holds, so that a look-up can
    /// skip a key no entry can match (and the hashing it would take).
    #[test]
    fn tables_say_what_they_hold() {
        let kinds = |table: &[u8]| {
            let t = Table::new(table).unwrap();
            (t.holds_serials(), t.holds_fingerprints())
        };
        let mut serials = TableBuilder::new(Kind::DenyList);
        serials.add_serial(&[1, 2]);
        assert_eq!(kinds(&serials.finish().unwrap()), (true, false));
        let mut fingerprints = TableBuilder::new(Kind::DenyList);
        fingerprints.add_fingerprint(&[7; 32]);
        assert_eq!(kinds(&fingerprints.finish().unwrap()), (false, true));
        let mut both = TableBuilder::new(Kind::DenyList);
        both.add_fingerprint(&[7; 32]);
        both.add_serial(&[1, 2]);
        assert_eq!(kinds(&both.finish().unwrap()), (true, true));
        let empty = TableBuilder::new(Kind::DenyList).finish().unwrap();
        assert_eq!(kinds(&empty), (false, false));
        assert_eq!(kinds(&crl_table()), (false, false));
    }

    #[test]
    fn rejects_bad_headers() {
        let good = crl_table();
        let with = |at: usize, value: &[u8]| {
            let mut bytes = good.clone();
            bytes[at..at + value.len()].copy_from_slice(value);
            Table::new(&bytes).map(|t| t.len())
        };
        assert_eq!(with(0, b"MTLSREV2"), Err(TableError::Magic));
        assert_eq!(with(8, &1u32.to_le_bytes()), Err(TableError::Version(1)));
        assert_eq!(
            with(12, &3u16.to_le_bytes()),
            Err(TableError::Corrupt("unknown kind"))
        );
        assert_eq!(
            with(14, &(2u16 | 1 << 4).to_le_bytes()),
            Err(TableError::Corrupt("unknown kind of entry"))
        );
        assert_eq!(
            with(20, &33u32.to_le_bytes()),
            Err(TableError::Corrupt("bad counts"))
        );
        let offsets = TableError::Corrupt("bad section offsets");
        assert_eq!(with(20, &4u32.to_le_bytes()), Err(offsets.clone()));
        assert_eq!(with(24, &24u64.to_le_bytes()), Err(offsets.clone()));
        assert_eq!(with(16, &1u32.to_le_bytes()), Err(offsets.clone()));
        assert_eq!(with(40, &232u64.to_le_bytes()), Err(offsets));
        assert_eq!(
            with(24, &u64::from(u32::MAX).to_le_bytes()),
            Err(TableError::Corrupt("bad section offsets"))
        );
        assert_eq!(
            with(24, &(1u64 << 32).to_le_bytes()),
            Err(TableError::Corrupt("bad counts"))
        );
        assert_eq!(
            Table::new(&good[..100]).map(|t| t.len()),
            Err(TableError::Truncated {
                len: 100,
                need: 632
            })
        );
        assert_eq!(
            Table::new(&good[..10]).map(|t| t.len()),
            Err(TableError::Truncated { len: 10, need: 64 })
        );
        let mut longer = good.clone();
        longer.extend([0xff; 4096]);
        assert_eq!(
            Table::new(&longer).map(|t| t.len()),
            Ok(23),
            "a page-rounded mapping"
        );
    }

    #[test]
    fn rejects_bad_sections() {
        let good = crl_table();
        let with = |at: usize, value: &[u8]| {
            let mut bytes = good.clone();
            bytes[at..at + value.len()].copy_from_slice(value);
            Table::new(&bytes).map(|t| t.len())
        };
        // Issuer records at 64 and 144; bucket starts at 224.
        let unsorted = TableError::Corrupt("issuers are not sorted");
        assert_eq!(with(64, &[2; 32]), Err(unsorted.clone()));
        assert_eq!(with(64, &[3; 32]), Err(unsorted));
        assert_eq!(
            with(64 + 56, &[2]),
            Err(TableError::Corrupt("bad issuer flags"))
        );
        assert_eq!(
            with(64 + 57, &[3]),
            Err(TableError::Corrupt("bad issuer flags"))
        );
        assert_eq!(
            with(64 + 58, &[21]),
            Err(TableError::Corrupt("bad CRL number"))
        );
        assert_eq!(
            with(64 + 58, &[2]),
            Err(TableError::Corrupt("bad CRL number"))
        );
        assert_eq!(
            with(224, &1u32.to_le_bytes()),
            Err(TableError::Corrupt("bucket index does not start at 0"))
        );
        assert_eq!(
            with(224 + 32, &22u32.to_le_bytes()),
            Err(TableError::Corrupt(
                "bucket index does not end at the entry count"
            ))
        );
        assert_eq!(
            with(224 + 4, &24u32.to_le_bytes()),
            Err(TableError::Corrupt("bucket index is not sorted"))
        );
    }

    /// Whatever the bytes, construction and look-ups return; they never
    /// panic nor read out of bounds.
    fn probe(bytes: &[u8]) {
        for table in [Table::new(bytes), Table::open(bytes)]
            .into_iter()
            .flatten()
        {
            let _ = table.is_revoked(&[1; 32], &[0x10, 0x01]);
            let _ = table.is_revoked(&[2; 32], &[0x10, 0x02]);
            let _ = table.denies_serial(&[0x10]);
            let _ = table.denies_fingerprint(&[0; 32]);
            let _ = table.issuer(&[1; 32]);
            let _ = table.issuers().count();
            let _ = (table.len(), table.kind());
        }
    }

    #[test]
    fn every_prefix_is_rejected() {
        for bytes in [crl_table(), TableBuilder::new(Kind::Crl).finish().unwrap()] {
            for len in 0..bytes.len() {
                assert!(Table::new(&bytes[..len]).is_err(), "{len}");
                assert!(Table::open(&bytes[..len]).is_err(), "{len}");
                probe(&bytes[..len]);
            }
        }
    }

    #[test]
    fn corruptions_never_panic() {
        let good = crl_table();
        let mut rng = Rng(42);
        for round in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + round % 4 {
                let at = rng.next_u64() as usize % bytes.len();
                bytes[at] ^= 1 << (rng.next_u64() % 8);
                if round % 3 == 0 {
                    bytes[at] = rng.next_u64() as u8;
                }
            }
            probe(&bytes);
        }
        // Every single byte set to each of a few values, header included.
        for at in 0..good.len() {
            for value in [0, 1, 0x7f, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = value;
                probe(&bytes);
            }
        }
    }

    #[test]
    fn open_survives_a_corrupt_bucket_index() {
        let mut bytes = crl_table();
        // Bucket starts at 224: 9 u32 for 3 bits. Make them go anywhere.
        for (i, start) in [0u32, 30, 1, 99, 3, u32::MAX, 0, 7, 23].iter().enumerate() {
            bytes[224 + 4 * i..228 + 4 * i].copy_from_slice(&start.to_le_bytes());
        }
        assert!(Table::new(&bytes).is_err());
        let table = Table::open(&bytes).unwrap();
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let _ = table.is_revoked(&[2; 32], &rng.serial());
        }
        for serial in 0x20..0x34 {
            let _ = table.is_revoked(&[2; 32], &[serial]);
        }
    }
}
