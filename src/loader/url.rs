//! Revocation sources fetched from a URL: `mtls_crl URL [params]` and
//! `mtls_deny_list URL [params]`.
//!
//! The data fetched is checked exactly as a file's ([`super::read_bytes`]),
//! then kept on disk, with its validators, under `mtls_cache_dir`, so that a
//! restart with the network down starts from the last good copy. A failed
//! fetch changes nothing in force: the error is logged and shown, and the
//! source is asked again sooner than its interval, backing off.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::x509::X509;

use super::http::{Client, Fetched, Limits, Validators};
use super::{read_bytes, Loaded, Source};
use crate::revocation::{Kind, Table};

/// The packaged default of `mtls_cache_dir`.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/nginx/mtls";

/// The first retry after a failure; each further failure doubles it, up to
/// the source's interval.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// A URL and how to fetch it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlSource {
    pub url: String,
    /// Between two fetches that succeeded.
    pub interval: Duration,
    pub limits: Limits,
    /// PEM certificates trusted for https instead of the system's store.
    pub ca_file: Option<PathBuf>,
}

impl UrlSource {
    pub fn new(url: String) -> UrlSource {
        UrlSource {
            url,
            interval: Duration::from_secs(300),
            limits: Limits {
                connect: Duration::from_secs(10),
                read: Duration::from_secs(10),
                total: Duration::from_secs(10),
                max_size: 64 << 20,
                max_redirects: 3,
            },
            ca_file: None,
        }
    }

    /// `timeout=`: bounds the whole exchange, and so each of its steps.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.limits.total = timeout;
        self.limits.connect = timeout;
        self.limits.read = timeout;
    }

    /// A source named by an https URL is never fetched in clear, even
    /// through a redirect: a deny list is not signed.
    pub fn client(&self) -> Result<Client, super::http::Error> {
        let https = self
            .url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        Client::with_https_only(self.limits, self.ca_file.as_deref(), https)
    }
}

/// Whether a directive's argument names a URL rather than a file.
pub fn is_url(arg: &[u8]) -> bool {
    let lower = arg.to_ascii_lowercase();
    lower.starts_with(b"http://") || lower.starts_with(b"https://")
}

/// Where the copy of `url` is kept: a name derived from the URL, so that
/// no URL can name a path.
pub fn cache_path(dir: &Path, url: &str, kind: Kind) -> PathBuf {
    let digest = openssl::sha::sha256(url.as_bytes());
    let ext = match kind {
        Kind::Crl => "crl",
        Kind::DenyList => "list",
    };
    dir.join(format!("{}.{ext}", crate::hex::lower_hex(&digest[..16])))
}

