//! HTTP errors: the one place where a failure becomes a status and a reason.

use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::body::Body;
use crate::store::StoreError;

#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    /// A custom reason phrase, shown in the status line and the body.
    pub reason: Option<String>,
    pub allow: Option<String>,
    /// For 413: the original answers with a bare text body.
    pub raw_body: Option<String>,
}

pub type HttpResult<T> = Result<T, HttpError>;

impl HttpError {
    pub fn new(status: StatusCode) -> HttpError {
        HttpError {
            status,
            reason: None,
            allow: None,
            raw_body: None,
        }
    }
    pub fn with_reason(status: StatusCode, reason: impl Into<String>) -> HttpError {
        HttpError {
            status,
            reason: Some(reason.into()),
            allow: None,
            raw_body: None,
        }
    }
    pub fn not_found() -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND)
    }
    pub fn bad_request(reason: impl Into<String>) -> HttpError {
        HttpError::with_reason(StatusCode::BAD_REQUEST, reason)
    }
    pub fn method_not_allowed(allow: &str) -> HttpError {
        HttpError {
            allow: Some(allow.to_string()),
            ..HttpError::new(StatusCode::METHOD_NOT_ALLOWED)
        }
    }
    pub fn not_implemented(what: &str) -> HttpError {
        HttpError::with_reason(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented by this server yet"),
        )
    }
    pub fn too_large() -> HttpError {
        HttpError {
            raw_body: Some("Maximum request body size 1048576 exceeded.".into()),
            ..HttpError::new(StatusCode::PAYLOAD_TOO_LARGE)
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let reason = self
            .reason
            .clone()
            .unwrap_or_else(|| self.status.canonical_reason().unwrap_or("Unknown").to_string());
        let is_500 = self.status == StatusCode::INTERNAL_SERVER_ERROR && self.reason.is_none();
        let text = match (&self.raw_body, is_500) {
            (Some(b), _) => b.clone(),
            (None, true) => "500 Internal Server Error\n\nServer got itself in trouble".to_string(),
            (None, false) => format!("{}: {}", self.status.as_u16(), reason),
        };
        let mut resp = Response::new(Body::from_bytes(text));
        *resp.status_mut() = self.status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        if let Some(allow) = &self.allow {
            if let Ok(v) = HeaderValue::from_str(allow) {
                resp.headers_mut().insert(ALLOW, v);
            }
        }
        if is_500 {
            resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(r) = &self.reason {
            // Line breaks would corrupt the status line; the body keeps the full text.
            let clean: String = r.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            if let Ok(p) = hyper::ext::ReasonPhrase::try_from(clean.into_bytes()) {
                resp.extensions_mut().insert(p);
            }
        }
        resp
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> HttpError {
        match e {
            StoreError::NotFound => HttpError::not_found(),
            StoreError::Refused(r) => HttpError::bad_request(r),
            StoreError::InvalidDigest(r) | StoreError::DigestMismatch(r) => {
                HttpError::with_reason(StatusCode::UNPROCESSABLE_ENTITY, r)
            }
            StoreError::Conflict(r) => HttpError::with_reason(StatusCode::CONFLICT, r),
            StoreError::Failed(r) => HttpError::with_reason(StatusCode::INTERNAL_SERVER_ERROR, r),
            StoreError::Io(err) => {
                tracing::error!("i/o error: {err}");
                HttpError::new(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> HttpError {
        HttpError::from(StoreError::from(e))
    }
}
