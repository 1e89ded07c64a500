//! The HTTP front end: accepting connections, routing, and one module per
//! resource. A handler parses its request, finds its place through
//! `locate`, asks the storage layer, and answers; errors become responses
//! in `error.rs` only.

pub mod access_log;
mod archive;
mod artifact;
mod batch;
mod branches;
mod error;
mod file;
mod format;
mod home;
mod job;
mod jsonbody;
mod locate;
pub mod metrics;
mod ops;
pub mod pages;
mod products;
mod registry;
mod respond;
pub mod route;
pub mod server;
pub mod static_files;
mod tag;
mod upload;

use std::rc::Rc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use crate::auth::{Access, Auth, Refusal};
pub use crate::body::Body;
use crate::cleanup::Scheduler;
use crate::config::Config;
use crate::store::Store;
pub use error::{HttpError, HttpResult};
use route::{Endpoint, Route};
pub use static_files::load_cli;

/// Everything a request handler needs, shared by all connections.
pub struct Ctx {
    pub store: Rc<Store>,
    pub auth: Rc<Auth>,
    pub cfg: Rc<Config>,
    pub cleanup: Rc<Scheduler>,
    pub publisher: Rc<crate::publish::Publisher>,
    /// The HTML pages' templates.
    pub pages: pages::Pages,
    /// The `/cli` client, read once at startup, if one was found.
    pub cli_script: Option<static_files::CliFile>,
    /// When the server started (`/health`'s uptime).
    pub started: std::time::Instant,
    /// The counters `/metrics` reports.
    pub metrics: metrics::Metrics,
    /// Open connections (the server's count, for `/metrics`).
    pub connections: Rc<std::cell::Cell<usize>>,
}

/// A request after routing: the parts, the decoded path and the body.
pub struct Req {
    pub parts: hyper::http::request::Parts,
    pub body: Option<Incoming>,
    /// Percent-decoded path; routing, redirects and ACLs work on it.
    pub path: String,
    /// What the caller may read (listings, aliases).
    pub access: Access,
    /// How long the body may pause before the request is given up.
    pub body_timeout: std::time::Duration,
}

impl Req {
    /// The next piece of the request body (`None` at its end). A client
    /// that sends nothing for `body_timeout` gets 408; one whose body breaks
    /// off gets 400. Either way the caller drops what it has written.
    pub async fn next_body_frame(&mut self) -> HttpResult<Option<bytes::Bytes>> {
        use http_body_util::BodyExt;
        let Some(body) = self.body.as_mut() else {
            return Ok(None);
        };
        loop {
            let frame = match tokio::time::timeout(self.body_timeout, body.frame()).await {
                Err(_) => return Err(HttpError::BodyTimeout),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    tracing::debug!("request body interrupted: {e}");
                    return Err(HttpError::bad_request("request body interrupted"));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry no data.
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
    }

    pub fn method(&self) -> &Method {
        &self.parts.method
    }
    /// A header's value as text. Takes a `HeaderName` constant as well as a
    /// string; the constant saves parsing the name on every request.
    pub fn header<K: hyper::header::AsHeaderName>(&self, name: K) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// A header that must not be repeated: 400 when it is given twice (two
    /// `Digest` values would leave it to chance which one is checked).
    pub fn single_header(&self, name: &'static str) -> HttpResult<Option<&str>> {
        let mut values = self.parts.headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(HttpError::bad_request(format!("{name} header given more than once")));
        }
        Ok(first.and_then(|v| v.to_str().ok()))
    }
    pub fn query(&self) -> Vec<(String, String)> {
        parse_query(self.parts.uri.query().unwrap_or(""))
    }
    pub fn wants_html(&self) -> bool {
        respond::wants_html(&self.parts)
    }
}

/// Runs a sequence of store operations to its end even if the client goes
/// away meanwhile. hyper drops the handler of a closed connection, and a
/// sequence cut at an await (a blob renamed but not linked, product links
/// removed but not rebuilt) must not be left half done.
///
/// The task starts at the call. The sequence is boxed: tokio moves a
/// task's whole stage several times (at spawn, completion and reading the
/// output), and the handler's own future would otherwise hold the state
/// of the whole sequence too; both were kilobytes copied per upload.
pub fn detached<T: 'static>(
    fut: impl std::future::Future<Output = T> + 'static,
) -> impl std::future::Future<Output = HttpResult<T>> {
    let task = tokio_uring::spawn(Box::pin(fut));
    async move { task.await.map_err(|_| HttpError::Internal) }
}

/// `application/x-www-form-urlencoded` query parsing (`+` is a space).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

