//! The home pages `/` and `/~<user>/` (docs/spec/http-api.md §7.1,
//! docs/spec/web-ui.md §1): always HTML.

use std::rc::Rc;

use hyper::Response;
use serde_json::{json, Value};

use super::route::UserHomeAddr;
use super::{locate, pages, respond, user_var, Body, Ctx, HttpError, HttpResult, Req};
use crate::io;
use crate::store::tree;

pub async fn get_home(ctx: &Rc<Ctx>, req: &Req) -> HttpResult<Response<Body>> {
    let repo = ctx.store.repo(None);
    let users: Vec<Value> = tree::list_dirs(&ctx.store.root.join("users"))
        .await?
        .into_iter()
        .filter(|u| req.access.can_read(&format!("/~{u}/")))
        .map(Value::String)
        .collect();
    let mut data = json!({
        "users": users,
        "access": {
            "branches": req.access.can_read("/branches/"),
            "products": req.access.can_read("/products/"),
        },
    });
    if ctx.cfg.latest_releases {
        data["latest_releases"] = Value::Array(pages::views::latest_releases(ctx, &repo, &req.access).await);
    }
    ctx.pages.render("home.html", req, &[], data)
}

pub async fn get_user_home(ctx: &Rc<Ctx>, req: &Req, addr: &UserHomeAddr) -> HttpResult<Response<Body>> {
    let repo = locate::repo(ctx, &Some(addr.user.clone()))?;
    if !io::is_dir(&repo.dir).await {
        return Err(HttpError::NotFound);
    }
    if !addr.slash {
        return Ok(respond::redirect(&format!("/~{}/", addr.user)));
    }
    let prefix = repo.url_prefix();
    let user = repo.user.clone().unwrap_or_default();
    let mut data = json!({
        "disk_usage": ctx.store.disk_usage(&user).await,
        "quota": ctx.cfg.user_quota,
        "access": {
            "branches": req.access.can_read(&format!("{prefix}/branches/")),
            "products": req.access.can_read(&format!("{prefix}/products/")),
        },
    });
    if ctx.cfg.latest_releases_user {
        data["latest_releases"] = Value::Array(pages::views::latest_releases(ctx, &repo, &req.access).await);
    }
    let vars = user_var(&repo);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ctx.pages.render("home.html", req, &vars, data)
}
