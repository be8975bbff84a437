//! Loading revocation sources: once at configuration time (in the master,
//! where a bad file is an `[emerg]`), then by a process forked from worker 0
//! ([`process`]) that checks every source each `mtls_reload_interval` and
//! re-reads the files that changed. The loader never touches nginx: it
//! publishes tables through [`Shared`] and sends log lines for worker 0's
//! event loop to write.

pub mod cdp;
pub mod http;
pub mod ocsp;
pub mod process;
pub mod url;

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::x509::X509;

use crate::identity::rfc3339;
use crate::revocation::{crl, denylist, Kind, Table};
use crate::state::Shared;

use self::http::Validators;
use self::process::Link;
use self::url::UrlSource;
use crate::state::fetch::Attempt;

/// One `mtls_crl` or `mtls_deny_list` file or URL.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file; for a URL, the copy of it kept on disk.
    pub path: PathBuf,
    /// Where the data comes from when it is fetched.
    pub url: Option<Arc<url::UrlSource>>,
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

    /// The source as log lines and the status page name it.
    pub fn name(&self) -> String {
        match &self.url {
            Some(u) => u.url.clone(),
            None => self.path.display().to_string(),
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

    /// The identity as one line of text, for [`Loader::remember`].
    fn encode(&self) -> String {
        format!("{} {} {} {}", self.dev, self.ino, self.size, self.mtime_ns)
    }

    fn decode(text: &str) -> Option<FileId> {
        let mut fields = text.split(' ');
        let id = FileId {
            dev: fields.next()?.parse().ok()?,
            ino: fields.next()?.parse().ok()?,
            size: fields.next()?.parse().ok()?,
            mtime_ns: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(id)
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

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Crl(#[from] crl::CrlError),
    #[error(transparent)]
    DenyList(#[from] denylist::DenyListError),
    #[error("cannot publish \"{path}\": {source}")]
    Publish {
        path: String,
        source: std::io::Error,
    },
    /// A URL source that could neither be fetched nor read from its copy.
    #[error("{0}")]
    Url(String),
}

/// Reads `source`'s file. `in_force` is the table published before, if
/// any: a CRL older than the one in force is refused.
pub fn read(
    source: &Source,
    cas: &[X509],
    in_force: Option<&Table<'_>>,
) -> Result<Loaded, LoadError> {
    let file = source.path.display().to_string();
    let data = std::fs::read(&source.path).map_err(|e| -> LoadError {
        match source.kind {
            Kind::Crl => crl::CrlError::Read {
                file: file.clone(),
                source: e,
            }
            .into(),
            Kind::DenyList => denylist::DenyListError::Read {
                file: file.clone(),
                source: e,
            }
            .into(),
        }
    })?;
    read_bytes(source, &data, &file, cas, in_force)
}

/// Checks `data`, read from `name`, as `source`'s data: a CRL exactly as
/// from a file, whether it came from a file or a URL.
pub fn read_bytes(
    source: &Source,
    data: &[u8],
    name: &str,
    cas: &[X509],
    in_force: Option<&Table<'_>>,
) -> Result<Loaded, LoadError> {
    let start = Instant::now();
    let (table, summary) = match source.kind {
        Kind::Crl => {
            let loaded = crl::parse(data, name, cas)?;
            if let Some(old) = in_force {
                loaded.check_newer_than(old)?;
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
            let loaded = denylist::parse(data, name)?;
            (loaded.table, String::new())
        }
    };
    Ok(Loaded {
        table,
        summary,
        read_ms: start.elapsed().as_millis() as u64,
    })
}

/// Returns the heap that parsing a large file, or a configuration with many
/// rules, left free to the system, and merges what stays free. OpenSSL and
/// the parsers allocate per entry; freed, that memory would stay in the
/// process (and, in the master, in every worker it forks), and scattered
/// free chunks spread the handshakes' own allocations over more memory: a
/// worker forked after 11,000 rule directives without this spent about
/// 10 us more per TLS handshake.
pub fn release_memory() {
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks,
    // and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What the loader process checks, and how often. Worker 0 keeps a copy:
/// a new loader process starts from it, and the staleness warnings are
/// computed from it.
pub struct Loader {
    pub sources: Vec<Source>,
    pub cas: Vec<X509>,
    pub shared: Arc<Shared>,
    pub interval: Duration,
    /// File identities at configuration time, so unchanged files are not
    /// read again when the loader starts.
    pub loaded: Vec<Option<FileId>>,
}

/// The loader's state of one URL source.
struct Fetching {
    /// Made at the first fetch: a CA file that cannot be read then is a
    /// failure like any other, retried.
    client: Option<http::Client>,
    /// Those of the copy in force.
    validators: Validators,
    next: Instant,
    failures: u64,
}

/// How one attempt to reload a source ended.
enum Reload {
    Published,
    Failed,
    /// Worker 0 went away meanwhile: nothing was published.
    Abandoned,
}

impl Loader {
    /// Takes note of a file that the loader process published, from its
    /// [`Link::keep`] line: a loader started after it does not read that
    /// file again (nor log it again) unless it changes once more.
    pub fn remember(&mut self, line: &str) {
        let Some((i, id)) = line.split_once(' ') else {
            return;
        };
        if let (Ok(i), Some(id)) = (i.parse::<usize>(), FileId::decode(id)) {
            if let Some(loaded) = self.loaded.get_mut(i) {
                *loaded = Some(id);
            }
        }
    }

    /// The loader process's body: check every source each interval until
    /// worker 0 closes its end of `link`.
    pub fn run(&self, link: &Link) {
        let mut seen = self.loaded.clone();
        // The identity of a file that failed, so it is reported once.
        let mut failed: Vec<Option<Result<FileId, String>>> = vec![None; self.sources.len()];
        let mut fetching: Vec<Option<Fetching>> = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let u = s.url.as_ref()?;
                let slot = self.shared.slot(i);
                // What the configuration read is fresh, unless it failed.
                let fresh = slot.generation() != 0 && slot.error().is_none();
                Some(Fetching {
                    client: None,
                    validators: url::kept_validators(&s.path, &u.url),
                    next: if fresh {
                        Instant::now() + u.interval
                    } else {
                        Instant::now()
                    },
                    failures: 0,
                })
            })
            .collect();
        loop {
            for (i, source) in self.sources.iter().enumerate() {
                if let (Some(u), Some(f)) = (&source.url, fetching[i].as_mut()) {
                    if Instant::now() < f.next {
                        continue;
                    }
                    if !link.open() {
                        return;
                    }
                    if let Reload::Abandoned = self.fetch(i, source, u, f, link) {
                        return;
                    }
                    continue;
                }
                let id = FileId::of(source).map_err(|e| e.to_string());
                if id.as_ref().ok() == seen[i].as_ref() || failed[i].as_ref() == Some(&id) {
                    continue;
                }
                if !link.open() {
                    return;
                }
                match &id {
                    Ok(id) => match self.reload(i, source, link) {
                        Reload::Published => {
                            seen[i] = Some(*id);
                            failed[i] = None;
                            link.keep(&format!("{i} {}", id.encode()));
                        }
                        Reload::Failed => failed[i] = Some(Ok(*id)),
                        Reload::Abandoned => return,
                    },
                    Err(e) => {
                        let text = format!("cannot read \"{}\": {e}", source.path.display());
                        self.shared.slot(i).set_error(now(), &text);
                        link.say(true, &format!("{text}, previous data stays in force"));
                        failed[i] = Some(Err(e.clone()));
                    }
                }
            }
            if !link.sleep(self.interval) {
                return;
            }
        }
    }

    /// One fetch of a URL source, published and kept when it brought new
    /// data; a failure changes nothing in force.
    fn fetch(
        &self,
        i: usize,
        source: &Source,
        u: &UrlSource,
        f: &mut Fetching,
        link: &Link,
    ) -> Reload {
        let slot = self.shared.slot(i);
        if f.client.is_none() {
            f.client = u.client().map_err(|e| e.to_string()).map_or_else(
                |e| {
                    slot.set_error(now(), &e);
                    None
                },
                Some,
            );
        }
        let result = match &f.client {
            Some(client) => self.shared.with_table(i, |old| {
                url::refresh(source, u, client, &f.validators, &self.cas, old.as_ref())
            }),
            None => Err(url::Failed {
                status: 0,
                bytes: None,
                message: slot.error().map(|(_, e)| e).unwrap_or_default(),
            }),
        };
        if !link.open() {
            return Reload::Abandoned;
        }
        let outcome = match result {
            Ok(url::Refreshed::NotModified) => Ok((304, None, false)),
            Ok(url::Refreshed::New { loaded, kept }) => {
                match self.shared.publish(i, &loaded, now()) {
                    Ok(()) => {
                        let bytes = kept.body.len() as u64;
                        match url::keep(&source.path, &u.url, &kept) {
                            Ok(()) => f.validators = kept.validators,
                            Err(e) => {
                                // Published but not kept: fetched in full
                                // next time.
                                f.validators = Validators::default();
                                link.say(
                                    true,
                                    &format!(
                                        "cannot keep a copy of \"{}\" in \"{}\": {e}",
                                        u.url,
                                        source.path.display()
                                    ),
                                );
                            }
                        }
                        link.say(
                            false,
                            &format!(
                                "fetched \"{}\", {} entries in {} ms",
                                u.url,
                                slot.entries(),
                                loaded.read_ms
                            ),
                        );
                        Ok((200, Some(bytes), true))
                    }
                    Err(e) => Err(url::Failed {
                        status: 200,
                        bytes: Some(kept.body.len() as u64),
                        message: format!("cannot publish \"{}\": {e}", u.url),
                    }),
                }
            }
            Err(failed) => Err(failed),
        };
        release_memory();
        let at = now();
        let (status, bytes, failures, result) = match outcome {
            Ok((status, bytes, published)) => {
                f.failures = 0;
                (
                    status,
                    bytes,
                    0,
                    if published {
                        Reload::Published
                    } else {
                        Reload::Failed
                    },
                )
            }
            Err(failed) => {
                f.failures += 1;
                slot.set_error(at, &failed.message);
                link.say(
                    true,
                    &format!("{}, previous data stays in force", failed.message),
                );
                (failed.status, failed.bytes, f.failures, Reload::Failed)
            }
        };
        let wait = url::retry_after(u.interval, failures);
        f.next = Instant::now() + wait;
        let etag = f.validators.etag.clone().unwrap_or_default();
        let last_modified = f.validators.last_modified.clone().unwrap_or_default();
        slot.fetch.record(&Attempt {
            at,
            http_status: status,
            bytes,
            next: at + wait.as_secs() as i64,
            failures,
            validators: Some((&etag, &last_modified)),
        });
        if failures == 0 && status == 304 {
            // The data in force is confirmed current: an earlier error is
            // over.
            slot.clear_error();
        }
        result
    }

    fn reload(&self, i: usize, source: &Source, link: &Link) -> Reload {
        let slot = self.shared.slot(i);
        slot.set_loading(true);
        let result = self
            .shared
            .with_table(i, |old| read(source, &self.cas, old.as_ref()));
        // A load takes seconds for a large CRL: a worker that stopped or
        // died meanwhile gets nothing published behind its back (on stop,
        // it removes the files in force once the loader has exited).
        if !link.open() {
            slot.set_loading(false);
            return Reload::Abandoned;
        }
        let published = result.and_then(|loaded| {
            self.shared
                .publish(i, &loaded, now())
                .map(|()| loaded.read_ms)
                .map_err(|e| LoadError::Publish {
                    path: source.path.display().to_string(),
                    source: e,
                })
        });
        slot.set_loading(false);
        release_memory();
        match published {
            Ok(ms) => {
                link.say(
                    false,
                    &format!(
                        "reloaded \"{}\", {} entries in {ms} ms",
                        source.path.display(),
                        slot.entries()
                    ),
                );
                Reload::Published
            }
            Err(e) => {
                self.shared.slot(i).set_error(now(), &e.to_string());
                link.say(true, &format!("{e}, previous data stays in force"));
                Reload::Failed
            }
        }
    }

    /// Warnings about CRLs past their nextUpdate, from the tables in force;
    /// worker 0 logs them once per interval.
    pub fn staleness(&self) -> Vec<String> {
        let now = now();
        let mut out = Vec::new();
        for (i, source) in self.sources.iter().enumerate() {
            if source.kind != Kind::Crl {
                continue;
            }
            self.shared.with_table(i, |table| {
                for info in table.iter().flat_map(|t| t.issuers()) {
                    let Some(state) = stale(now, info.next_update, source.grace) else {
                        continue;
                    };
                    out.push(format!(
                        "CRL in \"{}\" is past its nextUpdate {}, {state}",
                        source.name(),
                        rfc3339(info.next_update)
                    ));
                }
            });
        }
        out
    }
}

/// What a staleness warning says of a CRL with `next_update` at `now`,
/// where the smallest `mtls_crl_grace` among its users is `grace`, as the
/// access check decides (denied once `now` is past nextUpdate plus the
/// grace); `None` while it is fresh.
pub fn stale(now: i64, next_update: i64, grace: i64) -> Option<&'static str> {
    if now <= next_update {
        None
    } else if now <= next_update.saturating_add(grace) {
        Some("within \"mtls_crl_grace\", certificates of its issuer still pass")
    } else {
        Some("certificates of its issuer are denied")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{stale, FileId, Kind, Loader, Source};
    use crate::state::Shared;

    /// The warning goes by the grace as the access check does: denied
    /// only past nextUpdate plus the grace.
    #[test]
    fn staleness_within_and_past_grace() {
        assert_eq!(stale(100, 100, 0), None);
        assert_eq!(stale(99, 100, i64::MAX), None);
        assert!(stale(101, 100, 0).unwrap().contains("denied"));
        assert!(stale(150, 100, 60).unwrap().contains("still pass"));
        assert!(stale(160, 100, 60).unwrap().contains("still pass"));
        assert!(stale(161, 100, 60).unwrap().contains("denied"));
        assert!(stale(i64::MAX, 100, i64::MAX)
            .unwrap()
            .contains("still pass"));
    }

    /// What a loader process started after another one died learns of the
    /// files its predecessor read.
    #[test]
    fn remembers_what_was_published() {
        let path = std::env::temp_dir().join(format!("mtls-remember-{}", std::process::id()));
        std::fs::write(&path, "1002\n").unwrap();
        let source = Source {
            path: path.clone(),
            url: None,
            kind: Kind::DenyList,
            optional: false,
            grace: 0,
        };
        let id = FileId::of(&source).unwrap();
        let mut loader = Loader {
            sources: vec![source.clone(), source],
            cas: Vec::new(),
            shared: Arc::new(Shared::new(2).unwrap()),
            interval: Duration::from_secs(1),
            loaded: vec![None, None],
        };
        for junk in ["", "1", "x 1 2 3 4", "1 1 2 3", "1 1 2 3 4 5", "2 1 2 3 4"] {
            loader.remember(junk);
        }
        assert_eq!(loader.loaded, [None, None]);
        loader.remember(&format!("1 {}", id.encode()));
        assert_eq!(loader.loaded, [None, Some(id)]);
        std::fs::remove_file(&path).unwrap();
    }
}