/// Answers one request: decode the path, authorise, route, log.
pub async fn handle(ctx: Rc<Ctx>, req: Request<Incoming>, peer: &str) -> Response<Body> {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let line = |parts, access, route| access_log::Line {
        parts,
        access,
        peer,
        started,
        json: ctx.cfg.log_json,
        metrics: &ctx.metrics,
        route,
    };
    let raw = parts.uri.path();
    // A path that is not UTF-8 once decoded names nothing; it is still
    // authorised first (lossily decoded), so a refusal stays a 401.
    let (path, decodable) = match percent_encoding::percent_decode_str(raw).decode_utf8() {
        Ok(p) => (p.into_owned(), true),
        Err(_) => (
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned(),
            false,
        ),
    };
    // Routing is pure; done first so every answer is counted by its route.
    let route = if decodable {
        route::route(&path)
    } else {
        Route::NotFound
    };
    let kind = metrics::route_kind(&route);
    // aiohttp's parser rejects method tokens it does not know, before
    // anything else looks at the request.
    if !KNOWN_METHODS.contains(&parts.method) {
        let resp = HttpError::bad_request("Bad Request").into_response();
        line(&parts, None, kind).log(&resp, ctx.cfg.access_log);
        return with_server_header(resp);
    }
    // Authentication comes before routing: a refusal is a 401 even for
    // paths that do not exist or methods that are not allowed.
    let access = match ctx.auth.authorize(&parts.method, &path, &parts.headers).await {
        Ok(access) => access,
        Err(refusal) => {
            let err = match refusal {
                Refusal::Unauthorized => HttpError::unauthorized(&ctx.cfg.auth_realm, &path),
                Refusal::BadRequest(reason) => HttpError::BadRequest(reason),
            };
            let resp = err.into_response();
            line(&parts, None, kind).log(&resp, ctx.cfg.access_log);
            return with_server_header(resp);
        }
    };
    let mut req = Req {
        parts,
        body: Some(body),
        path,
        access,
        body_timeout: std::time::Duration::from_secs(ctx.cfg.body_timeout.max(1)),
    };
    let read_only_allow = route.read_only_allow();
    let resp = match dispatch(&ctx, &mut req, route).await {
        Ok(r) => r,
        // A write through an alias: the endpoint's read-only methods.
        Err(HttpError::ReadOnly) => HttpError::MethodNotAllowed(read_only_allow.into()).into_response(),
        Err(e) => e.into_response(),
    };
    line(&req.parts, Some(&req.access), kind).log(&resp, ctx.cfg.access_log);
    with_server_header(resp)
}

/// The variables a page gets from its URL (`user`, `branch`, `tag`…).
pub type Vars = Vec<(&'static str, String)>;

/// The URL variable `user`, when the repository is a user's.
fn user_var(repo: &crate::store::Repo) -> Vars {
    repo.user.iter().map(|u| ("user", u.clone())).collect()
}

/// JSON, or for a browser (`Accept` with `html`) the page `template` of
/// the same data.
pub fn answer(ctx: &Ctx, req: &Req, template: &str, vars: Vars, data: serde_json::Value) -> HttpResult<Response<Body>> {
    if req.wants_html() {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ctx.pages.render(template, req, &vars, data)
    } else {
        Ok(respond::json(&data))
    }
}

/// Every answer names its server (docs/spec/http-api.md §1).
fn with_server_header(mut resp: Response<Body>) -> Response<Body> {
    const SERVER: hyper::header::HeaderValue =
        hyper::header::HeaderValue::from_static(concat!("dlrepo/", env!("CARGO_PKG_VERSION")));
    resp.headers_mut().insert(hyper::header::SERVER, SERVER);
    resp
}

/// The methods aiohttp's parser knows; any other is a 400.
const KNOWN_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

async fn dispatch(ctx: &Rc<Ctx>, req: &mut Req, route: Route) -> HttpResult<Response<Body>> {
    use Endpoint::*;
    match route.endpoint(req.method())? {
        GetHome => home::get_home(ctx, req).await,
        GetUserHome(a) => home::get_user_home(ctx, req, &a).await,
        GetCli => static_files::get_cli(ctx, req),
        GetHealth => ops::get_health(ctx, req).await,
        GetCleanup => ops::get_cleanup(ctx),
        GetMetrics => metrics::get_metrics(ctx).await,
        RunCleanup => ops::run_cleanup(ctx),
        GetStatic(file) => static_files::get_static(ctx, req, &file).await,
        ListBranches(a) => branches::list_branches(ctx, req, &a).await,
        GetBranch(a) => branches::get_branch(ctx, req, &a).await,
        UpdateBranch(a) => branches::update_branch(ctx, req, &a).await,
        DeleteBranch(a) => branches::delete_branch(ctx, req, &a).await,
        GetTag(a) => tag::get_tag(ctx, req, &a).await,
        UpdateTag(a) => tag::update_tag(ctx, req, &a).await,
        DeleteTag(a) => tag::delete_tag(ctx, req, &a).await,
        GetJobTar(a) => archive::get_job_tar(ctx, req, &a).await,
        GetJob(a) => job::get_job(ctx, req, &a).await,
        UpdateJobMetadata(a) => job::update_job_metadata(ctx, req, &a).await,
        UpdateJob(a) => job::update_job(ctx, req, &a).await,
        UnlockJob(a) => job::unlock_job(ctx, req, &a).await,
        DeleteJob(a) => job::delete_job(ctx, req, &a).await,
        GetFormatTar(a) => archive::get_format_tar(ctx, req, &a).await,
        GetFormatSha256(a) => archive::get_format_sha256(ctx, req, &a).await,
        GetFormatShortcut(a) => format::get_format_shortcut(ctx, req, &a).await,
        GetFormat(a) => format::get_format(ctx, req, &a).await,
        ProbeFormat(a) => format::probe_format(ctx, req, &a).await,
        FinalizeFormat(a) => format::finalize_format(ctx, req, &a).await,
        DeleteFormat(a) => format::delete_format(ctx, req, &a).await,
        GetArtifact(a) => artifact::get_artifact(ctx, req, &a).await,
        PutArtifact(a) => upload::put_artifact(ctx, req, &a).await,
        ListProducts(a) => products::list_products(ctx, req, &a).await,
        GetVersionTar(a) => archive::get_version_tar(ctx, req, &a).await,
        GetVersion(a) => products::get_version(ctx, req, &a).await,
        Registry(e) => registry::dispatch(ctx, req, e).await,
    }
}
