//! HTTP errors: the one place where a failure becomes a status, a reason
//! and a body. Handlers and the storage layer say what went wrong; only
//! [`HttpError::into_response`] decides how it looks on the wire.

use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

use crate::body::Body;
use crate::store::StoreError;

#[derive(Debug)]
pub enum HttpError {
    /// 400 with a reason.
    BadRequest(String),
    /// 401 with a Basic challenge for `realm`; the registry's JSON body
    /// under `/v2/` (docs/spec/auth.md §5).
    Unauthorized { realm: String, registry: bool },
    /// 404.
    NotFound,
    /// 404 with a reason that says what is missing and how to provide it.
    Missing(String),
    /// 405 with the methods the endpoint implements.
    MethodNotAllowed(String),
    /// 405 for a write through an alias or a product URL. Dispatch turns it
    /// into [`HttpError::MethodNotAllowed`] with the endpoint's read-only
    /// methods from the route table.
    ReadOnly,
    /// 408: the request body paused for longer than allowed.
    BodyTimeout,
    /// 409 with a reason: something is in the way.
    Conflict(String),
    /// 413 with the original's bare body (JSON bodies over 1 MiB).
    TooLarge,
    /// 421 with a reason (publishing is not configured).
    Misdirected(String),
    /// 422 with a reason: a digest that cannot be used or does not match.
    Unprocessable(String),
    /// 500 with a reason the client may see.
    Failed(String),
    /// 507: the server's disk is full; nothing of the request was kept.
    InsufficientStorage,
    /// 500 without details; the cause has been logged.
    Internal,
    /// A registry error: its status, and its code and message in the
    /// registry's JSON form (docs/spec/http-api.md §9.2).
    Registry {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

pub type HttpResult<T> = Result<T, HttpError>;

/// The longest reason phrase sent in a status line, in bytes.
const MAX_REASON: usize = 512;

impl HttpError {
    pub fn bad_request(reason: impl Into<String>) -> HttpError {
        HttpError::BadRequest(reason.into())
    }

    /// The 401 for a request to `path` that authentication refused.
    pub fn unauthorized(realm: &str, path: &str) -> HttpError {
        HttpError::Unauthorized {
            realm: realm.to_string(),
            registry: path.starts_with("/v2/"),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            HttpError::NotFound | HttpError::Missing(_) => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed(_) | HttpError::ReadOnly => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            HttpError::Conflict(_) => StatusCode::CONFLICT,
            HttpError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            HttpError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            HttpError::Failed(_) | HttpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            HttpError::Registry { status, .. } => *status,
        }
    }

    /// A reason phrase of our own, shown in the status line and the body;
    /// `None` for the standard one.
    fn reason(&self) -> Option<String> {
        match self {
            HttpError::BadRequest(r)
            | HttpError::Missing(r)
            | HttpError::Conflict(r)
            | HttpError::Misdirected(r)
            | HttpError::Unprocessable(r)
            | HttpError::Failed(r) => Some(r.clone()),
            HttpError::BodyTimeout => Some("request body timed out".into()),
            HttpError::InsufficientStorage => Some("Insufficient Storage: the server's disk is full".into()),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let reason = self.reason();
        let shown = reason
            .clone()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("Unknown").to_string());
        let text = match &self {
            HttpError::TooLarge => "Maximum request body size 1048576 exceeded.".to_string(),
            HttpError::Internal => "500 Internal Server Error\n\nServer got itself in trouble".to_string(),
            HttpError::Unauthorized { registry: true, .. } => {
                registry_body("UNAUTHORIZED", "Authentication is required.")
            }
            HttpError::Registry { code, message, .. } => registry_body(code, message),
            _ => format!("{}: {}", status.as_u16(), shown),
        };
        let mut resp = Response::new(Body::from_bytes(text));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        match &self {
            HttpError::MethodNotAllowed(allow) => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    h.insert(ALLOW, v);
                }
            }
            HttpError::ReadOnly => {
                h.insert(ALLOW, HeaderValue::from_static("GET"));
            }
            HttpError::Internal => {
                h.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            HttpError::Registry { .. } => {
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                h.insert(
                    "docker-distribution-api-version",
                    HeaderValue::from_static("registry/2.0"),
                );
            }
            HttpError::Unauthorized { realm, registry } => {
                if *registry {
                    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    h.insert(
                        "docker-distribution-api-version",
                        HeaderValue::from_static("registry/2.0"),
                    );
                }
                let challenge = format!("Basic realm=\"{realm}\", charset=\"utf-8\"");
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    h.insert(WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        if let Some(r) = reason {
            // Line breaks would corrupt the status line, and a reason that
            // quotes a huge request path is cut short there; the body keeps
            // the full text.
            let mut clean: String = r.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            if clean.len() > MAX_REASON {
                let mut end = MAX_REASON;
                while !clean.is_char_boundary(end) {
                    end -= 1;
                }
                clean.truncate(end);
                clean.push('…');
            }
            if let Ok(p) = hyper::ext::ReasonPhrase::try_from(clean.into_bytes()) {
                resp.extensions_mut().insert(p);
            }
        }
        resp
    }
}

/// `{"errors": [{"code": …, "message": …}]}` in Python's JSON encoding.
fn registry_body(code: &str, message: &str) -> String {
    crate::store::pyjson::dumps(&serde_json::json!({
        "errors": [{"code": code, "message": message}]
    }))
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> HttpError {
        match e {
            StoreError::NotFound => HttpError::NotFound,
            StoreError::Refused(r) => HttpError::BadRequest(r),
            StoreError::InvalidDigest(r) | StoreError::DigestMismatch(r) => HttpError::Unprocessable(r),
            StoreError::Conflict(r) => HttpError::Conflict(r),
            StoreError::Failed(r) => HttpError::Failed(r),
            // Logged once per full-disk episode, where it was classified.
            StoreError::NoSpace(_) => HttpError::InsufficientStorage,
            StoreError::Io(err) => {
                tracing::error!("i/o error: {err}");
                HttpError::Internal
            }
        }
    }
}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> HttpError {
        HttpError::from(StoreError::from(e))
    }
}

impl From<crate::store::digest::InvalidDigest> for HttpError {
    fn from(e: crate::store::digest::InvalidDigest) -> HttpError {
        HttpError::from(StoreError::from(e))
    }
}
