//! When the client certificates seen expire: counts by remaining validity
//! and the soonest-expiring distinct certificates, for `mtls_status`.
//!
//! A certificate is recorded once per TLS connection, when the module
//! first looks at it, never per request. The data lives in an anonymous
//! shared mapping that the master makes with each configuration, so it
//! starts afresh at start and reload and every worker of the configuration
//! inherits it:
//! - four counters, by remaining validity, and its sum: atomics;
//! - per worker, its [`SOONEST`] soonest-expiring distinct certificates.
//!   Each worker writes only its own table, so there is no lock: a reader
//!   checks each entry's sequence number and retries a bounded number of
//!   times (a worker that died mid-write leaves one entry unreadable,
//!   until the worker that replaces it, which has the same number, writes
//!   it again). The reader merges the tables: a certificate among the
//!   [`SOONEST`] soonest overall is among the soonest of each worker that
//!   saw it.

use core::sync::atomic::{fence, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::io;

use crate::state::SharedRegion;

/// How many certificates each worker keeps, and the status shows.
pub const SOONEST: usize = 20;

/// Upper bounds of the buckets of remaining validity, in seconds (1, 7 and
/// 30 days); a fourth bucket holds the rest.
pub const BUCKETS: [i64; 3] = [86_400, 7 * 86_400, 30 * 86_400];

const SUBJECT_LEN: usize = 256;
const SERIAL_LEN: usize = 64;
/// Attempts at a consistent read of an entry being written.
const READ_TRIES: usize = 64;

/// A certificate as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// What makes two sightings the same certificate: the last 32 bytes
    /// of its signature (`src/status/expiry.rs`).
    pub key: [u8; 32],
    /// Unix times.
    pub not_after: i64,
    pub last_seen: i64,
    /// RFC 4514, printable ASCII; cut at [`SUBJECT_LEN`] bytes.
    pub subject: String,
    /// Upper-case hex; cut at [`SERIAL_LEN`] bytes.
    pub serial: String,
}

#[repr(C)]
struct Header {
    /// Connections by remaining validity: at most 1, 7, 30 days, later.
    buckets: [AtomicU64; 4],
    /// Sum of the remaining validity, in seconds, over those connections.
    remaining_sum: AtomicI64,
    // `workers` tables of `SOONEST` entries follow.
}

/// One entry of a worker's table, under a sequence lock that only that
/// worker writes: odd while it writes.
#[repr(C)]
struct Entry {
    seq: AtomicU64,
    /// 0 for an entry never written.
    not_after: AtomicI64,
    last_seen: AtomicI64,
    key: [AtomicU8; 32],
    subject_len: AtomicU64,
    subject: [AtomicU8; SUBJECT_LEN],
    serial_len: AtomicU64,
    serial: [AtomicU8; SERIAL_LEN],
}

/// The shared data of one configuration.
pub struct Zone {
    /// Accessed only through atomics.
    region: SharedRegion,
    workers: usize,
}

/// What the status shows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub buckets: [u64; 4],
    pub remaining_sum: i64,
    /// Soonest first, at most [`SOONEST`].
    pub soonest: Vec<Seen>,
}

