//! The HTTP front end: accepting connections, routing, and one module per
//! resource. Handlers call the storage layer; errors become responses in
//! `error.rs` only.

mod archive;
mod artifact;
mod batch;
pub mod body;
mod error;
mod file;
mod format;
mod job;
mod jsonbody;
mod listing;
mod products;
mod respond;
pub mod route;
pub mod server;
mod static_files;
mod upload;

use std::rc::Rc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use crate::auth::{Access, Auth};
use crate::cleanup::Scheduler;
use crate::config::Config;
use crate::io;
use crate::names::{self, Alias};
use crate::store::repo::JobRef;
use crate::store::{Repo, Store};
pub use body::Body;
pub use error::{HttpError, HttpResult};
use route::{FormatAddr, Route};
pub use static_files::load_cli;

/// Everything a request handler needs, shared by all connections.
pub struct Ctx {
    pub store: Rc<Store>,
    pub auth: Rc<Auth>,
    pub cfg: Rc<Config>,
    pub cleanup: Rc<Scheduler>,
    /// The `/cli` script, read once at startup.
    pub cli_script: bytes::Bytes,
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
                Err(_) => {
                    return Err(HttpError::with_reason(
                        hyper::StatusCode::REQUEST_TIMEOUT,
                        "request body timed out",
                    ))
                }
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
pub async fn detached<T: 'static>(fut: impl std::future::Future<Output = T> + 'static) -> HttpResult<T> {
    tokio_uring::spawn(fut)
        .await
        .map_err(|_| HttpError::new(hyper::StatusCode::INTERNAL_SERVER_ERROR))
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
    let (parts, body) = req.into_parts();
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
    // aiohttp's parser rejects method tokens it does not know, before
    // anything else looks at the request.
    if !KNOWN_METHODS.contains(&parts.method) {
        let resp = HttpError::new(hyper::StatusCode::BAD_REQUEST).into_response();
        log_access(&parts, None, &resp, peer);
        return with_server_header(resp);
    }
    // Authentication comes before routing: a refusal is a 401 even for
    // paths that do not exist or methods that are not allowed.
    let Ok(access) = ctx.auth.authorize(&parts.method, &path, &parts.headers).await else {
        let resp = unauthorized(&ctx, &path);
        log_access(&parts, None, &resp, peer);
        return with_server_header(resp);
    };
    let mut req = Req {
        parts,
        body: Some(body),
        path,
        access,
        body_timeout: std::time::Duration::from_secs(ctx.cfg.body_timeout.max(1)),
    };
    let route = if decodable {
        route::route(&req.path)
    } else {
        Route::NotFound
    };
    let resp = match dispatch(&ctx, &mut req, route).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    log_access(&req.parts, Some(&req.access), &resp, peer);
    with_server_header(resp)
}

/// Every answer names its server (http-api.md §1).
fn with_server_header(mut resp: Response<Body>) -> Response<Body> {
    const SERVER: hyper::header::HeaderValue =
        hyper::header::HeaderValue::from_static(concat!("dlrepo/", env!("CARGO_PKG_VERSION")));
    resp.headers_mut().insert(hyper::header::SERVER, SERVER);
    resp
}

