//! The loader's OCSP side: a thread of the loader process that takes the
//! look-ups workers queue, asks the responders (each look-up in a thread
//! of its own, so that a slow responder holds up no other), verifies the
//! answers and stores them in the shared cache. It also asks again, before
//! they expire, for the answers of certificates in use: every `refresh`
//! for one used during the last interval, so that a certificate revoked at
//! the CA is denied within about one interval, also on connections that
//! reuse their decision.
//!
//! A failed look-up never replaces an answer still current: it is kept,
//! and asked for again after `errors`. Without one, the failure itself is
//! stored for `errors`, so that a dead responder is not asked on every
//! request.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use openssl::x509::X509;

use super::http::{Client, Limits};
use super::now;
use super::process::Link;
use crate::identity::Identity;
use crate::ocsp::cache::{Cache, Counter, Query, State};
use crate::ocsp::{self, Answer, CertKey, CertStatus, CLOCK_SKEW};

/// The look-ups running at once, at most.
const MAX_RUNNING: usize = 16;
/// The largest response accepted.
const MAX_RESPONSE: u64 = 256 << 10;
/// How long the loop sleeps when nothing is queued.
const IDLE: Duration = Duration::from_millis(100);

/// What the loader's OCSP thread needs, copied from the configuration.
pub struct Service {
    pub cache: Arc<Cache>,
    /// The CA certificates nginx verifies clients with.
    pub trusted: Vec<X509>,
    /// Seconds: `mtls_ocsp_cache valid=`, `refresh=`, `errors=`.
    pub valid: i64,
    pub refresh: i64,
    pub errors: i64,
}

/// A certificate the loader knows how to ask about.
struct Known {
    query: Query,
    running: bool,
    /// Not asked again before this time, after a failure.
    next_try: i64,
}

struct Done {
    key: CertKey,
    result: Result<Answer, String>,
}

impl Service {
    /// Runs until worker 0 closes its end of `link`.
    pub fn run(&self, link: &Link) {
        let (tx, rx) = mpsc::channel::<Done>();
        let mut known: HashMap<CertKey, Known> = HashMap::new();
        let mut waiting: VecDeque<CertKey> = VecDeque::new();
        let mut clients: HashMap<u32, Arc<Client>> = HashMap::new();
        let mut running = 0usize;
        loop {
            if !link.open() {
                return;
            }
            let seen = self.cache.queue().pushed();
            let now = now();
            for query in self.cache.drain() {
                let key = query.key;
                let entry = known.entry(key).or_insert(Known {
                    query,
                    running: false,
                    next_try: 0,
                });
                // A worker asks where it found no current answer; one may
                // have arrived meanwhile.
                let current = self.cache.peek(&key).is_some_and(|e| e.expires > now);
                if !entry.running && !current && !waiting.contains(&key) {
                    waiting.push_back(key);
                }
            }
            while let Ok(done) = rx.try_recv() {
                running -= 1;
                self.apply(link, &mut known, done, now);
            }
            self.due(&mut known, &mut waiting, now);
            while running < MAX_RUNNING {
                let Some(key) = waiting.pop_front() else {
                    break;
                };
                let Some(k) = known.get_mut(&key) else {
                    continue;
                };
                if k.running {
                    continue;
                }
                let client = match self.client(&mut clients, k.query.timeout_ms) {
                    Ok(client) => client,
                    Err(e) => {
                        let done = Done {
                            key,
                            result: Err(e),
                        };
                        running += 1;
                        let _ = tx.send(done);
                        continue;
                    }
                };
                k.running = true;
                running += 1;
                let query = k.query.clone();
                let trusted = self.trusted.clone();
                let tx = tx.clone();
                let cache = Arc::clone(&self.cache);
                let spawned = std::thread::Builder::new()
                    .name("ocsp".into())
                    .spawn(move || {
                        let result = fetch(&client, &query, &trusted);
                        let _ = tx.send(Done {
                            key: query.key,
                            result,
                        });
                        cache.queue().notify();
                    });
                if let Err(e) = spawned {
                    running -= 1;
                    k.running = false;
                    link.say(true, &format!("cannot start an OCSP look-up: {e}"));
                    break;
                }
            }
            self.cache.queue().wait(seen, IDLE);
        }
    }

