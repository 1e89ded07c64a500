//! The operator's endpoints beside the repository: `/health` for load
//! balancers and watchdogs, `/cleanup` for the cleanup status and a run
//! on demand. Who may call them is decided before routing (auth).

use hyper::{Response, StatusCode};
use serde_json::json;

use super::{respond, Body, Ctx, HttpResult, Req};
use crate::cleanup::{RunKind, Trigger};

/// 200 while the root takes writes, 503 when it does not (full, read-only).
pub async fn get_health(ctx: &Ctx, req: &Req) -> HttpResult<Response<Body>> {
    let mut r = health(ctx).await?;
    if *req.method() == hyper::Method::HEAD {
        *r.body_mut() = Body::empty();
    }
    Ok(r)
}

async fn health(ctx: &Ctx) -> HttpResult<Response<Body>> {
    let h = ctx.store.health().await;
    let body = json!({
        "status": if h.writable { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": ctx.started.elapsed().as_secs(),
        "root_writable": h.writable,
        "root_error": h.error,
        "free_bytes": h.free_bytes,
        "cleanup_running": ctx.cleanup.is_running(),
    });
    let mut r = respond::json(&body);
    if !h.writable {
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    Ok(r)
}

/// An answer of the metrics listener, where nobody is authenticated.
pub async fn metrics_listener(ctx: &Ctx, req: &hyper::Request<hyper::body::Incoming>) -> Response<Body> {
    let res = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => super::metrics::get_metrics(ctx).await,
        (&hyper::Method::GET, "/health") => health(ctx).await,
        (_, "/metrics" | "/health") => Err(super::HttpError::MethodNotAllowed("GET".into())),
        _ => Err(super::HttpError::NotFound),
    };
    super::with_server_header(res.unwrap_or_else(|e| e.into_response()))
}

/// What `<root>/.dlrepo-rs/cleanup.json` holds, live.
pub fn get_cleanup(ctx: &Ctx) -> HttpResult<Response<Body>> {
    Ok(respond::json(&ctx.cleanup.status_json()))
}

/// Schedules a full cleanup, as SIGUSR1 does; 202 with the status.
pub fn run_cleanup(ctx: &Ctx) -> HttpResult<Response<Body>> {
    ctx.cleanup.schedule(RunKind::Full, Trigger::Http);
    let mut r = respond::json(&ctx.cleanup.status_json());
    *r.status_mut() = StatusCode::ACCEPTED;
    Ok(r)
}
