//! Counters for `GET /metrics` (docs/operations.md). Requests bump plain
//! integers on the one thread (no lock, no allocation); a scrape copies
//! them, with the store's and the cleanup's figures, into a
//! `prometheus-client` collector that writes the OpenMetrics text.

use std::cell::Cell;
use std::time::Duration;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::route::Route;
use super::{Body, Ctx, HttpError, HttpResult};

const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"];
const ROUTES: [&str; 16] = [
    "home",
    "cli",
    "operations",
    "static",
    "branches",
    "branch",
    "tag",
    "job",
    "format",
    "artifact",
    "archive",
    "products",
    "version",
    "registry",
    "not_found",
    "user_home",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Seconds: small answers in the first buckets, large transfers in the last.
const BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Which of [`ROUTES`] a route is.
pub fn route_kind(r: &Route) -> usize {
    match r {
        Route::Home => 0,
        Route::Cli => 1,
        Route::Health | Route::Cleanup | Route::Metrics => 2,
        Route::Static(_) => 3,
        Route::Branches(_) => 4,
        Route::Branch(_) => 5,
        Route::Tag(_) => 6,
        Route::Job(_) => 7,
        Route::Format(_) | Route::FormatShortcut(_) | Route::FormatSha256(_) => 8,
        Route::Artifact(_) => 9,
        Route::JobTar(_) | Route::FormatTar(_) | Route::VersionTar(_) => 10,
        Route::Products(_) => 11,
        Route::Version(_) => 12,
        Route::Registry(_) => 13,
        Route::NotFound => 14,
        Route::UserHome(_) => 15,
    }
}

#[derive(Default)]
struct Histogram {
    buckets: [Cell<u64>; BUCKETS.len()],
    count: Cell<u64>,
    sum_micros: Cell<u64>,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            bump(&self.buckets[i], 1);
        }
        bump(&self.count, 1);
        bump(&self.sum_micros, d.as_micros() as u64);
    }

    /// Per-bucket counts (the encoder makes them cumulative), the last
    /// for what lies above every bound.
    fn snapshot(&self) -> HistSnap {
        let mut buckets: Vec<(f64, u64)> = BUCKETS.iter().zip(&self.buckets).map(|(b, c)| (*b, c.get())).collect();
        let within: u64 = buckets.iter().map(|(_, c)| c).sum();
        // f64::MAX is what the encoder writes as `+Inf`.
        buckets.push((f64::MAX, self.count.get().saturating_sub(within)));
        HistSnap {
            sum: self.sum_micros.get() as f64 / 1e6,
            count: self.count.get(),
            buckets,
        }
    }
}

fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

#[derive(Default)]
pub struct Metrics {
    requests: [[[Cell<u64>; CLASSES.len()]; ROUTES.len()]; METHODS.len()],
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    uploads_stored: Cell<u64>,
    uploads_linked: Cell<u64>,
    upload_seconds: Histogram,
    download_seconds: Histogram,
}

/// One answered request, as the access log sees it.
pub struct Observed<'a> {
    pub method: &'a Method,
    pub route: usize,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: Option<u64>,
    pub upload: Option<&'static str>,
    pub took: Duration,
}

impl Metrics {
    pub fn observe(&self, o: &Observed) {
        let m = METHODS
            .iter()
            .position(|m| *m == o.method.as_str())
            .unwrap_or(METHODS.len() - 1);
        let class = usize::from(o.status / 100).clamp(1, 5) - 1;
        bump(&self.requests[m][o.route.min(ROUTES.len() - 1)][class], 1);
        bump(&self.bytes_in, o.bytes_in);
        bump(&self.bytes_out, o.bytes_out.unwrap_or(0));
        match o.upload {
            Some("stored") => bump(&self.uploads_stored, 1),
            Some("linked") => bump(&self.uploads_linked, 1),
            _ => {}
        }
        if ROUTES[o.route.min(ROUTES.len() - 1)] == "artifact" && o.status < 400 {
            match *o.method {
                Method::PUT => self.upload_seconds.observe(o.took),
                Method::GET => self.download_seconds.observe(o.took),
                _ => {}
            }
        }
    }
}

