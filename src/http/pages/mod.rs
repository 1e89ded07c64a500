//! The HTML pages (docs/spec/web-ui.md): the same data as the JSON answers,
//! rendered with Jinja2-compatible templates (minijinja).
//!
//! The built-in templates are compiled into the binary; with
//! `DLREPO_TEMPLATES_DIR` a file of the same name there replaces one of
//! them, and the built-ins stay reachable as `templates/<name>` so an
//! override can extend them. The template names, context variables
//! (`request`, `year`, the URL's names, the page's JSON data), the
//! `pretty_time` and `semantic_sort` filters, `human_readable`, the `do`
//! tag and `trim_blocks`/`lstrip_blocks` are those of dlrepo 0.44, so its
//! sites' overrides keep working. An override that fails (Python-only
//! methods such as `list.pop`, which minijinja lacks) is answered 500 with
//! the template, the line and the reason.

pub mod sort;
mod time;
pub mod views;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{Map, Value};

use super::{Body, HttpError, HttpResult, Req};

/// The built-in templates.
const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("home.html", include_str!("templates/home.html")),
    ("branches.html", include_str!("templates/branches.html")),
    ("branch.html", include_str!("templates/branch.html")),
    ("tag.html", include_str!("templates/tag.html")),
    ("job.html", include_str!("templates/job.html")),
    ("autoindex.html", include_str!("templates/autoindex.html")),
    ("products.html", include_str!("templates/products.html")),
    ("product.html", include_str!("templates/product.html")),
    ("product_variant.html", include_str!("templates/product_variant.html")),
    ("product_branch.html", include_str!("templates/product_branch.html")),
    ("product_version.html", include_str!("templates/product_version.html")),
];

fn built_in(name: &str) -> Option<&'static str> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Where a template comes from: the override folder first, then the
/// built-ins (also as `templates/<name>`).
fn load(dir: Option<&Path>, name: &str) -> Result<Option<String>, Error> {
    if let Some(base) = name.strip_prefix("templates/") {
        return Ok(built_in(base).map(str::to_string));
    }
    if let Some(dir) = dir {
        // Names come from templates and the code, never from a request; a
        // name that leaves the folder is still refused.
        if !name.split('/').any(|c| c == ".." || c.is_empty()) {
            // Read once, when first used; SIGHUP reads them again.
            match std::fs::read_to_string(dir.join(name)) {
                Ok(t) => return Ok(Some(t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("cannot read the template {}: {e}", dir.join(name).display()),
                    ))
                }
            }
        }
    }
    Ok(built_in(name).map(str::to_string))
}

pub struct Pages {
    env: RefCell<Environment<'static>>,
}

impl Pages {
    pub fn new(templates_dir: Option<PathBuf>) -> Pages {
        let mut env = Environment::new();
        env.set_loader(move |name| load(templates_dir.as_deref(), name));
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        // What Jinja2 templates call on strings, maps and lists (split,
        // items, get…), as far as it does not change them.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // HTML escaping of the five characters that need it; minijinja's
        // own also writes `/` as `&#x2f;`, which makes every link unreadable.
        env.set_formatter(|out, state, value| match (value.as_str(), state.auto_escape()) {
            (Some(s), minijinja::AutoEscape::Html) if !value.is_safe() => out
                .write_str(&escape_html(s))
                .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string())),
            _ => minijinja::escape_formatter(out, state, value),
        });
        env.add_filter("semantic_sort", semantic_sort);
        env.add_filter("pretty_time", pretty_time);
        env.add_function("human_readable", |v: f64| crate::store::usage::human(v.max(0.0) as u64));
        Pages { env: RefCell::new(env) }
    }

    /// Forgets the templates read so far (SIGHUP): overrides are read again.
    pub fn reload(&self) {
        self.env.borrow_mut().clear_templates();
    }

    /// Renders `name` with `data` (the page's JSON-shaped data) and the
    /// common variables.
    pub fn render(&self, name: &str, req: &Req, vars: &[(&str, &str)], data: Value) -> HttpResult<Response<Body>> {
        let mut ctx = match data {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in vars {
            ctx.entry(k.to_string()).or_insert_with(|| Value::String(v.to_string()));
        }
        ctx.insert("year".into(), Value::String(time::year_now().to_string()));
        ctx.insert("request".into(), request_value(req));
        let env = self.env.borrow();
        let html = env
            .get_template(name)
            .and_then(|t| t.render(JValue::from(minijinja::value::Serde(&ctx))))
            .map_err(|e| template_error(name, &e))?;
        let mut r = Response::new(Body::from_bytes(html));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        Ok(r)
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `request`: what the templates may know of it.
fn request_value(req: &Req) -> Value {
    let host = req.header(hyper::header::HOST).unwrap_or("localhost").to_string();
    let scheme = req
        .header("x-forwarded-proto")
        .map(|s| s.split(',').next().unwrap_or("http").trim().to_string())
        .unwrap_or_else(|| "http".into());
    let user = req.access.identity.as_ref().and_then(|i| i.login.clone());
    serde_json::json!({
        "host": host,
        "scheme": scheme,
        "path": req.path,
        "dlrepo_user": user,
    })
}

/// A template that fails says which, where and why.
fn template_error(name: &str, e: &Error) -> HttpError {
    let mut what = e.name().unwrap_or(name).to_string();
    if let Some(line) = e.line() {
        what.push_str(&format!(" line {line}"));
    }
    let why = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    let hint = if why.contains("has no method named") {
        " (Python-only methods such as list.pop or list.append are not available: use filters and set)"
    } else {
        ""
    };
    tracing::error!("template {what}: {why}{hint}");
    HttpError::Failed(format!("template error in {what}: {why}{hint}"))
}

/// `semantic_sort(reverse=false, case_sensitive=false, attribute=none)`.
fn semantic_sort(value: Vec<JValue>, kwargs: Kwargs) -> Result<Vec<JValue>, Error> {
    let reverse: bool = kwargs.get::<Option<bool>>("reverse")?.unwrap_or(false);
    let case_sensitive: bool = kwargs.get::<Option<bool>>("case_sensitive")?.unwrap_or(false);
    let attribute: Option<String> = kwargs.get("attribute")?;
    kwargs.assert_all_used()?;
    let text = |v: &JValue| -> String {
        let v = match &attribute {
            Some(a) => v.get_attr(a).unwrap_or_default(),
            None => v.clone(),
        };
        v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
    };
    // Each key once: 5 000 tags make 60 000 comparisons.
    let mut keyed: Vec<(Vec<sort::Piece>, JValue)> = value
        .into_iter()
        .map(|v| (sort::key(&text(&v), case_sensitive), v))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    if reverse {
        keyed.reverse();
    }
    Ok(keyed.into_iter().map(|(_, v)| v).collect())
}

/// `pretty_time(fmt="%Y %b %d, %H:%M:%S UTC")` of a Unix time; `n/a` for 0.
fn pretty_time(ts: JValue, fmt: Option<String>) -> String {
    let secs = f64::try_from(ts).unwrap_or(0.0);
    if secs <= 0.0 {
        return "n/a".into();
    }
    time::format_utc(secs as i64, fmt.as_deref().unwrap_or("%Y %b %d, %H:%M:%S UTC"))
}
