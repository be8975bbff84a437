//! The loader's side of CRL discovery: a thread of the loader process that
//! takes the URLs workers saw in CRL Distribution Points, checks each one
//! again (normalised, under an allowed prefix, below the cap), and fetches
//! the ones it takes on as `mtls_crl URL` sources are fetched: conditional
//! requests, limits, back-off, the copy kept in `mtls_cache_dir`, the CRL
//! checked as a CRL file is, then published in the slot after the
//! configured sources'.
//!
//! The URLs taken on are also listed in `mtls_cache_dir`, so that a reload
//! or a restart starts from them and their kept copies instead of
//! discovering them again, certificates denied meanwhile.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http::Validators;
use super::process::Link;
use super::url::{self, UrlSource};
use super::{now, stale, Fetching, Loader, Reload, Source};
use crate::revocation::cdp::{longest_prefix, normalise};
use crate::revocation::Kind;
use crate::state::cdp::Registry;

/// How long the loop sleeps at most between two looks at the queue and at
/// worker 0's end of the link.
const IDLE: Duration = Duration::from_millis(200);

/// The list of URLs taken on, in `mtls_cache_dir`.
const LIST: &str = "cdp.urls";

/// What the loader's discovery thread needs, copied from the configuration.
pub struct Discovery {
    pub registry: Arc<Registry>,
    /// `mtls_crl_cdp_allow`: normalised prefixes and how to fetch under them.
    pub allowed: Vec<(String, Arc<UrlSource>)>,
    /// The slot of the first discovered source.
    pub base: usize,
    pub cache_dir: PathBuf,
    /// The smallest `mtls_crl_grace` where discovery is on, seconds.
    pub grace: i64,
}

/// Where the copy of a discovered URL is kept: apart from the copies of
/// `mtls_crl` URLs, which another loop writes.
pub fn copy_path(dir: &Path, url: &str) -> PathBuf {
    let copy = url::cache_path(dir, url, Kind::Crl);
    let name = copy.file_name().map(|n| n.to_string_lossy().into_owned());
    dir.join(format!("cdp-{}", name.unwrap_or_default()))
}

/// The source of discovered `url`, fetched as the prefix `template` that
/// allows it says.
pub fn source(url: &str, template: &UrlSource, dir: &Path) -> Source {
    let mut u = template.clone();
    u.url = url.to_owned();
    Source {
        path: copy_path(dir, url),
        url: Some(Arc::new(u)),
        kind: Kind::Crl,
        optional: true,
        grace: i64::MAX,
    }
}

/// The URLs listed in `dir`, as written.
pub fn read_list(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(LIST))
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn write_list(dir: &Path, urls: &[String]) -> std::io::Result<()> {
    let mut text = urls.join("\n");
    text.push('\n');
    url::write_atomic(&dir.join(LIST), text.as_bytes())
}

/// Whether normalised `url` is the URL of an `mtls_crl` source: that one
/// is fetched as configured, never also as discovered.
pub fn configured(sources: &[Source], url: &str) -> bool {
    sources
        .iter()
        .filter_map(|s| s.url.as_ref())
        .any(|u| normalise(&u.url).is_ok_and(|n| n == url))
}

/// A URL taken on, and how its fetches go.
struct Discovered {
    source: Source,
    url: Arc<UrlSource>,
    fetching: Fetching,
}

impl Discovery {
    /// Runs until worker 0 closes its end of `link`.
    pub fn run(&self, loader: &Loader, link: &Link) {
        // Taken on by an earlier loader, or with the configuration; `None`
        // where no prefix allows it any more: never fetched.
        let mut known: Vec<Option<Discovered>> = (0..self.registry.len())
            .map(|j| self.take_on(&self.registry.url(j), loader, j))
            .collect();
        // Refused URLs, each said once.
        let mut refused: HashSet<String> = HashSet::new();
        loop {
            if !link.open() {
                return;
            }
            let seen = self.registry.queue().pushed();
            for raw in self.registry.drain() {
                self.admit(&raw, loader, link, &mut known, &mut refused);
            }
            for (j, d) in known.iter_mut().enumerate() {
                let Some(d) = d.as_mut().filter(|d| Instant::now() >= d.fetching.next) else {
                    continue;
                };
                if !link.open() {
                    return;
                }
                let i = self.base + j;
                if let Reload::Abandoned = loader.fetch(i, &d.source, &d.url, &mut d.fetching, link)
                {
                    return;
                }
            }
            let next = known.iter().flatten().map(|d| d.fetching.next).min();
            let wait = next.map_or(IDLE, |n| {
                n.saturating_duration_since(Instant::now()).min(IDLE)
            });
            self.registry.queue().wait(seen, wait);
        }
    }

