//! `GET|HEAD /static/<file>` and `/cli` (docs/spec/http-api.md §7.2). Never sent
//! through X-Sendfile.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Response};

use super::{file, Body, Ctx, HttpError, HttpResult, Req};
use crate::io;

/// Built-in assets; `DLREPO_STATIC_DIR` is searched first.
const ASSETS: &[(&str, &[u8])] = &[
    ("dlrepo.css", include_bytes!("assets/dlrepo.css")),
    ("logo.svg", include_bytes!("assets/logo.svg")),
    ("favicon.svg", include_bytes!("assets/favicon.svg")),
    ("locked.svg", include_bytes!("assets/locked.svg")),
    ("released.svg", include_bytes!("assets/released.svg")),
    ("published.svg", include_bytes!("assets/published.svg")),
    ("product.svg", include_bytes!("assets/product.svg")),
];

/// The icon of a product on the pages: `/static/<product>.svg` when the
/// static folder (or the built-ins) has one, else the generic one.
pub async fn product_icon(ctx: &Ctx, product: &str) -> String {
    let own = format!("{product}.svg");
    let in_dir = match &ctx.cfg.static_dir {
        Some(dir) if !product.contains('/') => io::stat_opt(&dir.join(&own)).await.ok().flatten().is_some(),
        _ => false,
    };
    if in_dir || ASSETS.iter().any(|(n, _)| *n == own) {
        format!("/static/{own}")
    } else {
        "/static/product.svg".into()
    }
}

pub async fn get_static(ctx: &Rc<Ctx>, req: &Req, name: &str) -> HttpResult<Response<Body>> {
    if name == "." || name == ".." || name.contains('\0') {
        return Err(HttpError::NotFound);
    }
    if let Some(dir) = &ctx.cfg.static_dir {
        let path = dir.join(name);
        if let Ok(Some(st)) = io::stat_opt(&path).await {
            if st.is_file() {
                return file::serve(ctx, req, &path, None, false).await;
            }
        }
    }
    let (_, data) = ASSETS.iter().find(|(n, _)| *n == name).ok_or(HttpError::NotFound)?;
    let mut r = Response::new(if *req.method() == Method::HEAD {
        Body::empty()
    } else {
        Body::from_bytes(Bytes::from_static(data))
    });
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(file::guess_type(Path::new(name))),
    );
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(data.len()));
    Ok(r)
}

/// The client served at `/cli`, found once at startup: `DLREPO_CLI_PATH`,
/// then next to the server binary and in its parent folders, then
/// `/usr/local/bin`, then `/usr/bin`. Occurrences of
/// `http://127.0.0.1:1337` become `DLREPO_PUBLIC_URL`. `None` when there is
/// none: `/cli` then answers 404 saying how to configure it.
pub fn load_cli(cli_path: Option<&Path>, public_url: Option<&str>) -> Option<Bytes> {
    let mut candidates: Vec<PathBuf> = cli_path.map(Path::to_path_buf).into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|d| d.join("dlrepo-cli")));
    }
    candidates.push(PathBuf::from("/usr/local/bin/dlrepo-cli"));
    candidates.push(PathBuf::from("/usr/bin/dlrepo-cli"));
    for c in candidates {
        if let Ok(bytes) = std::fs::read(&c) {
            let text = match public_url {
                Some(url) => String::from_utf8_lossy(&bytes)
                    .replace("http://127.0.0.1:1337", url)
                    .into_bytes(),
                None => bytes,
            };
            tracing::debug!("serving /cli from {}", c.display());
            return Some(Bytes::from(text));
        }
    }
    tracing::debug!("no dlrepo-cli found: /cli answers 404");
    None
}

pub fn get_cli(ctx: &Ctx, req: &Req) -> HttpResult<Response<Body>> {
    let Some(script) = &ctx.cli_script else {
        return Err(HttpError::Missing(
            "No dlrepo-cli to serve here: set DLREPO_CLI_PATH to the client's file".into(),
        ));
    };
    let mut r = Response::new(if *req.method() == Method::HEAD {
        Body::empty()
    } else {
        Body::from_bytes(script.clone())
    });
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(script.len()));
    Ok(r)
}
