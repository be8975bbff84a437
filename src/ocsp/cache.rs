//! The OCSP answers shared by all workers, and the queue of look-ups they
//! ask the loader process for: one anonymous shared mapping that the
//! master makes with the configuration, so that every worker and the
//! loader (forked from worker 0) inherit it.
//!
//! Only the loader writes answers; workers read them, note when a
//! certificate was last used, and queue the certificates that have none.
//! Each answer is guarded by a sequence number that the loader makes odd
//! while it writes: a reader that finds it odd, or changed under it,
//! retries a few times and then takes the answer as missing. No reader
//! ever spins on it, so a loader killed mid-write hangs nobody; the next
//! loader writing that entry makes the number even again.

use core::sync::atomic::{fence, AtomicI64, AtomicU64, Ordering};
use std::io;

use super::CertKey;
use crate::state::queue::{PushError, Queue};
use crate::state::SharedRegion;

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Good,
    Revoked,
    Unknown,
    /// The responder could not be asked, or its answer did not verify.
    Failed,
}

impl State {
    fn code(self) -> u64 {
        match self {
            State::Good => 1,
            State::Revoked => 2,
            State::Unknown => 3,
            State::Failed => 4,
        }
    }

    fn from_code(code: u64) -> Option<State> {
        Some(match code {
            1 => State::Good,
            2 => State::Revoked,
            3 => State::Unknown,
            4 => State::Failed,
            _ => return None,
        })
    }
}

/// A cached answer as a reader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub state: State,
    /// Unix time until which it may be used.
    pub expires: i64,
    /// When the loader got it.
    pub fetched: i64,
    /// When a worker last used it.
    pub used: i64,
}

/// Counters of the status page, summed over all workers and the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A request decided from current answers alone (one per request,
    /// however many certificates it checks).
    Hit,
    /// A request that found none and waited for the loader.
    Miss,
    /// The loader's attempts that failed: no answer, or one that did not
    /// verify.
    ResponderError,
    /// Requests passed under `mtls_ocsp_fail soft` without an answer.
    SoftPass,
    /// Answers the loader received, by status.
    Good,
    Revoked,
    Unknown,
    /// Certificates that could not be queued: the queue was full.
    QueueFull,
}

const COUNTERS: usize = 8;

/// How many look-ups may wait in the queue, and the size of each: the
/// certificate and its issuer, DER, and the responder's URL.
pub const QUEUE_SLOTS: usize = 64;
pub const SLOT_BYTES: usize = 8192;

/// How many entries a key may be placed from its home position.
const PROBES: usize = 8;
/// How often a reader retries an entry being written.
const READ_TRIES: usize = 4;

#[repr(C)]
struct Header {
    /// Moves whenever an answer changes what a certificate's status is:
    /// a connection's decision reused from before is then made again.
    generation: AtomicU64,
    counters: [AtomicU64; COUNTERS],
    queue: LookupQueue,
}

#[repr(C)]
struct RawEntry {
    seq: AtomicU64,
    key: [AtomicU64; 2],
    state: AtomicU64,
    expires: AtomicI64,
    fetched: AtomicI64,
    /// Written by workers, outside the sequence lock.
    used: AtomicI64,
    _pad: AtomicU64,
}

/// The look-ups waiting for the loader.
pub type LookupQueue = Queue<QUEUE_SLOTS, SLOT_BYTES>;

/// One look-up a worker asks the loader for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub key: CertKey,
    pub cert: Vec<u8>,
    pub issuer: Vec<u8>,
    pub url: String,
    /// How long the worker waits for it, milliseconds.
    pub timeout_ms: u32,
}

