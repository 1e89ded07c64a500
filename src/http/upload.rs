//! Artifact upload (http-api.md §7.14 and §8).

use std::rc::Rc;

use hyper::{Response, StatusCode};

use super::route::{FormatAddr, Parent};
use super::{detached, job_ref, name, respond, user_repo, Body, Ctx, HttpError, HttpResult, Req};
use crate::store::digest::Digest;
use crate::store::link::ArtifactRef;
use crate::names;
use crate::store::staging::{Hasher, Staging};
use crate::store::StoreError;

pub async fn put(ctx: &Rc<Ctx>, req: &mut Req, addr: &FormatAddr, path: &str) -> HttpResult<Response<Body>> {
    let FormatAddr { user, parent, format } = addr;
    let Parent::Job { branch, tag, job } = parent else {
        return Err(HttpError::bad_request("Uploading products is not supported"));
    };
    let jr = job_ref(&req.access, user_repo(ctx, user)?, branch, tag, job, true).await?;
    let format = name(format)?;
    if format == "container" && !req.header("user-agent").unwrap_or("").starts_with("dlrepo-server/") {
        return Err(HttpError::bad_request(
            "Uploading container images must be done with docker push",
        ));
    }
    if !ctx.cfg.is_internal_format(&format) && ctx.store.job_locked(&jr).await {
        return Err(HttpError::bad_request("Cannot upload files in locked jobs"));
    }
    let target = ArtifactRef {
        job: jr,
        format,
        path: path.to_string(),
    };
    if !names::is_valid_upload_path(path) || !names::fits_below(&target.format_dir(), path) {
        return Err(HttpError::bad_request(path));
    }
    let header = req.header("digest").map(str::to_string);
    let link_only = req.header("x-dlrepo-link").map(str::to_string) == header;
    let digest = Digest::parse(header.as_deref())
        .map_err(|e| HttpError::with_reason(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let header = header.unwrap_or_default();

    if !link_only {
        let hasher = Hasher::for_algo(&digest.algo).ok_or_else(|| {
            HttpError::with_reason(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "invalid digest: {} (this server cannot verify {} uploads)",
                    header.to_lowercase(),
                    digest.algo
                ),
            )
        })?;
        let mut staging = Staging::create(&ctx.store, hasher).await?;
        receive(req, &mut staging).await?;
        // The body is in: from here on the sequence runs to its end even if
        // the client hangs up.
        let (store, fsync) = (ctx.store.clone(), ctx.cfg.fsync);
        detached(async move {
            let hex = staging.finish(fsync).await?;
            if hex != digest.hex {
                staging.discard().await;
                return Err(StoreError::DigestMismatch(format!(
                    "Received data does not match digest: {header}"
                )));
            }
            // The blob stays pinned from its rename to its link, so even a
            // zero orphan lifetime cannot collect it in between.
            let blob = store.finalize_blob(&mut staging, &digest).await?;
            drop(staging);
            store.link_held(&target, &header, blob).await
        })
        .await??;
    } else {
        let store = ctx.store.clone();
        detached(async move { store.link_artifact(&target, &header, &digest).await }).await??;
    }
    Ok(respond::text(StatusCode::CREATED, "201: Created".into()))
}

/// Streams the request body into the staging file.
async fn receive(req: &mut Req, staging: &mut Staging) -> HttpResult<()> {
    while let Some(data) = req.next_body_frame().await? {
        staging.write(data).await?;
    }
    Ok(())
}
