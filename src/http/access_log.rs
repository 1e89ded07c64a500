//! The access log: one line per answered request at INFO (docs/operations.md)
//! and the original's line at DEBUG (docs/spec/config.md §6).

use std::time::Instant;

use hyper::header::CONTENT_LENGTH;
use hyper::Response;

use super::Body;
use crate::auth::Access;

/// Log events of answered requests carry this target.
pub const TARGET: &str = "access";

/// What a handler adds to the access line: whether an upload's content
/// was linked to a blob the server had (no body) or stored from its
/// body, and the body's size.
#[derive(Clone, Copy)]
pub struct AccessNote {
    pub upload: &'static str,
    pub received: u64,
}

pub struct Line<'a> {
    pub parts: &'a hyper::http::request::Parts,
    pub access: Option<&'a Access>,
    pub peer: &'a str,
    pub started: Instant,
    /// One JSON object of fields rather than a text line.
    pub json: bool,
    pub metrics: &'a super::metrics::Metrics,
    /// The kind of route ([`super::metrics::route_kind`]).
    pub route: usize,
}

impl Line<'_> {
    fn client(&self) -> &str {
        self.parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .unwrap_or(self.peer)
    }

    /// Counts the request, then logs it if the line is wanted.
    pub fn log(&self, resp: &Response<Body>, enabled: bool) {
        self.original(resp);
        let took = self.started.elapsed();
        let micros = took.as_micros() as u64;
        let note = resp.extensions().get::<AccessNote>().copied();
        let received = note.map(|n| n.received).unwrap_or_else(|| {
            self.parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0)
        });
        // A streamed answer (an archive) has no length up front.
        let sent = if self.parts.method == hyper::Method::HEAD {
            Some(0)
        } else {
            resp.headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .or_else(|| hyper::body::Body::size_hint(resp.body()).exact())
        };
        self.metrics.observe(&super::metrics::Observed {
            method: &self.parts.method,
            route: self.route,
            status: resp.status().as_u16(),
            bytes_in: received,
            bytes_out: sent,
            upload: note.map(|n| n.upload),
            took,
        });
        // Nothing is formatted unless the line is wanted.
        if !enabled || !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        let user = match self.access.and_then(|a| a.identity.as_ref()) {
            Some(id) => id.login.clone().unwrap_or_else(|| "-".into()),
            None => "-".into(),
        };
        let path = self.parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
        let status = resp.status().as_u16();
        let upload = note.map(|n| n.upload).unwrap_or("-");
        let time = httpdate::fmt_http_date(std::time::SystemTime::now());
        if self.json {
            tracing::info!(
                target: TARGET,
                time,
                client = self.client(),
                user,
                method = %self.parts.method,
                path,
                status,
                bytes_in = received,
                bytes_out = sent,
                micros,
                upload,
                "request"
            );
        } else {
            let sent = sent.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
            tracing::info!(
                target: TARGET,
                "[{time}] {} {user} \"{} {path}\" {status} {received} {sent} {micros}us {upload}",
                self.client(),
                self.parts.method
            );
        }
    }

    /// The original's line: `<user>@<client> - <status> <method> <path> '<agent>'`,
    /// `None` when not authenticated.
    fn original(&self, resp: &Response<Body>) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let user = self.access.map(Access::log_name).unwrap_or_else(|| "None".into());
        let agent = self.parts.headers.get("user-agent").and_then(|v| v.to_str().ok());
        tracing::debug!(
            "{user}@{} - {} {} {} {}",
            self.client(),
            resp.status().as_u16(),
            self.parts.method,
            self.parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(""),
            agent.map(|ua| format!("'{ua}'")).unwrap_or_else(|| "None".into())
        );
    }
}
