//! The operator's endpoints beside the repository: `/health` for load
//! balancers and watchdogs, `/cleanup` for the cleanup status and a run
//! on demand. Who may call them is decided before routing (auth).

use hyper::{Response, StatusCode};
use serde_json::json;

use super::{respond, Body, Ctx, HttpResult, Req};
use crate::cleanup::{RunKind, Trigger};

/// 200 while the root takes writes, 503 when it does not (full, read-only).
pub async fn get_health(ctx: &Ctx, req: &Req) -> HttpResult<Response<Body>> {
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
    if *req.method() == hyper::Method::HEAD {
        *r.body_mut() = Body::empty();
    }
    Ok(r)
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
