//! An HTTPS proxy on loopback that plays chosen hosts: a CONNECT to one of them is answered and
//! its TLS terminated with a certificate from a throwaway CA made at start (a program trusts it
//! through `NODE_EXTRA_CA_CERTS=ca_file()`), and each request in the tunnel goes to that host's
//! handler. A CONNECT to any other host, and any plain proxy request, is refused with 403, so
//! nothing leaves the machine. Every request is recorded. Dropping the proxy stops it.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a connection may stay silent before the proxy drops it; it bounds every thread of
/// the proxy that outlives a drop.
const IDLE: Duration = Duration::from_secs(30);

/// One HTTP request, as the proxy saw it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The host name, without the port.
    pub host: String,
    /// The request target: a path for a tunnelled request, `host:port` for a CONNECT, the
    /// absolute URL for a plain proxy request.
    pub path: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Reads one request (line, headers, a body sized by `Content-Length` or chunked) from
    /// `reader`; `None` when the peer closed before sending one.
    pub fn read_from(reader: &mut impl BufRead, host: &str) -> io::Result<Option<HttpRequest>> {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let mut parts = line.split_whitespace();
        let mut request = HttpRequest {
            method: parts.next().unwrap_or("").to_owned(),
            host: host.to_owned(),
            path: parts.next().unwrap_or("").to_owned(),
            ..HttpRequest::default()
        };
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                request
                    .headers
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        if let Some(len) = request
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            request.body = body;
        } else if request
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            request.body = read_chunked(reader)?;
        }
        Ok(Some(request))
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    // A bound on the chunks, so a broken peer cannot keep a thread forever.
    for _ in 0..100_000 {
        let mut size = String::new();
        if reader.read_line(&mut size)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk)?;
        if n == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Err(io::ErrorKind::InvalidData.into())
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(status: u16, body: &serde_json::Value) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// Writes the response, closing the connection after it (one request per connection).
    pub fn write_to(&self, out: &mut impl Write, head_only: bool) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        out.write_all(head.as_bytes())?;
        if !head_only {
            out.write_all(&self.body)?;
        }
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

pub type Handler = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// The hosts a proxy plays, and their handlers.
#[derive(Default)]
pub struct TlsProxyBuilder {
    hosts: BTreeMap<String, Handler>,
}

impl TlsProxyBuilder {
    /// Plays `host` (a DNS name): requests tunnelled to it go to `handler`.
    pub fn host(
        mut self,
        host: &str,
        handler: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static,
    ) -> TlsProxyBuilder {
        self.hosts
            .insert(host.to_ascii_lowercase(), Arc::new(handler));
        self
    }

    /// Makes the CA and one leaf for every host, writes the CA to `ca_file()`, and listens on
    /// 127.0.0.1 at a free port.
    pub fn start(self) -> TlsProxy {
        let dir = tempfile::tempdir().expect("a temp dir for the CA");
        let (ca_pem, tls) = certificates(self.hosts.keys().cloned().collect());
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            hosts: self.hosts,
            tls,
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    // Detached: each ends when its peer does, after `IDLE` of silence at most,
                    // or at its next read once the proxy is stopped.
                    std::thread::spawn(move || {
                        let _ = connection(stream, &shared);
                    });
                }
            })
        };
        TlsProxy {
            port,
            ca_file,
            _dir: dir,
            shared,
            accept: Some(accept),
        }
    }
}

/// A running proxy; see the module's doc.
pub struct TlsProxy {
    port: u16,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What one request met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A handler answered with this status.
    Answered(u16),
    /// The proxy refused it (403): a CONNECT to a host it does not play, or a plain request.
    Refused,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub request: HttpRequest,
    pub outcome: Outcome,
}

struct Shared {
    hosts: BTreeMap<String, Handler>,
    tls: Arc<rustls::ServerConfig>,
    stop: AtomicBool,
    log: Mutex<Vec<Record>>,
}

impl Shared {
    fn record(&self, request: HttpRequest, outcome: Outcome) {
        self.log.lock().unwrap().push(Record { request, outcome });
    }
}

impl TlsProxy {
    pub fn builder() -> TlsProxyBuilder {
        TlsProxyBuilder::default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The CA's certificate (PEM), for `NODE_EXTRA_CA_CERTS`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Every request so far, in order of arrival: CONNECTs refused and requests answered in a
    /// tunnel (a CONNECT that was let through is not listed; its requests are).
    pub fn records(&self) -> Vec<Record> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The requests a handler of `host` answered.
    pub fn requests_to(&self, host: &str) -> Vec<HttpRequest> {
        self.records()
            .into_iter()
            .filter(|r| matches!(r.outcome, Outcome::Answered(_)) && r.request.host == host)
            .map(|r| r.request)
            .collect()
    }

    /// The requests refused.
    pub fn refused(&self) -> Vec<HttpRequest> {
        self.records()
            .into_iter()
            .filter(|r| r.outcome == Outcome::Refused)
            .map(|r| r.request)
            .collect()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A CA and one leaf for `hosts`, made now; nothing of them is ever written but the CA's
/// certificate.
fn certificates(hosts: Vec<String>) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "clauth-helper test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    // A leaf with no host still makes a valid config; such a proxy refuses every CONNECT.
    let names = if hosts.is_empty() {
        vec!["localhost".to_owned()]
    } else {
        hosts
    };
    let mut leaf = CertificateParams::new(names.clone()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, &names[0]);
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_cert.pem(), Arc::new(config))
}

/// Reads the proxy request's head byte by byte, so that nothing of a TLS handshake that might
/// follow is taken from the stream.
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    let head = read_head(&mut stream)?;
    if shared.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let host = if method == "CONNECT" {
        target.rsplit_once(':').map_or(target.as_str(), |(h, _)| h)
    } else {
        // A plain proxy request names an absolute URL.
        let rest = target.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or("");
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    }
    .trim_start_matches('[')
    .trim_end_matches(']')
    .to_ascii_lowercase();
    let request = HttpRequest {
        method: method.clone(),
        host: host.clone(),
        path: target,
        headers,
        body: Vec::new(),
    };
    let handler = match shared.hosts.get(&host) {
        Some(handler) if method == "CONNECT" => handler.clone(),
        _ => {
            shared.record(request, Outcome::Refused);
            stream.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return stream.shutdown(Shutdown::Both);
        }
    };
    stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    stream.flush()?;

    let conn = rustls::ServerConnection::new(shared.tls.clone()).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let request = {
        let mut reader = BufReader::new(&mut tls);
        match HttpRequest::read_from(&mut reader, &host)? {
            Some(request) => request,
            None => return Ok(()),
        }
    };
    if shared.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&request)))
        .unwrap_or_else(|_| {
            HttpResponse::json(500, &serde_json::json!({"error": "the handler panicked"}))
        });
    let head_only = request.method == "HEAD";
    shared.record(request, Outcome::Answered(response.status));
    response.write_to(&mut tls, head_only)?;
    tls.conn.send_close_notify();
    tls.flush()?;
    tls.sock.shutdown(Shutdown::Write)
}