impl Snapshot {
    pub fn connections(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The bucket of a remaining validity.
pub fn bucket(remaining: i64) -> usize {
    BUCKETS
        .iter()
        .position(|&bound| remaining <= bound)
        .unwrap_or(BUCKETS.len())
}

impl Zone {
    /// A zone for `workers` worker processes.
    pub fn new(workers: usize) -> io::Result<Zone> {
        let workers = workers.max(1);
        let len =
            core::mem::size_of::<Header>() + workers * SOONEST * core::mem::size_of::<Entry>();
        Ok(Zone {
            region: SharedRegion::new_zeroed(len)?,
            workers,
        })
    }

    fn header_ptr(&self) -> *mut Header {
        self.region.as_ptr().cast()
    }

    fn header(&self) -> &Header {
        // SAFETY: the header is at the start of the live mapping.
        unsafe { &*self.header_ptr() }
    }

    /// The table of `worker`, which must be below `workers`.
    fn table(&self, worker: usize) -> &[Entry] {
        assert!(worker < self.workers);
        // SAFETY: the tables follow the header inside the mapping, sized in
        // `new` for one per worker, and `worker` is in bounds.
        unsafe {
            let tables = self.header_ptr().add(1).cast::<Entry>();
            let first = tables.add(worker * SOONEST);
            core::slice::from_raw_parts(first, SOONEST)
        }
    }

    /// Records a certificate seen at `now` on a new connection by worker
    /// `worker`: counted by its remaining validity, and kept in that
    /// worker's table if it is among the soonest to expire. `key`
    /// is called only then, `names` (subject and serial) only for a
    /// certificate the table does not hold yet.
    pub fn record(
        &self,
        worker: usize,
        not_after: i64,
        now: i64,
        key: impl FnOnce() -> Option<[u8; 32]>,
        names: impl FnOnce() -> (String, String),
    ) {
        let h = self.header();
        let remaining = not_after.saturating_sub(now);
        h.buckets[bucket(remaining)].fetch_add(1, Ordering::Relaxed);
        h.remaining_sum.fetch_add(remaining, Ordering::Relaxed);
        if worker >= self.workers {
            return;
        }
        let table = self.table(worker);
        // Only this worker writes its table: its own reads are current.
        let latest = table
            .iter()
            .enumerate()
            .max_by_key(|(_, e)| match e.not_after.load(Ordering::Relaxed) {
                0 => i64::MAX, // a free entry goes first
                t => t,
            })
            .map(|(i, e)| (i, e.not_after.load(Ordering::Relaxed)));
        let Some((latest, latest_not_after)) = latest else {
            return;
        };
        let full = latest_not_after != 0;
        if full && not_after > latest_not_after {
            return;
        }
        let Some(key) = key() else {
            return;
        };
        let same = table.iter().find(|e| {
            e.not_after.load(Ordering::Relaxed) == not_after
                && e.key
                    .iter()
                    .zip(&key)
                    .all(|(a, b)| a.load(Ordering::Relaxed) == *b)
        });
        if let Some(e) = same {
            write(e, |e| e.last_seen.store(now, Ordering::Relaxed));
            return;
        }
        if full && not_after == latest_not_after {
            return; // a tie keeps the certificate seen first
        }
        let (subject, serial) = names();
        write(&table[latest], |e| {
            e.not_after.store(not_after, Ordering::Relaxed);
            e.last_seen.store(now, Ordering::Relaxed);
            for (slot, &b) in e.key.iter().zip(&key) {
                slot.store(b, Ordering::Relaxed);
            }
            store_text(&e.subject, &e.subject_len, &subject);
            store_text(&e.serial, &e.serial_len, &serial);
        });
    }

    /// The counters and the soonest-expiring certificates of all workers.
    pub fn snapshot(&self) -> Snapshot {
        let h = self.header();
        let mut all: Vec<Seen> = Vec::new();
        for worker in 0..self.workers {
            for e in self.table(worker) {
                let Some(seen) = read(e) else { continue };
                match all.iter_mut().find(|s| s.key == seen.key) {
                    Some(s) => s.last_seen = s.last_seen.max(seen.last_seen),
                    None => all.push(seen),
                }
            }
        }
        all.sort_by(|a, b| {
            (a.not_after, &a.subject, &a.serial).cmp(&(b.not_after, &b.subject, &b.serial))
        });
        all.truncate(SOONEST);
        Snapshot {
            buckets: core::array::from_fn(|i| h.buckets[i].load(Ordering::Relaxed)),
            remaining_sum: h.remaining_sum.load(Ordering::Relaxed),
            soonest: all,
        }
    }
}

/// Writes an entry under its sequence lock. Only the entry's worker
/// writes it; a sequence left odd by a worker that died mid-write stays
/// odd while its successor writes.
fn write(e: &Entry, f: impl FnOnce(&Entry)) {
    let seq = e.seq.load(Ordering::Relaxed) | 1;
    e.seq.store(seq, Ordering::Relaxed);
    fence(Ordering::Release);
    f(e);
    e.seq.store(seq + 1, Ordering::Release);
}

/// A consistent copy of an entry; `None` for a free one, or one that is
/// being written through every attempt.
fn read(e: &Entry) -> Option<Seen> {
    for _ in 0..READ_TRIES {
        let before = e.seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let not_after = e.not_after.load(Ordering::Relaxed);
        let seen = Seen {
            key: core::array::from_fn(|i| e.key[i].load(Ordering::Relaxed)),
            not_after,
            last_seen: e.last_seen.load(Ordering::Relaxed),
            subject: load_text(&e.subject, &e.subject_len),
            serial: load_text(&e.serial, &e.serial_len),
        };
        fence(Ordering::Acquire);
        if e.seq.load(Ordering::Relaxed) == before {
            return (not_after != 0).then_some(seen);
        }
    }
    None
}

fn store_text(slots: &[AtomicU8], len: &AtomicU64, text: &str) {
    let mut end = text.len().min(slots.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    for (slot, &b) in slots.iter().zip(&text.as_bytes()[..end]) {
        slot.store(b, Ordering::Relaxed);
    }
    len.store(end as u64, Ordering::Relaxed);
}

fn load_text(slots: &[AtomicU8], len: &AtomicU64) -> String {
    let len = (len.load(Ordering::Relaxed) as usize).min(slots.len());
    let bytes: Vec<u8> = slots[..len]
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    /// Records certificate number `n`.
    fn record(zone: &Zone, worker: usize, not_after: i64, now: i64, n: u8) {
        zone.record(
            worker,
            not_after,
            now,
            || Some([n; 32]),
            || (format!("CN=c{n}"), format!("{n:02X}")),
        );
    }

    #[test]
    fn buckets_by_remaining_validity() {
        assert_eq!(bucket(-5), 0, "expired: the first bucket");
        assert_eq!(bucket(3600), 0);
        assert_eq!(bucket(DAY), 0);
        assert_eq!(bucket(DAY + 1), 1);
        assert_eq!(bucket(3 * DAY), 1);
        assert_eq!(bucket(20 * DAY), 2);
        assert_eq!(bucket(30 * DAY), 2);
        assert_eq!(bucket(30 * DAY + 1), 3);
        assert_eq!(bucket(i64::MAX), 3);

        let zone = Zone::new(2).unwrap();
        for (worker, days) in [(0, 0), (1, 3), (0, 20), (1, 20), (0, 400)] {
            record(&zone, worker, NOW + days * DAY + 3600, NOW, days as u8);
        }
        let s = zone.snapshot();
        assert_eq!(s.buckets, [1, 1, 2, 1]);
        assert_eq!(s.connections(), 5);
        assert_eq!(s.remaining_sum, (443) * DAY + 5 * 3600);
    }

    /// The same certificate on many connections and in several workers is
    /// one entry, last seen when it was last seen anywhere.
    #[test]
    fn distinct_certificates() {
        let zone = Zone::new(3).unwrap();
        record(&zone, 0, NOW + DAY, NOW, 1);
        record(&zone, 0, NOW + DAY, NOW + 5, 1);
        record(&zone, 2, NOW + DAY, NOW + 9, 1);
        record(&zone, 1, NOW + 2 * DAY, NOW + 7, 2);
        let s = zone.snapshot();
        assert_eq!(s.connections(), 4);
        assert_eq!(s.soonest.len(), 2);
        assert_eq!(s.soonest[0].subject, "CN=c1");
        assert_eq!(s.soonest[0].serial, "01");
        assert_eq!(s.soonest[0].last_seen, NOW + 9);
        assert_eq!(s.soonest[0].not_after, NOW + DAY);
        assert_eq!(s.soonest[1].subject, "CN=c2");
    }

    /// Bounded: a full table keeps the soonest, the merged list the
    /// soonest of all workers; `describe` runs only for a certificate
    /// that enters.
    #[test]
    fn bounded_to_the_soonest() {
        let zone = Zone::new(2).unwrap();
        for n in 0..60u8 {
            let worker = usize::from(n % 2);
            // not_after from 60 days down to 1 day: each new one is sooner.
            record(&zone, worker, NOW + i64::from(60 - n) * DAY, NOW, n);
        }
        let mut described = false;
        zone.record(
            0,
            NOW + 100 * DAY,
            NOW,
            || {
                described = true;
                None
            },
            || unreachable!(),
        );
        assert!(!described, "later than a full table: no key");
        // Already held: no names.
        zone.record(0, NOW + 2 * DAY, NOW, || Some([58; 32]), || unreachable!());
        let s = zone.snapshot();
        assert_eq!(s.soonest.len(), SOONEST);
        let days: Vec<i64> = s
            .soonest
            .iter()
            .map(|e| (e.not_after - NOW) / DAY)
            .collect();
        assert_eq!(days, (1..=20).collect::<Vec<_>>());
        assert_eq!(s.connections(), 62);
    }

    #[test]
    fn texts_are_cut_at_a_character_boundary() {
        let zone = Zone::new(1).unwrap();
        let long = "é".repeat(200);
        zone.record(
            0,
            NOW + DAY,
            NOW,
            || Some([7; 32]),
            || (long, "AB".repeat(40)),
        );
        let s = zone.snapshot();
        assert_eq!(s.soonest[0].subject, "é".repeat(128));
        assert_eq!(s.soonest[0].serial.len(), SERIAL_LEN);
    }

    /// A worker out of range (none configured for it) still counts.
    #[test]
    fn unknown_worker_counts_only() {
        let zone = Zone::new(1).unwrap();
        record(&zone, 5, NOW + DAY, NOW, 1);
        let s = zone.snapshot();
        assert_eq!(s.connections(), 1);
        assert!(s.soonest.is_empty());
    }

    /// An entry left mid-write by a worker that died is skipped by readers,
    /// without blocking them, until it is written again.
    #[test]
    fn entry_left_mid_write() {
        let zone = Zone::new(1).unwrap();
        record(&zone, 0, NOW + DAY, NOW, 1);
        let table = zone.table(0);
        let e = table
            .iter()
            .find(|e| e.not_after.load(Ordering::Relaxed) != 0);
        e.unwrap().seq.fetch_add(1, Ordering::Relaxed);
        assert!(zone.snapshot().soonest.is_empty());
        record(&zone, 0, NOW + DAY, NOW + 1, 1);
        let s = zone.snapshot();
        assert_eq!(s.soonest.len(), 1);
        assert_eq!(s.soonest[0].last_seen, NOW + 1);
    }

    /// Readers in other threads never see a torn entry while a worker
    /// rewrites it.
    #[test]
    fn concurrent_reads_are_consistent() {
        let zone = std::sync::Arc::new(Zone::new(1).unwrap());
        let writer = {
            let zone = zone.clone();
            std::thread::spawn(move || {
                for i in 0..300_000i64 {
                    let n = (i % 50) as u8 + 1;
                    // Distinct not_after for each n, so entries get replaced.
                    record(&zone, 0, NOW + i64::from(n) * DAY - i, NOW, n);
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            reads += 1;
            for e in zone.snapshot().soonest {
                let n = e.key[0];
                assert!(e.key.iter().all(|&b| b == n));
                assert_eq!(e.subject, format!("CN=c{n}"));
                assert_eq!(e.serial, format!("{n:02X}"));
            }
        }
        writer.join().unwrap();
    }
}
