//! How the fetches of a URL source went, for the status page: written by
//! the loader process after each attempt, read by any worker.

use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::SharedText;

/// Room for an ETag and a Last-Modified date.
const VALIDATORS_LEN: usize = 512;

#[repr(C)]
pub struct FetchStatus {
    /// Unix time of the last attempt, 0 before the first.
    last_fetch: AtomicI64,
    /// The HTTP status of the last attempt, 0 where none came.
    http_status: AtomicU64,
    /// The size of the last body received.
    bytes: AtomicU64,
    next_fetch: AtomicI64,
    failures: AtomicU64,
    /// `ETag \n Last-Modified` of the copy in force.
    validators: SharedText<VALIDATORS_LEN>,
}

/// One attempt, as the loader records it.
pub struct Attempt<'a> {
    pub at: i64,
    pub http_status: u16,
    /// The body's size, when one came.
    pub bytes: Option<u64>,
    pub next: i64,
    pub failures: u64,
    /// The validators of the copy in force, when they changed.
    pub validators: Option<(&'a str, &'a str)>,
}

/// What the status page shows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FetchView {
    pub last_fetch: i64,
    pub http_status: u16,
    pub bytes: u64,
    pub next_fetch: i64,
    pub failures: u64,
    pub etag: String,
    pub last_modified: String,
}

impl FetchStatus {
    pub fn record(&self, attempt: &Attempt<'_>) {
        if let Some((etag, last_modified)) = attempt.validators {
            self.validators
                .store(&format!("{}\n{}", one_line(etag), one_line(last_modified)));
        }
        if let Some(bytes) = attempt.bytes {
            self.bytes.store(bytes, Ordering::Relaxed);
        }
        self.http_status
            .store(u64::from(attempt.http_status), Ordering::Relaxed);
        self.next_fetch.store(attempt.next, Ordering::Relaxed);
        self.failures.store(attempt.failures, Ordering::Relaxed);
        self.last_fetch.store(attempt.at, Ordering::Release);
    }

    pub fn view(&self) -> FetchView {
        let last_fetch = self.last_fetch.load(Ordering::Acquire);
        let validators = self.validators.load();
        let (etag, last_modified) = validators.split_once('\n').unwrap_or_default();
        FetchView {
            last_fetch,
            http_status: self.http_status.load(Ordering::Relaxed) as u16,
            bytes: self.bytes.load(Ordering::Relaxed),
            next_fetch: self.next_fetch.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            etag: etag.to_owned(),
            last_modified: last_modified.to_owned(),
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}
