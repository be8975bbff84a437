//! The loader's HTTP client: fetches CRLs and deny lists from URLs and asks
//! OCSP responders. It blocks, which is why only the loader process uses it,
//! never a worker. Every request is bounded: a connect timeout, a read
//! timeout for each wait on the socket, a deadline for the whole exchange
//! (redirects and body included), a cap on the body's size and on the
//! number of redirects. https goes through native-tls, that is the system
//! OpenSSL, verified against the system's trust store or against the CA
//! certificates of one file.
//!
//! Name resolution is the C library's and is not bounded by these timeouts.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

/// The bounds of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Opening the TCP connection (each address tried gets this much).
    pub connect: Duration,
    /// One wait for data from the server.
    pub read: Duration,
    /// The whole exchange: connections, TLS, redirects, headers and body.
    pub total: Duration,
    /// The largest body accepted, bytes.
    pub max_size: u64,
    /// Redirects followed before giving up.
    pub max_redirects: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(10),
            total: Duration::from_secs(30),
            max_size: 64 << 20,
            max_redirects: 3,
        }
    }
}

/// Why a request failed.
#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid URL \"{0}\"")]
    Url(String),
    #[error("cannot read CA file \"{path}\": {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    TlsSetup(#[from] native_tls::Error),
    #[error("timed out")]
    Timeout,
    #[error("cannot resolve host: {0}")]
    Dns(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("refused to leave https: {0}")]
    Insecure(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    #[error("response body larger than {0} bytes")]
    TooLarge(u64),
    #[error("response body truncated")]
    Truncated,
    #[error("{0}")]
    Transport(String),
}

impl Error {
    /// The status code for [`Error::Status`], for the status page.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status(code) => Some(*code),
            _ => None,
        }
    }
}

/// The validators of a fetched body, sent back in the next conditional GET.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A complete `200` answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub validators: Validators,
    pub content_type: Option<String>,
    /// The URL that answered, after redirects.
    pub url: String,
}

/// The outcome of a conditional GET.
#[derive(Debug)]
pub enum Fetched {
    /// `304 Not Modified`: the copy in hand is current.
    NotModified,
    Full(Response),
}

/// A client with fixed limits and trust; cheap to keep for a source's
/// lifetime (it keeps idle connections for reuse).
pub struct Client {
    agent: ureq::Agent,
    limits: Limits,
}

impl Client {
    /// `ca_file`: PEM certificates that alone are trusted for https; without
    /// it, the system's trust store.
    pub fn new(limits: Limits, ca_file: Option<&Path>) -> Result<Client, Error> {
        Client::with_https_only(limits, ca_file, false)
    }

    /// As [`Client::new`]; with `https_only`, a redirect to `http://` is
    /// refused, so that data asked for over https never comes in clear.
    pub fn with_https_only(
        limits: Limits,
        ca_file: Option<&Path>,
        https_only: bool,
    ) -> Result<Client, Error> {
        let mut tls = native_tls::TlsConnector::builder();
        tls.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        if let Some(path) = ca_file {
            let ca_error = |reason: String| Error::CaFile {
                path: path.to_path_buf(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                openssl::x509::X509::stack_from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no certificate found".into()));
            }
            tls.disable_built_in_roots(true);
            for cert in certs {
                let der = cert.to_der().map_err(|e| ca_error(e.to_string()))?;
                tls.add_root_certificate(native_tls::Certificate::from_der(&der)?);
            }
        }
        let agent = ureq::AgentBuilder::new()
            .tls_connector(Arc::new(tls.build()?))
            .timeout_connect(limits.connect)
            .timeout_read(limits.read)
            .timeout_write(limits.read)
            .timeout(limits.total)
            // ureq counts the final request against its limit.
            .redirects(limits.max_redirects + 1)
            .https_only(https_only)
            .user_agent(concat!("nginx-mtls/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client { agent, limits })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// GET `url`, conditionally on `validators` when it has any.
    pub fn get(&self, url: &str, validators: &Validators) -> Result<Fetched, Error> {
        let start = Instant::now();
        let mut request = self.agent.get(url);
        if let Some(etag) = &validators.etag {
            request = request.set("If-None-Match", etag);
        }
        if let Some(date) = &validators.last_modified {
            request = request.set("If-Modified-Since", date);
        }
        let response = request.call().map_err(|e| self.convert(e))?;
        if response.status() == 304 {
            return Ok(Fetched::NotModified);
        }
        self.complete(response, start).map(Fetched::Full)
    }

    /// POST `body` as `content_type` (OCSP: `application/ocsp-request`).
    pub fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<Response, Error> {
        let start = Instant::now();
        let response = self
            .agent
            .post(url)
            .set("Content-Type", content_type)
            .send_bytes(body)
            .map_err(|e| self.convert(e))?;
        self.complete(response, start)
    }

    /// Reads a `200`'s body within the size cap and the deadline.
    fn complete(&self, response: ureq::Response, start: Instant) -> Result<Response, Error> {
        if response.status() != 200 {
            return Err(Error::Status(response.status()));
        }
        let max = self.limits.max_size;
        if let Some(length) = response.header("Content-Length") {
            if length.trim().parse::<u64>().is_ok_and(|n| n > max) {
                return Err(Error::TooLarge(max));
            }
        }
        let header = |name| response.header(name).map(str::to_owned);
        let validators = Validators {
            etag: header("ETag"),
            last_modified: header("Last-Modified"),
        };
        let content_type = header("Content-Type");
        let url = response.get_url().to_owned();
        let mut reader = response.into_reader().take(max + 1);
        let mut body = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            // ureq's deadline bounds each read; this bounds a server that
            // sends a byte just before each read timeout.
            if start.elapsed() > self.limits.total {
                return Err(Error::Timeout);
            }
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&e)),
            };
            body.extend_from_slice(&chunk[..n]);
            if body.len() as u64 > max {
                return Err(Error::TooLarge(max));
            }
        }
        Ok(Response {
            status: 200,
            body,
            validators,
            content_type,
            url,
        })
    }

