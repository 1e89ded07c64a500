//! Artifact upload (docs/spec/http-api.md §7.14 and §8): the handler checks the
//! request, streams the body into a staging file the store hands out, and
//! has the store commit it.

use std::rc::Rc;

use hyper::{Response, StatusCode};

use super::access_log::AccessNote;
use super::route::{ArtifactAddr, Parent};
use super::{detached, locate, respond, Body, Ctx, HttpError, HttpResult, Req};
use crate::store::digest::Digest;
use crate::store::link::ArtifactRef;
use crate::store::staging::Staging;

pub async fn put_artifact(ctx: &Rc<Ctx>, req: &mut Req, addr: &ArtifactAddr) -> HttpResult<Response<Body>> {
    let Parent::Job { branch, tag, job } = &addr.format.parent else {
        return Err(HttpError::bad_request("Uploading products is not supported"));
    };
    let job = super::route::JobAddr {
        user: addr.format.user.clone(),
        branch: branch.clone(),
        tag: tag.clone(),
        job: job.clone(),
    };
    let jr = locate::job(ctx, &req.access, &job, true).await?;
    let format = locate::name(&addr.format.format)?;
    if format == "container" && !req.header("user-agent").unwrap_or("").starts_with("dlrepo-server/") {
        return Err(HttpError::bad_request(
            "Uploading container images must be done with docker push",
        ));
    }
    let target = ArtifactRef {
        job: jr,
        format,
        path: addr.path.clone(),
    };
    ctx.store.check_upload(&target).await?;
    let header = req.single_header("Digest")?.map(str::to_string);
    let link_only = req.single_header("X-Dlrepo-Link")?.map(str::to_string) == header;
    let Some(header) = header else {
        // The digest is the end-to-end check of every upload: say how to give it.
        return Err(HttpError::Unprocessable(
            r#"missing Digest header: send "Digest: sha256:<64 hex digits>""#.into(),
        ));
    };
    let digest = Digest::parse(Some(&header))?;
    let store = ctx.store.clone();
    let note;
    if link_only {
        detached(async move { store.link_artifact(&target, &header, &digest).await }).await??;
        note = AccessNote {
            upload: "linked",
            received: 0,
        };
    } else {
        let mut staging = ctx.store.begin_upload(&digest).await?;
        if let Err(e) = receive(req, &mut staging).await {
            // Nothing of a refused body stays, not even for a moment.
            staging.discard().await;
            return Err(e);
        }
        note = AccessNote {
            upload: "stored",
            received: staging.len(),
        };
        // The body is in: from here on the sequence runs to its end even if
        // the client hangs up.
        detached(async move { store.ingest_upload(staging, &target, &digest, &header).await }).await??;
    }
    let mut r = respond::text(StatusCode::CREATED, "201: Created".into());
    r.extensions_mut().insert(note);
    Ok(r)
}

/// Streams the request body into the staging file.
async fn receive(req: &mut Req, staging: &mut Staging) -> HttpResult<()> {
    while let Some(data) = req.next_body_frame().await? {
        staging.write(data).await?;
    }
    Ok(())
}