    /// Warnings about discovered CRLs past their nextUpdate, for worker 0
    /// to log with those of the configured sources.
    pub fn staleness(&self, shared: &crate::state::Shared) -> Vec<String> {
        let now = now();
        let mut out = Vec::new();
        for j in 0..self.registry.len() {
            shared.with_table(self.base + j, |table| {
                for info in table.iter().flat_map(|t| t.issuers()) {
                    if let Some(state) = stale(now, info.next_update, self.grace) {
                        out.push(format!(
                            "CRL discovered at \"{}\" is past its nextUpdate {}, {state}",
                            self.registry.url(j),
                            crate::identity::rfc3339(info.next_update)
                        ));
                    }
                }
            });
        }
        out
    }

    /// Takes a URL a worker queued, or refuses it with a line said once.
    fn admit(
        &self,
        raw: &str,
        loader: &Loader,
        link: &Link,
        known: &mut Vec<Option<Discovered>>,
        refused: &mut HashSet<String>,
    ) {
        let mut refuse = |at_cap: bool, text: String| {
            if refused.len() < 4096 && refused.insert(raw.to_owned()) {
                self.registry.refused(at_cap);
                link.say(true, &text);
            }
        };
        let url = match normalise(raw) {
            Ok(url) => url,
            Err(e) => {
                refuse(
                    false,
                    format!("CRL distribution point \"{raw}\" {e}, not fetched"),
                );
                return;
            }
        };
        if configured(&loader.sources, &url) {
            return;
        }
        if longest_prefix(&self.allowed, &url).is_none() {
            refuse(
                false,
                format!("CRL distribution point \"{url}\" is under no \"mtls_crl_cdp_allow\" prefix, not fetched"),
            );
            return;
        }
        if self
            .registry
            .find(&url, crate::revocation::cdp::hash(url.as_bytes()))
            .is_some()
        {
            return;
        }
        let Some(j) = self.registry.register(&url) else {
            refuse(
                true,
                format!(
                    "CRL distribution point \"{url}\" not fetched: \"mtls_crl_cdp_max\" {} reached",
                    self.registry.max()
                ),
            );
            return;
        };
        link.say(
            false,
            &format!("CRL distribution point \"{url}\" discovered"),
        );
        let urls: Vec<String> = (0..self.registry.len())
            .map(|j| self.registry.url(j))
            .collect();
        if let Err(e) = write_list(&self.cache_dir, &urls) {
            link.say(
                true,
                &format!(
                    "cannot write \"{}\": {e}",
                    self.cache_dir.join(LIST).display()
                ),
            );
        }
        known.push(self.take_on(&url, loader, j));
    }

    /// The state of registered `url` at `j`: fetched at once, unless a
    /// fetch is already planned (a loader started after another one).
    fn take_on(&self, url: &str, loader: &Loader, j: usize) -> Option<Discovered> {
        let template = longest_prefix(&self.allowed, url)?;
        let source = source(url, template, &self.cache_dir);
        let u = Arc::clone(source.url.as_ref()?);
        let planned = loader.shared.slot(self.base + j).fetch.view().next_fetch;
        let wait = u64::try_from(planned - now()).unwrap_or(0);
        let validators = if loader.shared.slot(self.base + j).generation() != 0 {
            url::kept_validators(&source.path, url)
        } else {
            Validators::default()
        };
        Some(Discovered {
            fetching: Fetching {
                client: None,
                validators,
                next: Instant::now() + Duration::from_secs(wait).min(u.interval),
                failures: 0,
            },
            url: u,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_apart_from_configured_ones() {
        let dir = Path::new("/var/cache/nginx/mtls");
        let url = "http://pki.example.com/ca.crl";
        let copy = copy_path(dir, url);
        assert_eq!(copy.parent(), Some(dir));
        assert_ne!(copy, url::cache_path(dir, url, Kind::Crl));
        assert!(copy
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("cdp-"));
        let template = UrlSource::new("http://pki.example.com/".into());
        let s = source(url, &template, dir);
        assert_eq!(s.url.as_ref().unwrap().url, url);
        assert_eq!(s.path, copy);
        assert_eq!(s.kind, Kind::Crl);
    }

    #[test]
    fn list_kept() {
        let dir = std::env::temp_dir().join(format!("mtls-cdp-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(read_list(&dir).is_empty());
        let urls = vec!["http://a/1.crl".to_owned(), "http://a/2.crl".to_owned()];
        write_list(&dir, &urls).unwrap();
        assert_eq!(read_list(&dir), urls);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
