//! The home pages `/` and `/~<user>/` (docs/spec/http-api.md §7.1).

use std::rc::Rc;

use hyper::Response;

use super::route::UserHomeAddr;
use super::{locate, respond, Body, Ctx, HttpError, HttpResult, Req};
use crate::io;

pub async fn get_home(_ctx: &Rc<Ctx>, _req: &Req) -> HttpResult<Response<Body>> {
    Err(HttpError::NotImplemented("The web interface"))
}

pub async fn get_user_home(ctx: &Rc<Ctx>, _req: &Req, addr: &UserHomeAddr) -> HttpResult<Response<Body>> {
    let repo = locate::repo(ctx, &Some(addr.user.clone()))?;
    if !io::is_dir(&repo.dir).await {
        return Err(HttpError::NotFound);
    }
    if !addr.slash {
        return Ok(respond::redirect(&format!("/~{}/", addr.user)));
    }
    Err(HttpError::NotImplemented("The web interface"))
}