/// The validators kept beside a copy: `url \n etag \n last-modified`.
fn meta_path(copy: &Path) -> PathBuf {
    let mut name = copy.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// A body fetched and checked, to keep once it is published.
#[derive(Debug)]
pub struct Kept {
    pub body: Vec<u8>,
    pub validators: Validators,
}

/// The validators of the copy kept at `copy`, if it was kept for `url`.
pub fn kept_validators(copy: &Path, url: &str) -> Validators {
    let Ok(text) = std::fs::read_to_string(meta_path(copy)) else {
        return Validators::default();
    };
    let mut lines = text.split('\n');
    if lines.next() != Some(url) {
        return Validators::default();
    }
    let mut field = || lines.next().filter(|v| !v.is_empty()).map(str::to_owned);
    Validators {
        etag: field(),
        last_modified: field(),
    }
}

/// Writes `kept` as the copy of `url` at `copy`, each file replaced
/// atomically. The validators go last: a copy without them is fetched in
/// full next time, never taken as current when it is not.
pub fn keep(copy: &Path, url: &str, kept: &Kept) -> std::io::Result<()> {
    let _ = std::fs::remove_file(meta_path(copy));
    write_atomic(copy, &kept.body)?;
    let v = &kept.validators;
    let meta = format!(
        "{url}\n{}\n{}\n",
        v.etag.as_deref().unwrap_or("").replace('\n', " "),
        v.last_modified.as_deref().unwrap_or("").replace('\n', " ")
    );
    write_atomic(&meta_path(copy), meta.as_bytes())
}

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// When to ask again after `failures` failures in a row.
pub fn retry_after(interval: Duration, failures: u64) -> Duration {
    if failures == 0 {
        return interval;
    }
    let shift = (failures - 1).min(20) as u32;
    FIRST_RETRY.saturating_mul(1 << shift).min(interval)
}

/// How reading a URL source at configuration time went.
pub struct AtStart {
    pub loaded: Loaded,
    /// The body to keep, when it was fetched now.
    pub kept: Option<Kept>,
    /// Why the kept copy is used, when it is.
    pub warning: Option<String>,
}

/// Reads a URL source when the configuration is read: fetches it (in the
/// master, never a worker), or, when that fails, starts from the copy kept
/// on disk. No copy and no answer is an error: `[emerg]`, or for an
/// `optional` source, its requests denied until the loader fetches it.
pub fn read_at_start(
    source: &Source,
    u: &UrlSource,
    cas: &[X509],
    in_force: Option<&Table<'_>>,
) -> Result<AtStart, String> {
    let copy_name = source.path.display().to_string();
    let copy = std::fs::read(&source.path)
        .ok()
        .and_then(|data| read_bytes(source, &data, &copy_name, cas, in_force).ok());
    let validators = if copy.is_some() {
        kept_validators(&source.path, &u.url)
    } else {
        Validators::default()
    };
    let fetched = u
        .client()
        .map_err(|e| e.to_string())
        .and_then(|c| c.get(&u.url, &validators).map_err(|e| e.to_string()));
    let failed = match fetched {
        Ok(Fetched::NotModified) => match copy {
            Some(loaded) => {
                return Ok(AtStart {
                    loaded,
                    kept: None,
                    warning: None,
                })
            }
            None => "\"304 Not Modified\" without a copy".to_owned(),
        },
        Ok(Fetched::Full(response)) => {
            // Never older than the copy kept, nor than the table in force.
            let newer_than = match (&copy, in_force) {
                (_, Some(t)) => Some(*t),
                (Some(c), None) => Table::open(&c.table).ok(),
                (None, None) => None,
            };
            match read_bytes(source, &response.body, &u.url, cas, newer_than.as_ref()) {
                Ok(loaded) => {
                    return Ok(AtStart {
                        loaded,
                        kept: Some(Kept {
                            body: response.body,
                            validators: response.validators,
                        }),
                        warning: None,
                    })
                }
                Err(e) => e.to_string(),
            }
        }
        Err(e) => format!("cannot fetch \"{}\": {e}", u.url),
    };
    match copy {
        Some(loaded) => Ok(AtStart {
            loaded,
            kept: None,
            warning: Some(format!(
                "{failed}; starting from the copy kept in \"{copy_name}\""
            )),
        }),
        None => Err(format!("{failed}, and no copy kept in \"{copy_name}\"")),
    }
}

/// Why a fetch in the loader did not publish anything.
pub struct Failed {
    /// The HTTP status, when one came.
    pub status: u16,
    pub bytes: Option<u64>,
    pub message: String,
}

/// What a fetch in the loader brought.
pub enum Refreshed {
    NotModified,
    /// Checked data, to publish and keep; `bytes` as received.
    New {
        loaded: Loaded,
        kept: Kept,
    },
}

/// One fetch by the loader process: conditional on the copy in force,
/// checked against the table in force.
pub fn refresh(
    source: &Source,
    u: &UrlSource,
    client: &Client,
    validators: &Validators,
    cas: &[X509],
    in_force: Option<&Table<'_>>,
) -> Result<Refreshed, Failed> {
    let fail = |status, bytes, message: String| Failed {
        status,
        bytes,
        message,
    };
    match client.get(&u.url, validators) {
        Ok(Fetched::NotModified) => Ok(Refreshed::NotModified),
        Ok(Fetched::Full(response)) => {
            let size = Some(response.body.len() as u64);
            match read_bytes(source, &response.body, &u.url, cas, in_force) {
                Ok(loaded) => Ok(Refreshed::New {
                    loaded,
                    kept: Kept {
                        body: response.body,
                        validators: response.validators,
                    },
                }),
                Err(e) => Err(fail(200, size, e.to_string())),
            }
        }
        Err(e) => Err(fail(
            e.status().unwrap_or(0),
            None,
            format!("cannot fetch \"{}\": {e}", u.url),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_told_from_files() {
        assert!(is_url(b"http://pki.example.com/ca.crl"));
        assert!(is_url(b"HTTPS://pki.example.com/ca.crl"));
        assert!(!is_url(b"/etc/nginx/ca.crl"));
        assert!(!is_url(b"http.crl"));
        assert!(!is_url(b"ftp://pki.example.com/ca.crl"));
    }

    #[test]
    fn cache_names_stay_in_the_directory() {
        let dir = Path::new("/var/cache/nginx/mtls");
        let a = cache_path(dir, "http://a/../../etc/passwd", Kind::Crl);
        assert_eq!(a.parent(), Some(dir));
        assert!(a.to_str().unwrap().ends_with(".crl"));
        assert_ne!(a, cache_path(dir, "http://b/", Kind::Crl));
        assert_ne!(
            cache_path(dir, "http://b/", Kind::Crl).with_extension(""),
            cache_path(dir, "http://c/", Kind::DenyList).with_extension("")
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let i = Duration::from_secs(300);
        assert_eq!(retry_after(i, 0), i);
        assert_eq!(retry_after(i, 1), Duration::from_secs(5));
        assert_eq!(retry_after(i, 2), Duration::from_secs(10));
        assert_eq!(retry_after(i, 4), Duration::from_secs(40));
        assert_eq!(retry_after(i, 7), i);
        assert_eq!(retry_after(i, 1000), i);
        assert_eq!(
            retry_after(Duration::from_secs(1), 1),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn kept_copy_and_validators() {
        let dir = std::env::temp_dir().join(format!("mtls-keep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = cache_path(&dir, "http://x/ca.crl", Kind::Crl);
        assert_eq!(
            kept_validators(&copy, "http://x/ca.crl"),
            Validators::default()
        );
        let validators = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Mon, 07 Dec 2026 10:00:00 GMT".into()),
        };
        keep(
            &copy,
            "http://x/ca.crl",
            &Kept {
                body: b"body".to_vec(),
                validators: validators.clone(),
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), b"body");
        assert_eq!(kept_validators(&copy, "http://x/ca.crl"), validators);
        // Kept for another URL (a hash collision, or an edited file): not
        // trusted as current.
        assert_eq!(kept_validators(&copy, "http://y/"), Validators::default());
        let only_date = Validators {
            etag: None,
            last_modified: Some("d".into()),
        };
        keep(
            &copy,
            "http://x/ca.crl",
            &Kept {
                body: b"new".to_vec(),
                validators: only_date.clone(),
            },
        )
        .unwrap();
        assert_eq!(kept_validators(&copy, "http://x/ca.crl"), only_date);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
