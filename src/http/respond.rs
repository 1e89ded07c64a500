//! Building successful responses with the original's exact headers.

use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};
use serde_json::Value;

use crate::body::Body;
pub use crate::names::encode_url_path as encode_path;
use crate::store::pyjson;

/// `200 OK`, empty body, no `Content-Type`.
pub fn ok_empty() -> Response<Body> {
    let mut r = Response::new(Body::empty());
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// A JSON answer in Python's encoding, keys in the order given.
pub fn json(v: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from_bytes(pyjson::dumps(v)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from_bytes(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// `302 Found` to an absolute path.
pub fn redirect(path: &str) -> Response<Body> {
    let mut r = text(StatusCode::FOUND, "302: Found".into());
    if let Ok(v) = HeaderValue::from_str(&encode_path(path)) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// For a URL of the form `<dir URL without its slash>.<ext>` (archives,
/// digest lists): a redirect when the request path is not the canonical one.
pub fn redirect_unless_suffixed(request_path: &str, dir_url: &str, ext: &str) -> Option<Response<Body>> {
    let canonical = format!("{}.{ext}", dir_url.trim_end_matches('/'));
    (request_path != canonical).then(|| redirect(&canonical))
}

/// Whether the client wants HTML (`Accept` contains `html`).
pub fn wants_html(req: &hyper::http::request::Parts) -> bool {
    req.headers
        .get(hyper::header::ACCEPT)
        .map(|v| v.as_bytes().windows(4).any(|w| w == b"html"))
        .unwrap_or(false)
}