    /// One client per timeout: the limits of a look-up are the worker's
    /// `mtls_ocsp_timeout`.
    fn client(
        &self,
        clients: &mut HashMap<u32, Arc<Client>>,
        timeout_ms: u32,
    ) -> Result<Arc<Client>, String> {
        if let Some(c) = clients.get(&timeout_ms) {
            return Ok(Arc::clone(c));
        }
        let t = Duration::from_millis(u64::from(timeout_ms.max(1)));
        let limits = Limits {
            connect: t,
            read: t,
            total: t,
            max_size: MAX_RESPONSE,
            max_redirects: 0,
        };
        let client = Arc::new(Client::new(limits, None).map_err(|e| e.to_string())?);
        clients.insert(timeout_ms, Arc::clone(&client));
        Ok(client)
    }

    /// Queues the certificates whose answers are due: in use during the
    /// last interval, and fetched an interval ago, or about to expire; a
    /// failure once it expires. Forgets the certificates no longer in use.
    fn due(&self, known: &mut HashMap<CertKey, Known>, waiting: &mut VecDeque<CertKey>, now: i64) {
        let refresh = self.refresh;
        known.retain(|key, k| {
            if k.running {
                return true;
            }
            let Some(e) = self.cache.peek(key) else {
                // Replaced in the cache by another certificate: a worker
                // queues it again when it needs it.
                return waiting.contains(key);
            };
            // Strictly after: an answer fetched and never used since is not
            // in use an interval later.
            let in_use = e.used > e.fetched - refresh;
            if !in_use && e.expires <= now {
                return waiting.contains(key);
            }
            let due = match e.state {
                State::Failed => now >= e.expires,
                _ => now >= e.fetched + refresh || now >= e.expires - refresh.min(60),
            };
            if in_use && due && now >= k.next_try && !waiting.contains(key) {
                waiting.push_back(*key);
            }
            true
        });
    }

    fn apply(&self, link: &Link, known: &mut HashMap<CertKey, Known>, done: Done, now: i64) {
        let Some(k) = known.get_mut(&done.key) else {
            return;
        };
        k.running = false;
        let previous = self.cache.peek(&done.key);
        match done.result {
            Ok(answer) => {
                let (state, counter) = match answer.status {
                    CertStatus::Good => (State::Good, Counter::Good),
                    CertStatus::Revoked => (State::Revoked, Counter::Revoked),
                    CertStatus::Unknown => (State::Unknown, Counter::Unknown),
                };
                self.cache.count(counter);
                let until = answer
                    .next_update
                    .map_or(i64::MAX, |n| n.saturating_add(i64::from(CLOCK_SKEW)));
                let expires = until.min(now + self.valid).max(now + 1);
                self.cache.store(&done.key, state, expires, now);
                k.next_try = 0;
                if previous.is_some_and(|p| p.state != state) && state != State::Good {
                    link.say(
                        false,
                        &format!(
                            "OCSP: \"{}\" is now {}, by \"{}\"",
                            subject(&k.query),
                            answer.status.as_str(),
                            k.query.url
                        ),
                    );
                }
            }
            Err(e) => {
                self.cache.count(Counter::ResponderError);
                link.say(
                    true,
                    &format!(
                        "OCSP look-up of \"{}\" at \"{}\" failed: {e}",
                        subject(&k.query),
                        k.query.url
                    ),
                );
                k.next_try = now + self.errors;
                // An answer still current stays in force.
                let current = previous.is_some_and(|p| p.state != State::Failed && p.expires > now);
                if !current {
                    self.cache
                        .store(&done.key, State::Failed, now + self.errors, now);
                }
            }
        }
    }
}

fn fetch(client: &Client, query: &Query, trusted: &[X509]) -> Result<Answer, String> {
    let cert = X509::from_der(&query.cert).map_err(|e| e.to_string())?;
    let issuer = X509::from_der(&query.issuer).map_err(|e| e.to_string())?;
    let request = ocsp::request(&cert, &issuer).map_err(|e| e.to_string())?;
    let response = client
        .post(&query.url, "application/ocsp-request", &request)
        .map_err(|e| e.to_string())?;
    ocsp::verify(&response.body, &cert, &issuer, trusted).map_err(|e| e.to_string())
}

fn subject(query: &Query) -> String {
    X509::from_der(&query.cert)
        .ok()
        .and_then(|c| Identity::new(c).subject().ok().map(|s| s.to_string()))
        .unwrap_or_default()
}
