//! The CRL URLs discovered from CRL Distribution Points, shared by all
//! processes of one configuration: an anonymous mapping made by the master
//! with the configuration, inherited by the workers and the loader.
//!
//! Two parts:
//! - the registry: the URLs the loader took on, at most `mtls_crl_cdp_max`;
//!   the one at index `j` is published as revocation source `base + j`.
//!   Only the loader (and the master, before any fork) adds URLs. An entry
//!   is written in full before the count that makes it visible is raised,
//!   and never changes after: workers read it without a lock. A loader
//!   killed while writing one left it past the count, where the next one
//!   writes it again.
//! - the queue: the URLs workers saw in certificates and found neither in
//!   the registry nor asked for yet. The loader drains it, checks each URL
//!   again and takes it on, or refuses it.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::io;

use super::queue::{PushError, Queue};
use super::SharedRegion;
use crate::revocation::cdp::{hash, URL_MAX};

/// How many URLs may wait in the queue.
pub const QUEUE_SLOTS: usize = 32;

/// The URLs waiting for the loader.
pub type UrlQueue = Queue<QUEUE_SLOTS, URL_MAX>;

#[repr(C)]
struct Header {
    /// Entries of the registry that are complete.
    count: AtomicU32,
    _pad: AtomicU32,
    /// URLs the loader refused: at the cap, or outside the prefixes.
    refused_cap: AtomicU64,
    refused_prefix: AtomicU64,
    /// URLs a worker could not queue: the queue was full.
    queue_full: AtomicU64,
    queue: UrlQueue,
}

#[repr(C)]
struct Entry {
    hash: AtomicU64,
    len: AtomicU32,
    _pad: AtomicU32,
    bytes: [u8; URL_MAX],
}

/// The counters the status page shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub urls: usize,
    pub refused_cap: u64,
    pub refused_prefix: u64,
    pub queue_full: u64,
}

/// The mapping.
pub struct Registry {
    /// Accessed through atomics, but for the bytes of an entry, written
    /// only before it is counted and read only after, and the queue's
    /// slots, which the queue hands to one process at a time.
    region: SharedRegion,
    max: usize,
}