struct HistSnap {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

/// Everything one scrape reports, copied out of the thread's counters.
#[derive(Debug)]
struct Snapshot {
    requests: Vec<([(&'static str, &'static str); 3], u64)>,
    counters: Vec<(&'static str, &'static str, u64)>,
    uploads: [([(&'static str, &'static str); 1], u64); 2],
    cleanup_runs: Vec<([(&'static str, &'static str); 2], u64)>,
    gauges: Vec<(&'static str, &'static str, i64)>,
    histograms: Vec<(&'static str, &'static str, HistSnap)>,
}

impl std::fmt::Debug for HistSnap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HistSnap({})", self.count)
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(
            "dlrepo_http_requests",
            "Requests answered, by method, kind of route and status class",
            None,
            MetricType::Counter,
        )?;
        for (labels, v) in &self.requests {
            ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "dlrepo_uploads",
            "Artifact uploads: stored from their body, or linked to a blob the server had",
            None,
            MetricType::Counter,
        )?;
        for (labels, v) in &self.uploads {
            ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "dlrepo_cleanup_runs",
            "Cleanup runs finished since startup, by kind and trigger",
            None,
            MetricType::Counter,
        )?;
        for (labels, v) in &self.cleanup_runs {
            ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
        }
        for (name, help, v) in &self.counters {
            let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(*v).encode(m)?;
        }
        for (name, help, v) in &self.gauges {
            let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(*v).encode(m)?;
        }
        for (name, help, h) in &self.histograms {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
            m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub async fn get_metrics(ctx: &Ctx) -> HttpResult<Response<Body>> {
    let mx = &ctx.metrics;
    let mut requests = Vec::new();
    for (mi, per_method) in mx.requests.iter().enumerate() {
        for (ri, per_route) in per_method.iter().enumerate() {
            for (ci, c) in per_route.iter().enumerate() {
                if c.get() > 0 {
                    requests.push((
                        [("method", METHODS[mi]), ("route", ROUTES[ri]), ("status", CLASSES[ci])],
                        c.get(),
                    ));
                }
            }
        }
    }
    let (last, totals) = ctx.cleanup.figures();
    let counters = vec![
        (
            "dlrepo_http_request_bytes",
            "Bytes of request bodies received",
            mx.bytes_in.get(),
        ),
        (
            "dlrepo_http_response_bytes",
            "Bytes of answer bodies of known length",
            mx.bytes_out.get(),
        ),
        (
            "dlrepo_cleanup_tags_deleted",
            "Tags deleted by retention policies",
            totals.tags_deleted,
        ),
        (
            "dlrepo_cleanup_orphans_removed",
            "Orphan blobs removed",
            totals.blobs_removed,
        ),
        (
            "dlrepo_cleanup_reclaimed_bytes",
            "Bytes reclaimed by the orphan GC",
            totals.bytes_reclaimed,
        ),
    ];
    let uploads = [
        ([("result", "stored")], mx.uploads_stored.get()),
        ([("result", "linked")], mx.uploads_linked.get()),
    ];
    let free = crate::io::free_bytes(&ctx.store.root).map(|b| b as i64).unwrap_or(-1);
    let gauges = vec![
        (
            "dlrepo_cleanup_running",
            "1 while a cleanup runs",
            i64::from(ctx.cleanup.is_running()),
        ),
        (
            "dlrepo_cleanup_last_milliseconds",
            "Duration of the last cleanup run, in milliseconds",
            last.as_ref().map_or(0, |r| (r.seconds * 1000.0) as i64),
        ),
        (
            "dlrepo_cleanup_last_files_scanned",
            "Files the last orphan scan looked at",
            last.as_ref().map_or(0, |r| r.files_scanned as i64),
        ),
        (
            "dlrepo_cleanup_last_failed",
            "1 when the last cleanup run met an error",
            i64::from(last.as_ref().is_some_and(|r| r.error.is_some())),
        ),
        (
            "dlrepo_requests_in_flight",
            "Requests whose handler is running",
            ctx.store.activity.in_flight() as i64,
        ),
        (
            "dlrepo_open_connections",
            "Client connections open, idle ones included",
            ctx.connections.get() as i64,
        ),
        (
            "dlrepo_staging_uploads",
            "Upload bodies being received into staging files",
            ctx.store.staging_in_flight() as i64,
        ),
        (
            "dlrepo_digests_journal_backlog",
            "Formats whose .digests file still waits for the journal's write-back",
            ctx.store.unflushed_indexes() as i64,
        ),
        (
            "dlrepo_root_free_bytes",
            "Bytes free on the root's file system (-1: unknown)",
            free,
        ),
    ];
    let histograms = vec![
        (
            "dlrepo_upload_duration_seconds",
            "Artifact uploads, from the request head to the answer",
            mx.upload_seconds.snapshot(),
        ),
        (
            "dlrepo_download_duration_seconds",
            "Artifact downloads, from the request head to the answer's head",
            mx.download_seconds.snapshot(),
        ),
    ];
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot {
        requests,
        counters,
        uploads,
        cleanup_runs: totals
            .by_cause
            .into_iter()
            .map(|(k, t, n)| ([("kind", k), ("trigger", t)], n))
            .collect(),
        gauges,
        histograms,
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|_| HttpError::Failed("cannot encode the metrics".into()))?;
    let mut r = Response::new(Body::from_bytes(bytes::Bytes::from(text)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
}