/// The 401 of auth.md §5: plain text, or the registry's JSON under `/v2/`.
fn unauthorized(ctx: &Ctx, path: &str) -> Response<Body> {
    use hyper::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
    let mut resp = if path.starts_with("/v2/") {
        let mut r = respond::json(&serde_json::json!({
            "errors": [{"code": "UNAUTHORIZED", "message": "Authentication is required."}]
        }));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut().insert(
            "docker-distribution-api-version",
            HeaderValue::from_static("registry/2.0"),
        );
        *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
        r
    } else {
        HttpError::new(hyper::StatusCode::UNAUTHORIZED).into_response()
    };
    let challenge = format!("Basic realm=\"{}\", charset=\"utf-8\"", ctx.cfg.auth_realm);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

/// The access log line of config.md §6, at DEBUG. `None`: not authenticated.
fn log_access(parts: &hyper::http::request::Parts, access: Option<&Access>, resp: &Response<Body>, peer: &str) {
    // Nothing is formatted unless the line is wanted.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let user = access.map(Access::log_name).unwrap_or_else(|| "None".into());
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    tracing::debug!(
        "{user}@{} - {} {} {} {}",
        header("x-forwarded-for")
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .unwrap_or(peer),
        resp.status().as_u16(),
        parts.method,
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(""),
        header("user-agent")
            .map(|ua| format!("'{ua}'"))
            .unwrap_or_else(|| "None".into())
    );
}

fn user_repo(ctx: &Ctx, user: &Option<String>) -> HttpResult<Repo> {
    match user {
        None => Ok(ctx.store.repo(None)),
        Some(u) => {
            let u = names::lower(u);
            if !names::is_valid_user(&u) {
                return Err(HttpError::not_found());
            }
            Ok(ctx.store.repo(Some(&u)))
        }
    }
}

/// Lowercases a URL name; a reserved or malformed one does not exist.
fn name(raw: &str) -> HttpResult<String> {
    let n = names::lower(raw);
    if names::is_valid_name(&n) {
        Ok(n)
    } else {
        Err(HttpError::not_found())
    }
}

/// Resolves a tag segment that may be an alias, among the tags the caller
/// may read. Writes through an alias are refused with 405 and `allow`.
async fn resolve_tag(
    access: &Access,
    repo: &Repo,
    branch: &str,
    tag_raw: &str,
    write: bool,
    allow: &str,
) -> HttpResult<String> {
    let tag = names::lower(tag_raw);
    match Alias::parse(&tag) {
        Some(_) if write => Err(HttpError::method_not_allowed(allow)),
        Some(alias) => {
            let prefix = format!("{}/branches/{branch}/", repo.url_prefix());
            let readable = |t: &str| access.can_read(&format!("{prefix}{t}/"));
            crate::store::tree::resolve_tag_alias(repo, branch, alias, readable)
                .await?
                .ok_or_else(HttpError::not_found)
        }
        None if names::is_valid_name(&tag) => Ok(tag),
        None => Err(HttpError::not_found()),
    }
}

/// The job a `branches/<b>/<t>/<j>` URL names in `repo`: names lowercased,
/// the tag resolved as [`resolve_tag`] does (writes through an alias: 405).
async fn job_ref(access: &Access, repo: Repo, branch: &str, tag: &str, job: &str, write: bool) -> HttpResult<JobRef> {
    let branch = name(branch)?;
    let tag = resolve_tag(access, &repo, &branch, tag, write, "GET").await?;
    Ok(JobRef {
        repo,
        branch,
        tag,
        job: name(job)?,
    })
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
    let allowed = route.allowed();
    if matches!(route, Route::NotFound) {
        return Err(HttpError::not_found());
    }
    if matches!(route, Route::Registry) {
        return Err(HttpError::not_implemented("The container registry"));
    }
    if !allowed.split(',').any(|m| m == req.method().as_str()) {
        return Err(HttpError::method_not_allowed(allowed));
    }
    match route {
        Route::Home => Err(HttpError::not_implemented("The web interface")),
        Route::UserHome { user, slash } => {
            let repo = user_repo(ctx, &Some(user.clone()))?;
            if !io::is_dir(&repo.dir).await {
                return Err(HttpError::not_found());
            }
            if !slash {
                return Ok(respond::redirect(&format!("/~{user}/")));
            }
            Err(HttpError::not_implemented("The web interface"))
        }
        Route::Cli => Ok(static_files::cli(ctx, req)),
        Route::Static { file } => static_files::static_file(ctx, req, &file).await,
        Route::Branches { user, slash } => listing::branches(ctx, req, &user, slash).await,
        Route::Branch { user, branch, slash } => listing::branch(ctx, req, &user, &branch, slash).await,
        Route::Tag {
            user,
            branch,
            tag,
            slash,
        } => listing::tag(ctx, req, &user, &branch, &tag, slash).await,
        Route::Job {
            user,
            branch,
            tag,
            job,
            slash,
        } => job::job(ctx, req, &user, &branch, &tag, &job, slash).await,
        Route::Format { user, parent, format } => {
            format::format_dir(ctx, req, &FormatAddr { user, parent, format }).await
        }
        Route::FormatShortcut { user, parent, format } => {
            format::shortcut(ctx, req, &FormatAddr { user, parent, format }).await
        }
        Route::Artifact {
            user,
            parent,
            format,
            path,
        } => match *req.method() {
            Method::PUT => upload::put(ctx, req, &FormatAddr { user, parent, format }, &path).await,
            _ => artifact::get(ctx, req, &FormatAddr { user, parent, format }, &path).await,
        },
        Route::JobTar { user, branch, tag, job } => archive::job_tar(ctx, req, &user, &branch, &tag, &job).await,
        Route::FormatTar { user, parent, format } => {
            archive::format_tar(ctx, req, &FormatAddr { user, parent, format }).await
        }
        Route::FormatSha256 { user, parent, format } => {
            archive::format_sha256(ctx, req, &FormatAddr { user, parent, format }).await
        }
        Route::VersionTar(addr) => archive::version_tar(ctx, req, &addr).await,
        Route::Products { user, slash } => {
            let level = products::Level {
                product: None,
                variant: None,
                pbranch: None,
            };
            products::listing(ctx, req, &user, level, slash).await
        }
        Route::Product { user, product, slash } => {
            let level = products::Level {
                product: Some(&product),
                variant: None,
                pbranch: None,
            };
            products::listing(ctx, req, &user, level, slash).await
        }
        Route::Variant {
            user,
            product,
            variant,
            slash,
        } => {
            let level = products::Level {
                product: Some(&product),
                variant: Some(&variant),
                pbranch: None,
            };
            products::listing(ctx, req, &user, level, slash).await
        }
        Route::ProductBranch {
            user,
            product,
            variant,
            pbranch,
            slash,
        } => {
            let level = products::Level {
                product: Some(&product),
                variant: Some(&variant),
                pbranch: Some(&pbranch),
            };
            products::listing(ctx, req, &user, level, slash).await
        }
        Route::Version { addr, .. } => products::version(ctx, req, &addr).await,
        Route::Registry | Route::NotFound => Err(HttpError::not_found()),
    }
}
