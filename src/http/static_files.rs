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

/// The client served at `/cli`, found once at startup: `DLREPO_CLI_PATH`
/// when set, else next to the server binary and in its parent folders,
/// then `/usr/local/bin`, then `/usr/bin`. With `DLREPO_PUBLIC_URL` the client's
/// default URL becomes that one: the built-in default slot of our binary
/// ([`crate::cli_slot`]), or the occurrences of `http://127.0.0.1:1337` in
/// the original's script. `None` when there is none: `/cli` then answers
/// 404 saying how to configure it.
pub fn load_cli(cli_path: Option<&Path>, public_url: Option<&str>) -> Option<CliFile> {
    // A configured path is the only one: serving another client than the
    // one named would hide the mistake.
    let mut candidates: Vec<PathBuf> = cli_path.map(Path::to_path_buf).into_iter().collect();
    if cli_path.is_none() {
        if let Ok(exe) = std::env::current_exe() {
            candidates.extend(exe.ancestors().skip(1).take(4).map(|d| d.join("dlrepo-cli")));
        }
        candidates.push(PathBuf::from("/usr/local/bin/dlrepo-cli"));
        candidates.push(PathBuf::from("/usr/bin/dlrepo-cli"));
    }
    for c in candidates {
        let Ok(mut bytes) = std::fs::read(&c) else {
            continue;
        };
        let binary = bytes.starts_with(b"\x7fELF");
        if let Some(url) = public_url {
            if binary {
                if !crate::cli_slot::rewrite(&mut bytes, url) {
                    tracing::warn!(
                        "{}: no room for DLREPO_PUBLIC_URL in the client; served as is",
                        c.display()
                    );
                }
            } else {
                bytes = String::from_utf8_lossy(&bytes)
                    .replace(crate::cli_slot::DEFAULT_URL, url)
                    .into_bytes();
            }
        }
        tracing::debug!("serving /cli from {}", c.display());
        return Some(CliFile {
            bytes: Bytes::from(bytes),
            binary,
        });
    }
    match cli_path {
        Some(p) => tracing::warn!("DLREPO_CLI_PATH {}: cannot read it; /cli answers 404", p.display()),
        None => tracing::debug!("no dlrepo-cli found: /cli answers 404"),
    }
    None
}

/// The client file `/cli` serves.
pub struct CliFile {
    pub bytes: Bytes,
    /// An executable (ours) rather than the original's script.
    pub binary: bool,
}

pub fn get_cli(ctx: &Ctx, req: &Req) -> HttpResult<Response<Body>> {
    let Some(cli) = &ctx.cli_script else {
        return Err(HttpError::Missing(
            "No dlrepo-cli to serve here: set DLREPO_CLI_PATH to the client's file".into(),
        ));
    };
    let mut r = Response::new(if *req.method() == Method::HEAD {
        Body::empty()
    } else {
        Body::from_bytes(cli.bytes.clone())
    });
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if cli.binary {
            "application/octet-stream"
        } else {
            "text/plain; charset=utf-8"
        }),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(cli.bytes.len()));
    h.insert(
        hyper::header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"dlrepo-cli\""),
    );
    Ok(r)
}
