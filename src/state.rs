//! Revocation data shared by all processes of one nginx instance.
//!
//! Two pieces:
//! - a control block, an anonymous shared mapping that the master creates
//!   with the configuration, so every worker forked for that configuration
//!   inherits it: per source a generation counter, load status and text
//!   for the status page, and the request counters;
//! - the tables themselves, one immutable file per source and generation
//!   under /dev/shm, written by the one process that loads (the master at
//!   start and reload, then the loader process) and mapped read-only by
//!   every worker. The kernel holds one copy, however many workers map it.
//!
//! Publishing a table is: write a temporary file, rename it into place, then
//! bump the generation (release). A worker that sees a new generation
//! (acquire) maps the new file and drops the old mapping; it never takes a
//! lock, and never sees a half-written table.

use core::sync::atomic::{fence, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::loader::Loaded;
use crate::revocation::Table;

pub mod cdp;
pub mod fetch;
pub mod queue;
mod region;

pub use fetch::FetchStatus;
pub(crate) use region::SharedRegion;

const SHM_DIR: &str = "/dev/shm";
/// Room for an error message; longer ones are cut (at a character).
const ERROR_LEN: usize = 1024;

/// How long a reader waits for a store in progress, in checks of the
/// sequence number, before it takes the text as it is: a writer killed
/// between its two steps leaves the sequence odd until the next store.
const READ_SPINS: u32 = 100_000;

/// Short text written by one process at a time and read by any, under a
/// sequence lock: readers retry while the sequence number is odd or changed
/// under them, a bounded number of times.
#[repr(C)]
struct SharedText<const N: usize> {
    seq: AtomicU64,
    len: AtomicU64,
    bytes: [AtomicU8; N],
}

#[cfg(test)]
pub(crate) mod fault {
    //! A test-only hook: the process storing a text kills itself between
    //! the two steps of the sequence lock, as a loader killed there would.
    pub static DIE_IN_STORE: core::sync::atomic::AtomicBool =
        core::sync::atomic::AtomicBool::new(false);
}

impl<const N: usize> SharedText<N> {
    fn store(&self, text: &str) {
        let mut end = text.len().min(N);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // Odd whatever the previous writer left: one that died between its
        // two steps left an odd number, and counting on from it would make
        // every later text look in progress.
        let seq = self.seq.load(Ordering::Relaxed);
        let writing = if seq % 2 == 1 { seq + 2 } else { seq + 1 };
        self.seq.store(writing, Ordering::Relaxed);
        fence(Ordering::Release);
        #[cfg(test)]
        if fault::DIE_IN_STORE.load(Ordering::Relaxed) {
            // SAFETY: plain kill(2) of this very process.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        for (slot, &b) in self.bytes.iter().zip(&text.as_bytes()[..end]) {
            slot.store(b, Ordering::Relaxed);
        }
        self.len.store(end as u64, Ordering::Relaxed);
        self.seq.store(writing + 1, Ordering::Release);
    }

    fn load(&self) -> String {
        let mut spins = 0;
        loop {
            let before = self.seq.load(Ordering::Acquire);
            let settled = before % 2 == 0;
            if settled || spins >= READ_SPINS {
                let len = (self.len.load(Ordering::Relaxed) as usize).min(N);
                let bytes: Vec<u8> = self.bytes[..len]
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect();
                fence(Ordering::Acquire);
                // Past the wait, the text may be torn: it is only shown.
                if (settled && self.seq.load(Ordering::Relaxed) == before) || spins >= READ_SPINS {
                    return String::from_utf8_lossy(&bytes).into_owned();
                }
            }
            spins += 1;
            std::hint::spin_loop();
        }
    }
}

/// The shared status of one revocation source.
#[repr(C)]
pub struct Slot {
    /// 0 until a table is published.
    generation: AtomicU64,
    /// Unix time of the last successful load, of the last error.
    loaded_at: AtomicI64,
    error_at: AtomicI64,
    entries: AtomicU64,
    /// Set while the loader reads a changed file; the data in force meanwhile
    /// is the previous generation.
    loading: AtomicU8,
    /// How long the last successful load took, read to publish.
    load_ms: AtomicU64,
    error: SharedText<ERROR_LEN>,
    /// How the last fetches of a URL source went.
    pub fetch: FetchStatus,
}

impl Slot {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn loaded_at(&self) -> i64 {
        self.loaded_at.load(Ordering::Relaxed)
    }

    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn loading(&self) -> bool {
        self.loading.load(Ordering::Relaxed) != 0
    }

    pub fn set_loading(&self, loading: bool) {
        self.loading.store(u8::from(loading), Ordering::Relaxed);
    }

    pub fn load_ms(&self) -> u64 {
        self.load_ms.load(Ordering::Relaxed)
    }

    /// The last error and when, if the last attempt failed or an earlier
    /// one did and nothing was loaded since.
    pub fn error(&self) -> Option<(i64, String)> {
        let at = self.error_at.load(Ordering::Acquire);
        (at != 0).then(|| (at, self.error.load()))
    }

    pub fn clear_error(&self) {
        self.error_at.store(0, Ordering::Release);
    }

    pub fn set_error(&self, now: i64, message: &str) {
        self.error.store(message);
        self.error_at.store(now, Ordering::Release);
    }
}

/// Counters of decisions, summed over all workers.
pub const COUNTERS: usize = 16;

#[repr(C)]
struct Control {
    counters: [AtomicU64; COUNTERS],
    /// Counts the tables published for any source: a connection's last
    /// decision holds while it is unchanged.
    epoch: AtomicU64,
    // `Slot`s follow.
}

/// The control block of one configuration and the names of its tables.
pub struct Shared {
    /// The control block, then the slots; accessed only through atomics.
    region: SharedRegion,
    sources: usize,
    /// Names this configuration's files in /dev/shm.
    token: String,
}

impl Shared {
    pub fn new(sources: usize) -> io::Result<Shared> {
        let len = core::mem::size_of::<Control>() + sources * core::mem::size_of::<Slot>();
        let region = SharedRegion::new_zeroed(len)?;
        let mut random = [0u8; 8];
        openssl::rand::rand_bytes(&mut random).map_err(io::Error::other)?;
        Ok(Shared {
            region,
            sources,
            token: format!(
                "ngx_mtls.{}.{:016x}",
                std::process::id(),
                u64::from_le_bytes(random)
            ),
        })
    }

    fn control(&self) -> *mut Control {
        self.region.as_ptr().cast()
    }

    pub fn slot(&self, source: usize) -> &Slot {
        assert!(source < self.sources);
        // SAFETY: the slots follow the control header inside the mapping,
        // sized in `new` for `sources` of them, and `source` is in bounds.
        unsafe { &*self.control().add(1).cast::<Slot>().add(source) }
    }

    pub fn counter(&self, index: usize) -> &AtomicU64 {
        // SAFETY: the header is at the start of the live mapping.
        unsafe { &(*self.control()).counters[index % COUNTERS] }
    }

    /// Changes whenever a table is published, after its generation.
    pub fn epoch(&self) -> u64 {
        // SAFETY: the header is at the start of the live mapping.
        unsafe { (*self.control()).epoch.load(Ordering::Acquire) }
    }

    fn table_path(&self, source: usize, generation: u64) -> PathBuf {
        PathBuf::from(format!("{SHM_DIR}/{}.{source}.{generation}", self.token))
    }

    /// Makes `table` the data of `source`: written to a new file, renamed
    /// into place, then announced by a new generation. The previous file is
    /// removed; processes that mapped it keep their mapping.
    pub fn publish(&self, source: usize, loaded: &Loaded, now: i64) -> io::Result<()> {
        let table = &loaded.table[..];
        let slot = self.slot(source);
        let old = slot.generation.load(Ordering::Acquire);
        let new = old + 1;
        let path = self.table_path(source, new);
        let tmp = path.with_extension(format!("{new}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        if let Err(e) = file.write_all(table) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // The summary goes first: whoever sees the new table finds it.
        std::fs::write(summary_path(&path), &loaded.summary)?;
        std::fs::rename(&tmp, &path)?;
        slot.load_ms.store(loaded.read_ms, Ordering::Relaxed);
        slot.entries.store(
            Table::open(table).map_or(0, |t| t.len() as u64),
            Ordering::Relaxed,
        );
        slot.loaded_at.store(now, Ordering::Relaxed);
        slot.error_at.store(0, Ordering::Release);
        // Done loading once the new generation is visible: whoever sees it
        // must not see the load still running (the loader would clear the
        // flag only after dropping the parsed data, which takes a while).
        slot.set_loading(false);
        slot.generation.store(new, Ordering::Release);
        // SAFETY: the header is at the start of the live mapping.
        unsafe { (*self.control()).epoch.fetch_add(1, Ordering::Release) };
        if old != 0 {
            let old = self.table_path(source, old);
            let _ = std::fs::remove_file(summary_path(&old));
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    }

    /// What the status page shows of the data in force of `source`: one
    /// line per CRL, its fields separated by tabs (see [`Loaded`]),
    /// however many. Read from a file in
    /// /dev/shm, that is from memory.
    pub fn summary(&self, source: usize) -> String {
        let generation = self.slot(source).generation();
        if generation == 0 {
            return String::new();
        }
        // A newer table may have replaced this one meanwhile: then its own
        // summary is there.
        for generation in [generation, self.slot(source).generation()] {
            if let Ok(text) = std::fs::read(summary_path(&self.table_path(source, generation))) {
                return String::from_utf8_lossy(&text).into_owned();
            }
        }
        String::new()
    }

    /// Removes the current files; processes that mapped them keep them.
    pub fn remove_files(&self) {
        for source in 0..self.sources {
            let generation = self.slot(source).generation();
            if generation != 0 {
                let path = self.table_path(source, generation);
                let _ = std::fs::remove_file(summary_path(&path));
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn map(&self, source: usize, generation: u64) -> io::Result<Mapping> {
        let file = File::open(self.table_path(source, generation))?;
        Mapping::new(&file, generation)
    }
}

/// The summary beside a table file.
fn summary_path(table: &std::path::Path) -> PathBuf {
    let mut name = table.as_os_str().to_owned();
    name.push(".summary");
    PathBuf::from(name)
}

/// A table file mapped read-only, with its table checked once.
struct Mapping {
    /// Borrows `region`: handed out only by [`Mapping::table`], which ties
    /// it to the mapping.
    table: Table<'static>,
    generation: u64,
    /// Kept for its drop, which unmaps what `table` borrows.
    _region: Region,
}

/// Memory mapped from a file, unmapped on drop.
struct Region {
    ptr: *const u8,
    len: usize,
}

impl Mapping {
    fn new(file: &File, generation: u64) -> io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            return Err(io::Error::other("empty table file"));
        }
        // SAFETY: a read-only shared mapping of a file that is never
        // written again after it was renamed into place.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let region = Region {
            ptr: ptr.cast(),
            len,
        };
        // SAFETY: `ptr` maps `len` readable bytes until `region` is dropped,
        // which is when the mapping that keeps this table is.
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(region.ptr, region.len) };
        // Checked once here, so that look-ups can trust the bucket index.
        let table = Table::new(bytes).map_err(io::Error::other)?;
        Ok(Mapping {
            table,
            generation,
            _region: region,
        })
    }

    fn table(&self) -> Table<'_> {
        self.table
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Mapping::new`; tables borrowed from
        // it do not outlive the `with_table` call that lent them.
        unsafe { libc::munmap(self.ptr as *mut _, self.len) };
    }
}

thread_local! {
    /// This worker's mappings, by (control block, source).
    static MAPPINGS: RefCell<Vec<(usize, usize, Mapping)>> = const { RefCell::new(Vec::new()) };
}

impl Shared {
    /// Calls `f` with the current table of `source`, or `None` while no
    /// valid table was ever published. Maps a newer generation first.
    pub fn with_table<R>(&self, source: usize, f: impl FnOnce(Option<Table<'_>>) -> R) -> R {
        let key = (self.control() as usize, source);
        MAPPINGS.with(|cell| {
            let mut maps = cell.borrow_mut();
            let current = self.slot(source).generation();
            let mut pos = maps.iter().position(|(c, s, _)| (*c, *s) == key);
            let stale = !matches!(pos, Some(i) if maps[i].2.generation == current);
            if stale && current != 0 {
                // A newer table may replace this one between our reading the
                // generation and opening its file: then keep what we have.
                if let Ok(mapping) = self.map(source, current) {
                    match pos {
                        Some(i) => maps[i].2 = mapping,
                        None => {
                            maps.push((key.0, key.1, mapping));
                            pos = Some(maps.len() - 1);
                        }
                    }
                }
            }
            f(pos.map(|i| maps[i].2.table()))
        })
    }

    /// Whether this thread's last `with_table` of `source` used its current
    /// table: not where mapping a newer one failed and the one before stayed
    /// in use.
    pub fn maps_current(&self, source: usize) -> bool {
        let key = (self.control() as usize, source);
        let current = self.slot(source).generation();
        MAPPINGS.with(|cell| {
            cell.borrow()
                .iter()
                .any(|(c, s, m)| (*c, *s) == key && m.generation == current)
        })
    }

    /// Drops this worker's mappings of this control block.
    pub fn unmap_all(&self) {
        let control = self.control() as usize;
        MAPPINGS.with(|cell| cell.borrow_mut().retain(|(c, _, _)| *c != control));
    }
}

#[cfg(test)]
mod tests {
    use super::Shared;
    use crate::loader::Loaded;
    use crate::revocation::{denylist, Key};

    fn loaded(text: &str) -> Loaded {
        Loaded {
            table: denylist::parse(text.as_bytes(), "test").unwrap().table,
            summary: String::new(),
            read_ms: 0,
        }
    }

    /// What the reuse of a connection's decision relies on: the epoch moves
    /// with every table published, and a worker knows whether it looked at
    /// the current table.
    #[test]
    fn epoch_and_current_mapping() {
        let shared = Shared::new(2).unwrap();
        let serial = Key::serial(&[0x10, 0x02]);
        assert_eq!(shared.epoch(), 0);
        assert!(shared.with_table(0, |t| t.is_none()));
        assert!(!shared.maps_current(0));

        shared.publish(0, &loaded("1002\n"), 0).unwrap();
        assert_eq!(shared.epoch(), 1);
        assert!(!shared.maps_current(0), "not mapped yet");
        assert!(shared.with_table(0, |t| t.unwrap().holds(serial)));
        assert!(shared.maps_current(0));

        shared.publish(1, &loaded("1003\n"), 0).unwrap();
        assert_eq!(shared.epoch(), 2, "any source moves it");
        assert!(shared.maps_current(0));

        shared.publish(0, &loaded("1004\n"), 0).unwrap();
        assert_eq!(shared.epoch(), 3);
        assert!(!shared.maps_current(0), "a newer table is not mapped yet");
        assert!(!shared.with_table(0, |t| t.unwrap().holds(serial)));
        assert!(shared.maps_current(0));

        shared.remove_files();
        shared.unmap_all();
    }

    /// A summary longer than the old 4 KiB text, 200 CRLs' worth, comes back
    /// whole.
    #[test]
    fn summary_not_limited() {
        let shared = Shared::new(1).unwrap();
        let mut l = loaded("1002\n");
        l.summary = (0..200)
            .map(|n| format!("CN=Issuer {n}\t1\t2\t{n}\t0\n"))
            .collect();
        shared.publish(0, &l, 0).unwrap();
        assert_eq!(shared.summary(0), l.summary);
        assert_eq!(shared.summary(0).lines().count(), 200);
        shared.publish(0, &loaded("1003\n"), 0).unwrap();
        assert_eq!(shared.summary(0), "");
        shared.remove_files();
        shared.unmap_all();
    }

    /// A loader killed between the two steps of a text's sequence lock
    /// neither hangs a reader nor spoils the texts stored after it.
    #[test]
    fn writer_killed_in_store() {
        use crate::loader::process::spawn;
        use core::sync::atomic::Ordering;
        use std::time::{Duration, Instant};

        let shared = std::sync::Arc::new(Shared::new(1).unwrap());
        let slot = shared.slot(0);
        slot.set_error(1, "before");
        let writer = shared.clone();
        // It dies a moment after it started, once `spawn` has its pid.
        let mut child = spawn(move |_link| {
            std::thread::sleep(Duration::from_millis(200));
            super::fault::DIE_IN_STORE.store(true, Ordering::Relaxed);
            writer.slot(0).set_error(2, "never finished");
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.receive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!child.receive(), "the loader died");
        let seq = slot.error.seq.load(Ordering::Relaxed);
        assert_eq!(seq % 2, 1, "left in the middle of a store");

        let start = Instant::now();
        let (_, text) = slot.error().unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "reader waited"
        );
        assert_eq!(text, "before");

        // The next loader's texts read back at once, and whole.
        let writer = shared.clone();
        let mut child = spawn(move |_link| {
            std::thread::sleep(Duration::from_millis(200));
            writer.slot(0).set_error(3, "after");
        })
        .unwrap();
        while child.receive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(slot.error.seq.load(Ordering::Relaxed) % 2, 0);
        let start = Instant::now();
        assert_eq!(slot.error(), Some((3, "after".to_owned())));
        assert!(start.elapsed() < Duration::from_millis(50));
        slot.set_error(4, "and again");
        assert_eq!(slot.error(), Some((4, "and again".to_owned())));
    }
}