impl Query {
    fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(16 + 12 + self.cert.len() + self.issuer.len());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.timeout_ms.to_le_bytes());
        for part in [&self.cert[..], &self.issuer, self.url.as_bytes()] {
            out.extend_from_slice(&u32::try_from(part.len()).ok()?.to_le_bytes());
            out.extend_from_slice(part);
        }
        Some(out)
    }

    fn decode(bytes: &[u8]) -> Option<Query> {
        let key: CertKey = bytes.get(..16)?.try_into().ok()?;
        let timeout_ms = u32::from_le_bytes(bytes.get(16..20)?.try_into().ok()?);
        let mut rest = &bytes[20..];
        let mut part = || {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let value = rest.get(4..4 + len)?.to_vec();
            rest = &rest[4 + len..];
            Some(value)
        };
        let (cert, issuer, url) = (part()?, part()?, part()?);
        Some(Query {
            key,
            cert,
            issuer,
            url: String::from_utf8(url).ok()?,
            timeout_ms,
        })
    }
}

/// The mapping.
pub struct Cache {
    /// Accessed only through atomics, but for the queue's slots, which the
    /// queue hands to one process at a time.
    region: SharedRegion,
    entries: usize,
}

impl Cache {
    /// A cache of `entries` answers (at least `PROBES`).
    pub fn new(entries: usize) -> io::Result<Cache> {
        let entries = entries.max(PROBES);
        let len = size_of::<Header>() + entries * size_of::<RawEntry>();
        // Zero-filled, so the queue starts empty and every entry free.
        Ok(Cache {
            region: SharedRegion::new_zeroed(len)?,
            entries,
        })
    }

    pub fn capacity(&self) -> usize {
        self.entries
    }

    fn header(&self) -> &Header {
        // SAFETY: the header is at the start of the live mapping.
        unsafe { &*self.region.as_ptr().cast::<Header>() }
    }

    fn raw(&self, i: usize) -> &RawEntry {
        assert!(i < self.entries);
        let base = self.region.as_ptr();
        // SAFETY: the entries follow the header, inside the mapping.
        unsafe { &*base.add(size_of::<Header>()).cast::<RawEntry>().add(i) }
    }

    pub fn generation(&self) -> u64 {
        self.header().generation.load(Ordering::Acquire)
    }