impl Registry {
    /// A registry of at most `max` URLs.
    pub fn new(max: usize) -> io::Result<Registry> {
        let len = size_of::<Header>() + max.max(1) * size_of::<Entry>();
        // Zero-filled: no entry, every queue slot free.
        Ok(Registry {
            region: SharedRegion::new_zeroed(len)?,
            max,
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn header(&self) -> &Header {
        // SAFETY: the header is at the start of the live mapping.
        unsafe { &*self.region.as_ptr().cast::<Header>() }
    }

    fn entry(&self, j: usize) -> *mut Entry {
        assert!(j < self.max);
        let base = self.region.as_ptr();
        // SAFETY: the entries follow the header, inside the mapping.
        unsafe { base.add(size_of::<Header>()).cast::<Entry>().add(j) }
    }

    /// How many URLs are registered.
    pub fn len(&self) -> usize {
        (self.header().count.load(Ordering::Acquire) as usize).min(self.max)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The URL at `j`, which must be below [`Registry::len`].
    pub fn url(&self, j: usize) -> String {
        let e = self.entry(j);
        // SAFETY: a counted entry, complete and never written again; its
        // bytes are inside the mapping.
        unsafe {
            let len = ((*e).len.load(Ordering::Relaxed) as usize).min(URL_MAX);
            String::from_utf8_lossy(&(&(*e).bytes)[..len]).into_owned()
        }
    }

    /// The index of normalised `url` with hash `h`, if it is registered.
    pub fn find(&self, url: &str, h: u64) -> Option<usize> {
        (0..self.len()).find(|&j| {
            let e = self.entry(j);
            // SAFETY: a counted entry, complete and never written again.
            unsafe {
                (*e).hash.load(Ordering::Relaxed) == h
                    && (*e).len.load(Ordering::Relaxed) as usize == url.len()
                    && (&(*e).bytes)[..url.len()] == *url.as_bytes()
            }
        })
    }

    /// Registers `url` (the loader, or the master before any fork: one
    /// writer at a time). `None` at the cap, or for a URL too long.
    pub fn register(&self, url: &str) -> Option<usize> {
        if let Some(j) = self.find(url, hash(url.as_bytes())) {
            return Some(j);
        }
        let j = self.len();
        if j >= self.max || url.len() > URL_MAX {
            return None;
        }
        let e = self.entry(j);
        // SAFETY: entry `j` is past the count: no reader looks at it, and
        // this is the one writer.
        unsafe {
            core::ptr::copy_nonoverlapping(
                url.as_ptr(),
                core::ptr::addr_of_mut!((*e).bytes).cast::<u8>(),
                url.len(),
            );
            (*e).len.store(url.len() as u32, Ordering::Relaxed);
            (*e).hash.store(hash(url.as_bytes()), Ordering::Relaxed);
        }
        self.header().count.store(j as u32 + 1, Ordering::Release);
        Some(j)
    }

    /// Queues `url` for the loader and wakes it. False where the queue is
    /// full (counted) or the URL too long.
    pub fn push(&self, url: &str) -> bool {
        match self.header().queue.push(url.as_bytes()) {
            Ok(()) => true,
            Err(PushError::Full) => {
                self.header().queue_full.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(PushError::TooLarge) => false,
        }
    }

    /// Takes every queued URL (the loader only).
    pub fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.header()
            .queue
            .drain(|bytes| out.push(String::from_utf8_lossy(bytes).into_owned()));
        out
    }

    /// The queue itself, for the loader to sleep on and be woken by.
    pub fn queue(&self) -> &UrlQueue {
        &self.header().queue
    }

    pub fn refused(&self, at_cap: bool) {
        let h = self.header();
        let counter = if at_cap {
            &h.refused_cap
        } else {
            &h.refused_prefix
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        let h = self.header();
        Counts {
            urls: self.len(),
            refused_cap: h.refused_cap.load(Ordering::Relaxed),
            refused_prefix: h.refused_prefix.load(Ordering::Relaxed),
            queue_full: h.queue_full.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Registry, QUEUE_SLOTS};
    use crate::revocation::cdp::{hash, URL_MAX};

    #[test]
    fn registry_and_cap() {
        let r = Registry::new(2).unwrap();
        let (a, b, c) = ("http://a/1.crl", "http://a/2.crl", "http://a/3.crl");
        assert_eq!(r.find(a, hash(a.as_bytes())), None);
        assert_eq!(r.register(a), Some(0));
        assert_eq!(r.register(a), Some(0), "once");
        assert_eq!(r.register(b), Some(1));
        assert_eq!(r.register(c), None, "at the cap");
        assert_eq!(r.len(), 2);
        assert_eq!(r.url(1), b);
        assert_eq!(r.find(b, hash(b.as_bytes())), Some(1));
        assert_eq!(r.find(b, hash(a.as_bytes())), None, "hash compared first");
        assert_eq!(r.find("http://a/1.crlx", hash(b"http://a/1.crlx")), None);
        r.refused(true);
        r.refused(false);
        r.refused(false);
        let counts = r.counts();
        assert_eq!(
            (counts.urls, counts.refused_cap, counts.refused_prefix),
            (2, 1, 2)
        );
    }

    /// An entry written past the count by a loader that died is invisible,
    /// and the next registration writes over it.
    #[test]
    fn half_written_entry_unseen() {
        let r = Registry::new(4).unwrap();
        r.register("http://a/1.crl");
        // SAFETY: test only; entry 1 is past the count.
        unsafe {
            let e = r.entry(1);
            (&mut (*e).bytes)[..5].copy_from_slice(b"junk!");
            (*e).len.store(5, core::sync::atomic::Ordering::Relaxed);
        }
        assert_eq!(r.len(), 1);
        assert_eq!(r.find("junk!", hash(b"junk!")), None);
        assert_eq!(r.register("http://a/2.crl"), Some(1));
        assert_eq!(r.url(1), "http://a/2.crl");
    }

    /// URLs go through the shared queue whole; a full queue is counted, a
    /// URL too long for a slot is not.
    #[test]
    fn queue() {
        let r = Registry::new(4).unwrap();
        let seen = r.queue().pushed();
        assert!(r.push("http://a/1.crl"));
        assert!(r.push("http://a/2.crl"));
        assert_ne!(r.queue().pushed(), seen);
        let mut got = r.drain();
        got.sort();
        assert_eq!(got, ["http://a/1.crl", "http://a/2.crl"]);
        assert!(r.drain().is_empty());
        for n in 0..QUEUE_SLOTS {
            assert!(r.push(&format!("http://a/{n}")));
        }
        assert!(!r.push("http://a/full"));
        assert_eq!(r.counts().queue_full, 1);
        assert_eq!(r.drain().len(), QUEUE_SLOTS);
        assert!(!r.push(&format!("http://a/{}", "x".repeat(URL_MAX))));
        assert_eq!(r.counts().queue_full, 1);
    }
}