    fn convert(&self, error: ureq::Error) -> Error {
        use ureq::ErrorKind as K;
        let transport = match error {
            ureq::Error::Status(code, _) => return Error::Status(code),
            ureq::Error::Transport(t) => t,
        };
        let mut text = transport
            .message()
            .map_or_else(|| transport.kind().to_string(), str::to_owned);
        if let Some(io) = find::<std::io::Error>(&transport) {
            let converted = io_error(io);
            if matches!(converted, Error::Timeout | Error::Truncated) {
                return converted;
            }
            text = io.to_string();
        }
        if let Some(tls) = find::<native_tls::Error>(&transport) {
            return Error::Tls(tls.to_string());
        }
        match transport.kind() {
            K::InvalidUrl | K::UnknownScheme => Error::Url(text),
            K::Dns => Error::Dns(text),
            K::ConnectionFailed => Error::Connect(text),
            K::TooManyRedirects => Error::TooManyRedirects(self.limits.max_redirects),
            K::InsecureRequestHttpsOnly => Error::Insecure(text),
            _ => Error::Transport(text),
        }
    }
}

/// The first error of type `E` in a transport error's chain of causes.
fn find<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

fn io_error(e: &std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::TimedOut | K::WouldBlock => Error::Timeout,
        K::UnexpectedEof => Error::Truncated,
        _ => Error::Transport(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    /// What the test server received.
    #[derive(Debug, Default, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    fn read_request(stream: &mut TcpStream) -> Option<Seen> {
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let mut parts = line.split_whitespace();
        let mut seen = Seen {
            method: parts.next()?.to_owned(),
            path: parts.next()?.to_owned(),
            ..Seen::default()
        };
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).ok()?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':')?;
            seen.headers
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
        if let Some(n) = seen.header("content-length") {
            let mut body = vec![0; n.parse().ok()?];
            reader.read_exact(&mut body).ok()?;
            seen.body = body;
        }
        Some(seen)
    }

    /// A loopback server that answers each connection with `answer`, one
    /// request per connection; returns its base URL and what it saw.
    fn serve(
        answer: impl Fn(&Seen, &mut TcpStream) + Send + 'static,
    ) -> (String, Arc<std::sync::Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                if let Some(request) = read_request(&mut stream) {
                    log.lock().unwrap().push(request.clone());
                    answer(&request, &mut stream);
                }
            }
        });
        (url, seen)
    }

    fn reply(stream: &mut TcpStream, head: &str, body: &[u8]) {
        let _ = write!(
            stream,
            "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(body);
    }

    fn limits(total_ms: u64) -> Limits {
        Limits {
            connect: Duration::from_millis(total_ms),
            read: Duration::from_millis(total_ms),
            total: Duration::from_millis(total_ms),
            max_size: 1000,
            max_redirects: 3,
        }
    }

    fn client(total_ms: u64) -> Client {
        Client::new(limits(total_ms), None).unwrap()
    }

    #[test]
    fn conditional_get_and_304() {
        let (url, seen) = serve(|request, stream| {
            if request.header("if-none-match") == Some("\"v1\"") {
                let _ = write!(stream, "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
            } else {
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nLast-Modified: Mon, 07 Dec 2026 10:00:00 GMT\r\nContent-Length: 4\r\n\r\ndata"
                );
            }
        });
        let c = client(2000);
        let Fetched::Full(first) = c
            .get(&format!("{url}/crl"), &Validators::default())
            .unwrap()
        else {
            panic!("first fetch not full")
        };
        assert_eq!(first.body, b"data");
        assert_eq!(first.validators.etag.as_deref(), Some("\"v1\""));
        assert_eq!(
            first.validators.last_modified.as_deref(),
            Some("Mon, 07 Dec 2026 10:00:00 GMT")
        );
        assert!(matches!(
            c.get(&format!("{url}/crl"), &first.validators).unwrap(),
            Fetched::NotModified
        ));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].header("if-none-match"), None);
        assert_eq!(
            seen[1].header("if-modified-since"),
            Some("Mon, 07 Dec 2026 10:00:00 GMT")
        );
    }

    #[test]
    fn post_sends_body_and_type() {
        let (url, seen) = serve(|request, stream| reply(stream, "200 OK", &request.body));
        let answer = client(2000)
            .post(
                &format!("{url}/ocsp"),
                "application/ocsp-request",
                b"\x30\x03abc",
            )
            .unwrap();
        assert_eq!(answer.body, b"\x30\x03abc");
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(
            seen[0].header("content-type"),
            Some("application/ocsp-request")
        );
    }

    #[test]
    fn error_statuses() {
        let (url, _) = serve(|request, stream| match request.path.as_str() {
            "/500" => reply(stream, "500 Internal Server Error", b"oops"),
            "/404" => reply(stream, "404 Not Found", b""),
            _ => reply(stream, "204 No Content", b""),
        });
        let c = client(2000);
        let v = Validators::default();
        assert!(matches!(
            c.get(&format!("{url}/500"), &v),
            Err(Error::Status(500))
        ));
        assert!(matches!(
            c.get(&format!("{url}/404"), &v),
            Err(Error::Status(404))
        ));
        assert!(matches!(
            c.get(&format!("{url}/x"), &v),
            Err(Error::Status(204))
        ));
    }

    #[test]
    fn slow_server_times_out() {
        let (url, _) = serve(|_, stream| {
            thread::sleep(Duration::from_millis(5000));
            reply(stream, "200 OK", b"late");
        });
        let start = Instant::now();
        let result = client(300).get(&url, &Validators::default());
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
        assert!(
            start.elapsed() < Duration::from_millis(3000),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn trickling_body_hits_the_deadline() {
        // Each byte comes well within the read timeout; the whole body
        // would take 3 s against a 600 ms deadline.
        let (url, _) = serve(|_, stream| {
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n");
            for _ in 0..30 {
                if stream.write_all(b"x").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        let c = Client::new(
            Limits {
                read: Duration::from_millis(400),
                total: Duration::from_millis(600),
                ..limits(600)
            },
            None,
        )
        .unwrap();
        let start = Instant::now();
        let result = c.get(&url, &Validators::default());
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
        assert!(start.elapsed() < Duration::from_millis(1500));
    }

    #[test]
    fn size_cap_with_and_without_length() {
        let (url, _) = serve(|request, stream| {
            if request.path == "/declared" {
                reply(stream, "200 OK", &[b'a'; 5000]);
            } else {
                // No Content-Length: the body runs to the close.
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(&[b'b'; 5000]);
            }
        });
        let c = client(2000);
        let v = Validators::default();
        let declared = c.get(&format!("{url}/declared"), &v);
        assert!(
            matches!(declared, Err(Error::TooLarge(1000))),
            "{declared:?}"
        );
        let streamed = c.get(&format!("{url}/streamed"), &v);
        assert!(
            matches!(streamed, Err(Error::TooLarge(1000))),
            "{streamed:?}"
        );
        // Exactly at the cap is accepted.
        let (url, _) = serve(|_, stream| reply(stream, "200 OK", &[b'c'; 1000]));
        let Ok(Fetched::Full(r)) = c.get(&url, &v) else {
            panic!("body at the cap refused")
        };
        assert_eq!(r.body.len(), 1000);
    }

    #[test]
    fn truncated_body() {
        let (url, _) = serve(|_, stream| {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"
            );
        });
        let result = client(2000).get(&url, &Validators::default());
        assert!(matches!(result, Err(Error::Truncated)), "{result:?}");
    }

    #[test]
    fn redirects_followed_then_loop_refused() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let (url, _) = serve(move |request, stream| {
            counter.fetch_add(1, Ordering::SeqCst);
            match request.path.as_str() {
                "/moved" => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n"
                    );
                }
                "/final" => reply(stream, "200 OK", b"here"),
                _ => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 301 Moved\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"
                    );
                }
            }
        });
        let c = client(2000);
        let v = Validators::default();
        let Ok(Fetched::Full(r)) = c.get(&format!("{url}/moved"), &v) else {
            panic!("redirect not followed")
        };
        assert_eq!(r.body, b"here");
        assert!(r.url.ends_with("/final"));
        hits.store(0, Ordering::SeqCst);
        let result = c.get(&format!("{url}/loop"), &v);
        assert!(
            matches!(result, Err(Error::TooManyRedirects(3))),
            "{result:?}"
        );
        // The first request and three redirects, no more.
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn connection_refused_and_bad_url() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let result = client(2000).get(&format!("http://127.0.0.1:{port}/"), &Validators::default());
        assert!(matches!(result, Err(Error::Connect(_))), "{result:?}");
        let result = client(2000).get("ftp://example.com/x", &Validators::default());
        assert!(matches!(result, Err(Error::Url(_))), "{result:?}");
    }

    /// A self-signed certificate for 127.0.0.1 and its key.
    fn self_signed() -> (
        openssl::x509::X509,
        openssl::pkey::PKey<openssl::pkey::Private>,
    ) {
        use openssl::{asn1, bn, ec, hash, nid, pkey, x509};
        let group = ec::EcGroup::from_curve_name(nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = pkey::PKey::from_ec_key(ec::EcKey::generate(&group).unwrap()).unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "127.0.0.1").unwrap();
        let name = name.build();
        let mut b = x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = bn::BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let ctx = b.x509v3_context(None, None);
        let san = x509::extension::SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .build(&ctx)
            .unwrap();
        b.append_extension(san).unwrap();
        b.append_extension(
            x509::extension::BasicConstraints::new()
                .ca()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&key, hash::MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    #[test]
    fn https_with_ca_file_and_unknown_ca() {
        use openssl::ssl::{SslAcceptor, SslMethod};
        let (cert, key) = self_signed();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor.set_certificate(&cert).unwrap();
        acceptor.set_private_key(&key).unwrap();
        let acceptor = acceptor.build();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}/crl", listener.local_addr().unwrap());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let Ok(mut tls) = acceptor.accept(stream) else {
                    continue;
                };
                let mut buf = [0u8; 4096];
                let n = tls.read(&mut buf).unwrap_or(0);
                if buf[..n].starts_with(b"GET /downgrade") {
                    let _ = tls.write_all(
                        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/crl\r\nContent-Length: 0\r\n\r\n",
                    );
                } else {
                    let _ = tls.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret",
                    );
                }
                let _ = tls.shutdown();
            }
        });
        let dir = std::env::temp_dir().join(format!("mtls-http-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.to_pem().unwrap()).unwrap();

        let trusted = Client::new(limits(3000), Some(&ca)).unwrap();
        let Ok(Fetched::Full(r)) = trusted.get(&url, &Validators::default()) else {
            panic!("https with the CA file failed")
        };
        assert_eq!(r.body, b"secret");

        // No redirect from https to http where https is required.
        let strict = Client::with_https_only(limits(3000), Some(&ca), true).unwrap();
        let downgrade = url.replace("/crl", "/downgrade");
        let refused = strict.get(&downgrade, &Validators::default());
        assert!(matches!(refused, Err(Error::Insecure(_))), "{refused:?}");

        // The system store does not know this CA.
        let system = client(3000).get(&url, &Validators::default());
        assert!(
            matches!(&system, Err(Error::Tls(m)) if m.contains("certificate verify failed")),
            "{system:?}"
        );

        std::fs::write(&ca, b"not a certificate").unwrap();
        assert!(matches!(
            Client::new(limits(3000), Some(&ca)),
            Err(Error::CaFile { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
