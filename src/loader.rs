//! Loading revocation sources: once at configuration time (in the master,
//! where a bad file is an `[emerg]`), then by a thread of worker 0 that
//! checks every source each `mtls_reload_interval` and re-reads the files
//! that changed. The thread never touches nginx: it publishes tables through
//! [`Shared`] and leaves log lines for worker 0's event loop to write.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::x509::X509;

use crate::identity::rfc3339;
use crate::revocation::{crl, denylist, Kind, Table};
use crate::state::Shared;

/// One `mtls_crl` or `mtls_deny_list` file.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: PathBuf,
    pub kind: Kind,
    /// Missing or invalid at start is not an error: the requests this
    /// source guards are denied until a valid file arrives.
    pub optional: bool,
    /// The smallest `mtls_crl_grace` among the users of this CRL, seconds.
    pub grace: i64,
}

impl Source {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Crl => "crl",
            Kind::DenyList => "deny_list",
        }
    }
}

/// What identifies a file's content without reading it: a change of any
/// field means the file was rewritten or replaced (also through a symbolic
/// link swapped atomically, as Kubernetes does for mounted secrets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileId {
    pub fn of(source: &Source) -> std::io::Result<FileId> {
        let m = std::fs::metadata(&source.path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A source read into a table, with its status summary: one line per CRL,
/// `issuer \t thisUpdate \t nextUpdate \t number \t entries`.
pub struct Loaded {
    pub table: Vec<u8>,
    pub summary: String,
    /// How long reading and checking the file took.
    pub read_ms: u64,
}

/// Reads `source`. `in_force` is the table published before, if any: a CRL
/// older than the one in force is refused.
pub fn read(source: &Source, cas: &[X509], in_force: Option<&Table<'_>>) -> Result<Loaded, String> {
    let start = Instant::now();
    let (table, summary) = match source.kind {
        Kind::Crl => {
            let loaded = crl::load(&source.path, cas).map_err(|e| e.to_string())?;
            if let Some(old) = in_force {
                loaded.check_newer_than(old).map_err(|e| e.to_string())?;
            }
            let mut summary = String::new();
            for c in &loaded.crls {
                let _ = writeln!(
                    summary,
                    "{}\t{}\t{}\t{}\t{}",
                    c.issuer.replace(['\t', '\n'], " "),
                    c.info.this_update,
                    c.info.next_update,
                    c.info.number.map(|n| n.to_string()).unwrap_or_default(),
                    c.info.entries
                );
            }
            (loaded.table, summary)
        }
        Kind::DenyList => {
            let loaded = denylist::load(&source.path).map_err(|e| e.to_string())?;
            (loaded.table, String::new())
        }
    };
    Ok(Loaded {
        table,
        summary,
        read_ms: start.elapsed().as_millis() as u64,
    })
}

/// Returns the heap that parsing a large file left free to the system.
/// OpenSSL and the parser allocate per entry; freed, that memory would stay
/// in the process (and, in the master, in every worker it forks).
pub fn release_memory() {
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks,
    // and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A log line left by the loader thread for worker 0's event loop.
pub struct Message {
    pub error: bool,
    pub text: String,
}

/// What worker 0 shares with its loader thread.
pub struct Loader {
    pub sources: Vec<Source>,
    pub cas: Vec<X509>,
    pub shared: Arc<Shared>,
    pub interval: Duration,
    /// File identities at configuration time, so unchanged files are not
    /// read again when the thread starts.
    pub loaded: Vec<Option<FileId>>,
    pub stop: AtomicBool,
    pub messages: Mutex<Vec<Message>>,
}

impl Loader {
    fn say(&self, error: bool, text: String) {
        if let Ok(mut m) = self.messages.lock() {
            m.push(Message { error, text });
        }
    }

    pub fn take_messages(&self) -> Vec<Message> {
        self.messages
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    /// The thread's body: check every source each interval until stopped.
    pub fn run(self: Arc<Self>) {
        let mut seen = self.loaded.clone();
        // The identity of a file that failed, so it is reported once.
        let mut failed: Vec<Option<Result<FileId, String>>> = vec![None; self.sources.len()];
        while !self.stop.load(Ordering::Relaxed) {
            for (i, source) in self.sources.iter().enumerate() {
                let id = FileId::of(source).map_err(|e| e.to_string());
                if id.as_ref().ok() == seen[i].as_ref() || failed[i].as_ref() == Some(&id) {
                    continue;
                }
                match &id {
                    Ok(id) => match self.reload(i, source) {
                        Ok(()) => {
                            seen[i] = Some(*id);
                            failed[i] = None;
                        }
                        Err(()) => failed[i] = Some(Ok(*id)),
                    },
                    Err(e) => {
                        let text = format!("cannot read \"{}\": {e}", source.path.display());
                        self.shared.slot(i).set_error(now(), &text);
                        self.say(true, format!("{text}, previous data stays in force"));
                        failed[i] = Some(Err(e.clone()));
                    }
                }
            }
            self.sleep();
        }
    }

    fn reload(&self, i: usize, source: &Source) -> Result<(), ()> {
        let slot = self.shared.slot(i);
        slot.set_loading(true);
        let result = self
            .shared
            .with_table(i, |old| read(source, &self.cas, old.as_ref()));
        let published = result.and_then(|loaded| {
            self.shared
                .publish(i, &loaded, now())
                .map(|()| loaded.read_ms)
                .map_err(|e| format!("cannot publish \"{}\": {e}", source.path.display()))
        });
        slot.set_loading(false);
        release_memory();
        match published {
            Ok(ms) => {
                self.say(
                    false,
                    format!(
                        "reloaded \"{}\", {} entries in {ms} ms",
                        source.path.display(),
                        slot.entries()
                    ),
                );
                Ok(())
            }
            Err(e) => {
                self.shared.slot(i).set_error(now(), &e);
                self.say(true, format!("{e}, previous data stays in force"));
                Err(())
            }
        }
    }

    fn sleep(&self) {
        let step = Duration::from_millis(50);
        let mut left = self.interval;
        while !left.is_zero() && !self.stop.load(Ordering::Relaxed) {
            let d = left.min(step);
            std::thread::sleep(d);
            left -= d;
        }
    }

    /// Warnings about CRLs past their nextUpdate; worker 0 logs them once
    /// per interval.
    pub fn staleness(&self) -> Vec<String> {
        let now = now();
        let mut out = Vec::new();
        for (i, source) in self.sources.iter().enumerate() {
            if source.kind != Kind::Crl {
                continue;
            }
            self.shared.with_table(i, |table| {
                for info in table.iter().flat_map(|t| t.issuers()) {
                    if now <= info.next_update {
                        continue;
                    }
                    let state = if now <= info.next_update.saturating_add(source.grace) {
                        "within \"mtls_crl_grace\", certificates of its issuer still pass"
                    } else {
                        "certificates of its issuer are denied"
                    };
                    out.push(format!(
                        "CRL in \"{}\" is past its nextUpdate {}, {state}",
                        source.path.display(),
                        rfc3339(info.next_update)
                    ));
                }
            });
        }
        out
    }
}
