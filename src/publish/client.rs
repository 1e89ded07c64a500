//! The HTTP client of one mirror: hyper's HTTP/1.1 client connections over
//! tokio sockets (TLS with rustls for `https://`), kept alive and reused,
//! on the server's own ring thread. Every request first takes a permit of
//! the process-wide semaphore (`DLREPO_PUBLISH_MAX_REQUESTS`) and is bounded
//! by `DLREPO_PUBLISH_TIMEOUT` as a whole.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

use crate::body::{Body, FileBody};
use crate::io;

/// What a request sends.
pub enum Payload {
    Empty,
    Json(Vec<u8>),
    /// A file's whole content, streamed through the ring.
    File(PathBuf),
}

/// A response: its status and its whole body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Why a request failed, and whether trying again later may help.
#[derive(Debug, Clone)]
pub struct Failure {
    pub transient: bool,
    pub message: String,
}

impl Failure {
    fn transient(message: impl Into<String>) -> Failure {
        Failure {
            transient: true,
            message: message.into(),
        }
    }
    pub fn fatal(message: impl Into<String>) -> Failure {
        Failure {
            transient: false,
            message: message.into(),
        }
    }
}

impl Answer {
    /// The answer when its status is 2xx; otherwise a failure that names
    /// the request. 5xx, 408 and 429 are worth retrying, other refusals not.
    pub fn ok(self, what: &str) -> Result<Answer, Failure> {
        if self.status.is_success() {
            return Ok(self);
        }
        let s = self.status;
        let mut message = format!("{what}: {} {}", s.as_u16(), s.canonical_reason().unwrap_or(""));
        if s == StatusCode::UNAUTHORIZED {
            message.push_str(" (check the credentials in DLREPO_PUBLISH_AUTH)");
        }
        let transient = s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS;
        Err(Failure { transient, message })
    }
}

/// Chunk size for file bodies.
const UPLOAD_CHUNK: usize = 512 << 10;
/// Idle connections kept per mirror.
const MAX_IDLE: usize = 16;

pub struct Target {
    /// `scheme://host[:port]` as configured.
    pub origin: String,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    idle: RefCell<Vec<SendRequest<Body>>>,
}