    pub fn count(&self, counter: Counter) {
        self.header().counters[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn counter(&self, counter: Counter) -> u64 {
        self.header().counters[counter as usize].load(Ordering::Relaxed)
    }

    fn words(key: &CertKey) -> [u64; 2] {
        let (a, b) = key.split_at(8);
        [
            u64::from_le_bytes(a.try_into().unwrap_or_default()),
            u64::from_le_bytes(b.try_into().unwrap_or_default()),
        ]
    }

    fn home(&self, words: [u64; 2]) -> usize {
        (words[0] % self.entries as u64) as usize
    }

    /// The entry at `i` if it holds `words`, read consistently; `None`
    /// also where the loader kept writing it for every try.
    fn read(&self, i: usize, words: [u64; 2]) -> Option<Entry> {
        let e = self.raw(i);
        for _ in 0..READ_TRIES {
            let before = e.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let key = [
                e.key[0].load(Ordering::Relaxed),
                e.key[1].load(Ordering::Relaxed),
            ];
            let state = e.state.load(Ordering::Relaxed);
            let expires = e.expires.load(Ordering::Relaxed);
            let fetched = e.fetched.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if e.seq.load(Ordering::Relaxed) != before {
                continue;
            }
            if key != words {
                return None;
            }
            return Some(Entry {
                state: State::from_code(state)?,
                expires,
                fetched,
                used: e.used.load(Ordering::Relaxed),
            });
        }
        None
    }

    fn find(&self, key: &CertKey) -> Option<(usize, Entry)> {
        let words = Self::words(key);
        let home = self.home(words);
        (0..PROBES.min(self.entries))
            .map(|p| (home + p) % self.entries)
            .find_map(|i| Some((i, self.read(i, words)?)))
    }

    /// The answer for `key`, current or not. Notes it as used at `now`.
    pub fn lookup(&self, key: &CertKey, now: i64) -> Option<Entry> {
        let (i, entry) = self.find(key)?;
        let used = &self.raw(i).used;
        // One write a second at most: the line stays shared between
        // workers on busy certificates.
        if used.load(Ordering::Relaxed) < now {
            used.store(now, Ordering::Relaxed);
        }
        Some(entry)
    }

    /// The answer for `key`, without noting a use (for the loader).
    pub fn peek(&self, key: &CertKey) -> Option<Entry> {
        self.find(key).map(|(_, e)| e)
    }

    /// Stores an answer (the loader only, which is the one writer). An
    /// entry of another key is replaced where the key's probe window is
    /// full: the one used longest ago. Moves the generation where the
    /// certificate's state changes.
    pub fn store(&self, key: &CertKey, state: State, expires: i64, now: i64) {
        let words = Self::words(key);
        let home = self.home(words);
        let window = (0..PROBES.min(self.entries)).map(|p| (home + p) % self.entries);
        // The one writer reads its own fields without the sequence lock,
        // also those of an entry a dead loader left half written.
        let mut previous = None;
        let mut target = None;
        for i in window.clone() {
            let e = self.raw(i);
            let key = [
                e.key[0].load(Ordering::Relaxed),
                e.key[1].load(Ordering::Relaxed),
            ];
            let state = State::from_code(e.state.load(Ordering::Relaxed));
            if key == words && state.is_some() {
                previous = state;
                target = Some(i);
                break;
            }
        }
        let target = target.unwrap_or_else(|| {
            window
                .min_by_key(|&i| {
                    let e = self.raw(i);
                    if e.state.load(Ordering::Relaxed) == 0 {
                        i64::MIN
                    } else {
                        e.used.load(Ordering::Relaxed)
                    }
                })
                .unwrap_or(home)
        });
        let e = self.raw(target);
        let mut seq = e.seq.load(Ordering::Relaxed);
        if seq % 2 == 1 {
            seq += 1; // a loader died writing it
        }
        e.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        e.key[0].store(words[0], Ordering::Relaxed);
        e.key[1].store(words[1], Ordering::Relaxed);
        e.state.store(state.code(), Ordering::Relaxed);
        e.expires.store(expires, Ordering::Relaxed);
        e.fetched.store(now, Ordering::Relaxed);
        if previous.is_none() {
            e.used.store(now, Ordering::Relaxed);
        }
        e.seq.store(seq + 2, Ordering::Release);
        if previous != Some(state) {
            self.header().generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Entries holding an answer, current or not.
    pub fn len(&self) -> usize {
        (0..self.entries)
            .filter(|&i| self.raw(i).state.load(Ordering::Relaxed) != 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a look-up for the loader and wakes it. False where the
    /// queue is full (counted) or the query too large.
    pub fn push(&self, query: &Query) -> bool {
        let Some(bytes) = query.encode() else {
            return false;
        };
        match self.header().queue.push(&bytes) {
            Ok(()) => true,
            Err(PushError::Full) => {
                self.count(Counter::QueueFull);
                false
            }
            Err(PushError::TooLarge) => false,
        }
    }

    /// Takes every queued look-up (the loader only).
    pub fn drain(&self) -> Vec<Query> {
        let mut out = Vec::new();
        self.header()
            .queue
            .drain(|bytes| out.extend(Query::decode(bytes)));
        out
    }

    /// The queue itself, for the loader to sleep on and be woken by.
    pub fn queue(&self) -> &LookupQueue {
        &self.header().queue
    }
}

#[cfg(test)]
mod tests {
    use super::{Cache, Counter, Query, State, QUEUE_SLOTS};
    use std::time::{Duration, Instant};

    fn key(n: u8) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[0] = n;
        k[15] = n;
        k
    }

    #[test]
    fn answers_and_generation() {
        let cache = Cache::new(64).unwrap();
        assert_eq!(cache.lookup(&key(1), 100), None);
        let g0 = cache.generation();
        cache.store(&key(1), State::Good, 200, 100);
        assert_ne!(cache.generation(), g0, "a new certificate");
        let e = cache.lookup(&key(1), 150).unwrap();
        assert_eq!(
            (e.state, e.expires, e.fetched, e.used),
            (State::Good, 200, 100, 100)
        );
        assert_eq!(cache.peek(&key(1)).unwrap().used, 150);
        let g1 = cache.generation();
        cache.store(&key(1), State::Good, 300, 160);
        assert_eq!(cache.generation(), g1, "a refresh that changes nothing");
        assert_eq!(cache.peek(&key(1)).unwrap().used, 150, "use kept");
        cache.store(&key(1), State::Revoked, 300, 170);
        assert_ne!(cache.generation(), g1, "revoked");
        assert_eq!(cache.peek(&key(2)), None);
        assert_eq!(cache.len(), 1);
    }

    /// Keys that share a home position fill the probe window; then the
    /// one used longest ago is replaced.
    #[test]
    fn full_window_replaces_the_least_used() {
        let cache = Cache::new(8).unwrap();
        for n in 0..8u8 {
            cache.store(
                &[n * 8, 0, 0, 0, 0, 0, 0, 0, n, 0, 0, 0, 0, 0, 0, 0],
                State::Good,
                1000,
                10,
            );
        }
        let k = |n: u8| [n * 8, 0, 0, 0, 0, 0, 0, 0, n, 0, 0, 0, 0, 0, 0, 0];
        for n in 0..8u8 {
            if n != 3 {
                cache.lookup(&k(n), 50);
            }
        }
        cache.store(&k(9), State::Revoked, 1000, 60);
        assert_eq!(cache.peek(&k(3)), None, "least recently used");
        assert_eq!(cache.peek(&k(9)).unwrap().state, State::Revoked);
        assert_eq!(cache.len(), 8);
    }

    /// An entry left odd by a loader that died mid-write reads as missing
    /// (no spinning), and the next store repairs it.
    #[test]
    fn a_torn_write_hangs_nobody() {
        let cache = Cache::new(16).unwrap();
        cache.store(&key(1), State::Good, 200, 100);
        let (i, _) = cache.find(&key(1)).unwrap();
        cache
            .raw(i)
            .seq
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        let start = Instant::now();
        assert_eq!(cache.lookup(&key(1), 100), None);
        assert!(start.elapsed() < Duration::from_millis(50));
        cache.store(&key(1), State::Revoked, 200, 100);
        assert_eq!(cache.peek(&key(1)).unwrap().state, State::Revoked);
        assert_eq!(
            cache.raw(i).seq.load(core::sync::atomic::Ordering::Relaxed) % 2,
            0
        );
    }

    /// Queries go through the shared queue whole; a full queue is counted,
    /// a query too large for a slot is not.
    #[test]
    fn queue() {
        let cache = Cache::new(16).unwrap();
        let q = |n: u8| Query {
            key: key(n),
            cert: vec![n; 1500],
            issuer: vec![n + 1; 900],
            url: format!("http://127.0.0.1:8080/{n}"),
            timeout_ms: 2500,
        };
        let seen = cache.queue().pushed();
        assert!(cache.push(&q(1)));
        assert!(cache.push(&q(2)));
        assert_ne!(cache.queue().pushed(), seen);
        let mut got = cache.drain();
        got.sort_by_key(|q| q.key);
        assert_eq!(got, [q(1), q(2)]);
        assert!(cache.drain().is_empty());
        for n in 0..QUEUE_SLOTS as u8 {
            assert!(cache.push(&q(n)));
        }
        assert!(!cache.push(&q(200)), "full");
        assert_eq!(cache.counter(Counter::QueueFull), 1);
        assert_eq!(cache.drain().len(), QUEUE_SLOTS);
        let huge = Query {
            cert: vec![0; 9000],
            ..q(1)
        };
        assert!(!cache.push(&huge));
        assert_eq!(cache.counter(Counter::QueueFull), 1);
        assert_eq!(Query::decode(&[0; 10]), None);
    }
}