impl Target {
    /// A client for `origin` (`http://host[:port]` or `https://…`).
    pub fn new(
        origin: &str,
        login: &str,
        password: &str,
        user_agent: &str,
        timeout: Duration,
    ) -> Result<Target, Failure> {
        let bad = || {
            Failure::fatal(format!(
                "invalid publish URL {origin:?}: expected http://host[:port] or https://host[:port]"
            ))
        };
        let uri: hyper::Uri = origin.parse().map_err(|_| bad())?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad()),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?.as_str().to_string();
        let host = uri
            .host()
            .ok_or_else(bad)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = authority.as_str();
        let credentials = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{login}:{password}"),
        );
        let value = |v: &str| HeaderValue::from_str(v).map_err(|_| bad());
        let headers = vec![
            (HOST, value(authority)?),
            (USER_AGENT, value(user_agent)?),
            (
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Basic {credentials}"))
                    .map_err(|_| Failure::fatal("DLREPO_PUBLISH_AUTH: unusable credentials"))?,
            ),
        ];
        Ok(Target {
            origin: origin.to_string(),
            host,
            port,
            tls: if tls { Some(tls_connector()?) } else { None },
            headers,
            timeout,
            idle: RefCell::new(Vec::new()),
        })
    }

    /// Sends a request (`path` already percent-encoded) and reads the whole
    /// answer. A connection kept from an earlier request that turns out to
    /// be closed is replaced once.
    pub async fn call(
        &self,
        permits: &Semaphore,
        method: Method,
        path: &str,
        headers: &[(&'static str, &str)],
        payload: &Payload,
    ) -> Result<Answer, Failure> {
        let _permit = permits
            .acquire()
            .await
            .map_err(|_| Failure::fatal("the publisher is shutting down"))?;
        let what = format!("{method} {}{path}", self.origin);
        let attempt = async {
            let (mut sender, reused) = self.connection().await?;
            let first = self.exchange(&mut sender, &method, path, headers, payload).await;
            let (mut sender, res) = match first {
                Err(e) if reused && e.is_closed_connection() => {
                    let (s, _) = self.connect().await?;
                    let mut s = s;
                    let r = self.exchange(&mut s, &method, path, headers, payload).await;
                    (s, r)
                }
                r => (sender, r),
            };
            let res = res.map_err(|e| Failure::transient(e.message))?;
            if sender.ready().await.is_ok() {
                let mut idle = self.idle.borrow_mut();
                if idle.len() < MAX_IDLE {
                    idle.push(sender);
                }
            }
            Ok::<Answer, Failure>(res)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(Failure {
                transient: e.transient,
                message: format!("{what}: {}", e.message),
            }),
            Err(_) => Err(Failure::transient(format!(
                "{what}: no answer within {} s (DLREPO_PUBLISH_TIMEOUT)",
                self.timeout.as_secs()
            ))),
        }
    }

    /// An idle connection that is still open, or a new one.
    async fn connection(&self) -> Result<(SendRequest<Body>, bool), Failure> {
        loop {
            let Some(mut s) = self.idle.borrow_mut().pop() else {
                break;
            };
            if s.ready().await.is_ok() {
                return Ok((s, true));
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<(SendRequest<Body>, bool), Failure> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| Failure::transient(format!("cannot connect to {}:{}: {e}", self.host, self.port)))?;
        let _ = tcp.set_nodelay(true);
        let sender = match &self.tls {
            None => handshake(TokioIo::new(tcp)).await?,
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| Failure::fatal(format!("{}: not a TLS server name: {e}", self.host)))?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Failure::fatal(format!("TLS with {}:{}: {e}", self.host, self.port)))?;
                handshake(TokioIo::new(stream)).await?
            }
        };
        Ok((sender, false))
    }

    async fn exchange(
        &self,
        sender: &mut SendRequest<Body>,
        method: &Method,
        path: &str,
        headers: &[(&'static str, &str)],
        payload: &Payload,
    ) -> Result<Answer, ExchangeError> {
        let mut req = Request::builder().method(method.clone()).uri(path);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match payload {
            Payload::Empty => {
                if matches!(*method, Method::PUT | Method::PATCH | Method::POST) {
                    req = req.header(CONTENT_LENGTH, "0");
                }
                Body::empty()
            }
            Payload::Json(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Body::from_bytes(b.clone())
            }
            Payload::File(p) => {
                let file = io::open_read(p).await.map_err(ExchangeError::local)?;
                let len = io::fstat(&file).map_err(ExchangeError::local)?.size;
                req = req.header(CONTENT_LENGTH, len);
                if len == 0 {
                    Body::empty()
                } else {
                    Body::File(FileBody::new(file, 0, len, UPLOAD_CHUNK))
                }
            }
        };
        let req = req
            .body(body)
            .map_err(|e| ExchangeError::other(format!("cannot build the request: {e}")))?;
        let resp = sender.send_request(req).await.map_err(ExchangeError::hyper)?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(ExchangeError::hyper)?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

/// A failed exchange on a connection.
struct ExchangeError {
    message: String,
    closed: bool,
}

impl ExchangeError {
    fn hyper(e: hyper::Error) -> ExchangeError {
        ExchangeError {
            closed: e.is_canceled() || e.is_incomplete_message() || e.is_closed(),
            message: e.to_string(),
        }
    }
    fn local(e: std::io::Error) -> ExchangeError {
        ExchangeError::other(format!("cannot read the local file: {e}"))
    }
    fn other(message: String) -> ExchangeError {
        ExchangeError { message, closed: false }
    }
    /// The peer closed a kept-alive connection before this request.
    fn is_closed_connection(&self) -> bool {
        self.closed
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Body>, Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| Failure::transient(format!("HTTP handshake: {e}")))?;
    // Driven on this thread: request bodies read files through the ring.
    tokio_uring::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("publish connection ended: {e}");
        }
    });
    Ok(sender)
}

/// A TLS client checking servers against the system's trusted roots.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, Failure> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::fatal(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
