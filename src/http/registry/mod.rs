//! The container registry (docs/spec/http-api.md §9): a subset of the
//! Docker Registry v2 / OCI distribution API over the same tree, blob store
//! and GC protections as artifact uploads. Images live in the `container`
//! format of a job (`<branch>/<job>:<tag>`); product images are read-only.

pub mod route;

use std::rc::Rc;

use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use super::jsonbody::read_small_body;
use super::{detached, file, locate, respond, Body, Ctx, HttpError, HttpResult, Req};
use crate::names::{self, Alias};
use crate::store::container::{PushError, FORMAT};
use crate::store::digest::Digest;
use crate::store::manifest::{self, Manifest, ManifestError};
use crate::store::repo::JobRef;
use crate::store::sessions::{check_chunk, range_header, ChunkError, Lookup};
use crate::store::{alias, Repo, StoreError};
use route::{BlobAddr, Image, ImageAddr, ManifestAddr, RegistryEndpoint, UploadAddr};

const API_VERSION: &str = "docker-distribution-api-version";

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> HttpError {
    HttpError::Registry {
        status,
        code,
        message: message.into(),
    }
}

fn name_unknown() -> HttpError {
    error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "Repository name not known to registry.",
    )
}
fn manifest_unknown(reference: &str) -> HttpError {
    error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", reference)
}
fn manifest_invalid(message: impl Into<String>) -> HttpError {
    error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
}
fn blob_unknown(message: impl Into<String>) -> HttpError {
    error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", message)
}
fn upload_unknown() -> HttpError {
    error(
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
        "Blob upload unknown to registry.",
    )
}
fn upload_invalid(message: impl Into<String>) -> HttpError {
    error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", message)
}
fn unsupported(message: impl Into<String>) -> HttpError {
    error(StatusCode::BAD_REQUEST, "UNSUPPORTED", message)
}

/// Answers a registry request; every answer carries the API version.
pub async fn dispatch(ctx: &Rc<Ctx>, req: &mut Req, endpoint: RegistryEndpoint) -> HttpResult<Response<Body>> {
    use RegistryEndpoint::*;
    let resp = match endpoint {
        GetRoot => Ok(respond::json(&json!({}))),
        GetCatalog => get_catalog(ctx, req).await,
        GetTags(a) => get_tags(ctx, req, &a).await,
        GetManifest(a) => get_manifest(ctx, req, &a).await,
        PutManifest(a) => put_manifest(ctx, req, &a).await,
        StartUpload(a) => start_upload(ctx, req, &a).await,
        GetUpload(a) => get_upload(ctx, req, &a).await,
        AppendUpload(a) => append_upload(ctx, req, &a).await,
        FinishUpload(a) => finish_upload(ctx, req, &a).await,
        CancelUpload(a) => cancel_upload(ctx, req, &a).await,
        GetBlob(a) => get_blob(ctx, req, &a).await,
    };
    resp.map(|mut r| {
        r.headers_mut()
            .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        r
    })
}

fn header(r: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// An answer with no body and the given status.
fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

async fn get_catalog(ctx: &Rc<Ctx>, req: &Req) -> HttpResult<Response<Body>> {
    let repositories: Vec<String> = ctx
        .store
        .catalog()
        .await
        .into_iter()
        .filter(|image| req.access.can_read(&format!("/v2/{image}/")))
        .collect();
    Ok(respond::json(&json!({ "repositories": repositories })))
}

/// Where an image's tags (or versions) are.
enum Place {
    Job { repo: Repo, branch: String, job: String },
    Product { pbranch_dir: std::path::PathBuf },
}

fn place(ctx: &Ctx, a: &ImageAddr) -> HttpResult<Place> {
    let missing = |_| name_unknown();
    Ok(match &a.image {
        Image::Job { user, branch, job } => Place::Job {
            repo: locate::repo(ctx, user).map_err(missing)?,
            branch: locate::name(branch).map_err(missing)?,
            job: locate::name(job).map_err(missing)?,
        },
        Image::Product {
            user,
            product,
            variant,
            pbranch,
        } => {
            let repo = locate::repo(ctx, user).map_err(missing)?;
            let mut dir = repo.products_dir();
            for n in [product, variant, pbranch] {
                dir.push(locate::name(n).map_err(missing)?);
            }
            Place::Product { pbranch_dir: dir }
        }
    })
}

/// The tags (versions) that hold an image, in name order.
async fn image_tags(ctx: &Ctx, p: &Place) -> Vec<String> {
    match p {
        Place::Job { repo, branch, job } => ctx.store.image_tags(repo, branch, job).await,
        Place::Product { pbranch_dir } => ctx.store.version_image_tags(pbranch_dir).await,
    }
}

/// `GET /v2/<name>/tags/list`: the tags with an image the caller may read,
/// plus `latest`; an unknown image has none.
async fn get_tags(ctx: &Rc<Ctx>, req: &Req, a: &ImageAddr) -> HttpResult<Response<Body>> {
    let mut tags = match place(ctx, a) {
        Ok(p) => image_tags(ctx, &p).await,
        Err(_) => Vec::new(),
    };
    if !tags.is_empty() {
        tags.push("latest".into());
    }
    tags.sort();
    tags.retain(|t| req.access.can_read(&format!("/v2/{}/manifests/{t}", a.name)));
    Ok(respond::json(&json!({ "name": a.short_name(), "tags": tags })))
}

/// `GET|HEAD /v2/<name>/manifests/<ref>`: the stored bytes, whatever the
/// client accepts, with their media type and digest.
async fn get_manifest(ctx: &Rc<Ctx>, req: &Req, a: &ManifestAddr) -> HttpResult<Response<Body>> {
    let reference = a.reference.as_str();
    // By digest: a blob of the global store (kept pinned while served).
    let (path, digest, _held) = if reference.contains(':') {
        let d = Digest::parse(Some(reference)).map_err(|_| manifest_invalid(reference))?;
        let held = ctx
            .store
            .hold_blob(&d, false)
            .await?
            .ok_or_else(|| manifest_unknown(reference))?;
        (held.path.clone(), reference.to_string(), Some(held))
    } else {
        let p = place(ctx, &a.image).map_err(|_| manifest_unknown(reference))?;
        let container = image_folder(ctx, req, &a.image, &p, reference).await?;
        let (path, digest) = ctx
            .store
            .image_manifest(&container)
            .ok_or_else(|| manifest_unknown(reference))?;
        (path, digest, None)
    };
    let bytes = crate::io::read_file(&path)
        .await
        .map_err(|_| manifest_unknown(reference))?;
    let media = manifest::media_type(&bytes).ok_or_else(|| manifest_invalid("Invalid manifest."))?;
    let mut r = file::serve(ctx, req, &path, None, true).await?;
    header(&mut r, "content-type", &media);
    header(&mut r, "docker-content-digest", &digest);
    if *req.method() == Method::HEAD {
        r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    }
    Ok(r)
}

/// The `container` folder a tag (or version, or alias) of an image names,
/// aliases resolved among the tags that hold one and the caller may read.
async fn image_folder(
    ctx: &Ctx,
    req: &Req,
    a: &ImageAddr,
    p: &Place,
    reference: &str,
) -> HttpResult<std::path::PathBuf> {
    let unknown = || manifest_unknown(reference);
    let lowered = names::lower(reference);
    let resolved = match Alias::parse(&lowered) {
        None if names::is_valid_name(&lowered) => lowered,
        None => return Err(unknown()),
        Some(alias) => {
            let tags = image_tags(ctx, p).await;
            let readable =
                |t: &str| tags.iter().any(|x| x == t) && req.access.can_read(&format!("/v2/{}/manifests/{t}", a.name));
            let found = match p {
                Place::Job { repo, branch, .. } => {
                    alias::resolve_tag(&repo.branch_dir(branch), alias, readable).await?
                }
                Place::Product { pbranch_dir } => alias::resolve_version(pbranch_dir, alias, readable).await?,
            };
            found.ok_or_else(unknown)?
        }
    };
    Ok(match p {
        Place::Job { repo, branch, job } => repo.format_dir(branch, &resolved, job, FORMAT),
        Place::Product { pbranch_dir } => pbranch_dir.join(&resolved).join(FORMAT),
    })
}

/// The job an image push goes to.
fn push_job(ctx: &Ctx, a: &ImageAddr, tag: &str) -> HttpResult<JobRef> {
    let Image::Job { user, branch, job } = &a.image else {
        return Err(unsupported("uploading manifests by product is not supported"));
    };
    let invalid = |_| error(StatusCode::BAD_REQUEST, "NAME_INVALID", "Invalid repository name.");
    Ok(JobRef {
        repo: locate::repo(ctx, user).map_err(invalid)?,
        branch: locate::name(branch).map_err(invalid)?,
        tag: locate::name(tag).map_err(|_| error(StatusCode::BAD_REQUEST, "TAG_INVALID", "Invalid tag name."))?,
        job: locate::name(job).map_err(invalid)?,
    })
}

/// `PUT /v2/<branch>/<job>/manifests/<tag>`: stores the image of the job.
async fn put_manifest(ctx: &Rc<Ctx>, req: &mut Req, a: &ManifestAddr) -> HttpResult<Response<Body>> {
    let tag = a.reference.as_str();
    if tag.contains(':') {
        return Err(unsupported("uploading manifests by digest is not supported"));
    }
    if Alias::parse(&names::lower(tag)).is_some() {
        return Err(unsupported(
            "uploading explicit 'latest', 'stable' or 'oldstable' tags is not supported",
        ));
    }
    let job = push_job(ctx, &a.image, tag)?;
    let body = read_small_body(req).await?;
    let m = Manifest::parse(&body).map_err(|e| match e {
        ManifestError::Invalid(m) => manifest_invalid(m),
        ManifestError::Unsupported(m) => unsupported(m),
    })?;
    let store = ctx.store.clone();
    let pushed = detached(async move { store.put_manifest(&job, &m).await }).await?;
    let digest = pushed.map_err(|e| match e {
        PushError::BlobUnknown(d) => blob_unknown(d),
        PushError::Denied(m) => error(StatusCode::FORBIDDEN, "DENIED", m),
        PushError::Store(e) => HttpError::from(e),
    })?;
    let mut r = empty(StatusCode::CREATED);
    header(&mut r, "location", &req.path);
    header(&mut r, "docker-content-digest", &digest);
    Ok(r)
}

/// A query parameter.
fn query(req: &Req, key: &str) -> Option<String> {
    req.query().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The answer that says where a blob is now.
fn blob_created(a: &ImageAddr, digest: &str) -> Response<Body> {
    let mut r = empty(StatusCode::CREATED);
    header(&mut r, "location", &format!("/v2/{}/blobs/{digest}", a.name));
    header(&mut r, "docker-content-digest", digest);
    r
}

/// `POST …/blobs/uploads/`: a session (202), or at once a blob (201) for a
/// monolithic upload (`?digest=` with the body) or a mount of a blob the
/// registry has (`?mount=`; every image shares one blob store).
async fn start_upload(ctx: &Rc<Ctx>, req: &mut Req, a: &ImageAddr) -> HttpResult<Response<Body>> {
    if let Some(mount) = query(req, "mount") {
        if let Ok(d) = Digest::parse(Some(&mount)) {
            if let Some(blob) = ctx.store.hold_blob(&d, false).await? {
                ctx.store.lease_blob(&blob.path);
                return Ok(blob_created(a, &mount));
            }
        }
    }
    let uuid = ctx.store.session_open().await?;
    let has_body =
        req.header(CONTENT_LENGTH).is_some_and(|l| l.trim() != "0") || req.header("transfer-encoding").is_some();
    if let (Some(digest), true) = (query(req, "digest"), has_body) {
        receive(ctx, req, &uuid, None).await.map_err(HttpError::from)?;
        return commit(ctx, &uuid, &digest).await.map(|()| blob_created(a, &digest));
    }
    let mut r = empty(StatusCode::ACCEPTED);
    header(&mut r, "location", &format!("{}{uuid}", req.path));
    header(&mut r, "range", "0-0");
    header(&mut r, "docker-upload-uuid", &uuid);
    Ok(r)
}

/// The answer that reports a session's state.
fn session_answer(status: StatusCode, req: &Req, uuid: &str, len: u64) -> Response<Body> {
    let mut r = empty(status);
    header(&mut r, "location", &req.path);
    header(&mut r, "range", &range_header(len));
    header(&mut r, "docker-upload-uuid", uuid);
    r
}

fn take(ctx: &Ctx, uuid: &str) -> HttpResult<crate::store::sessions::InUse> {
    match ctx.store.session_take(uuid) {
        Lookup::Found(s) => Ok(*s),
        Lookup::Unknown => Err(upload_unknown()),
        Lookup::Busy => Err(upload_invalid("another request is writing to this upload")),
    }
}

async fn get_upload(ctx: &Rc<Ctx>, req: &Req, a: &UploadAddr) -> HttpResult<Response<Body>> {
    let s = take(ctx, &a.uuid)?;
    let len = crate::store::Store::session_len(&s);
    ctx.store.session_put_back(s);
    Ok(session_answer(StatusCode::NO_CONTENT, req, &a.uuid, len))
}

/// Why a chunk was not appended.
enum Refused {
    /// Its `Content-Range` does not start at this byte, where the upload ends.
    Gap(u64),
    Other(HttpError),
}

impl From<HttpError> for Refused {
    fn from(e: HttpError) -> Self {
        Refused::Other(e)
    }
}

impl From<Refused> for HttpError {
    fn from(r: Refused) -> HttpError {
        match r {
            Refused::Gap(have) => upload_invalid(format!("the chunk must start at byte {have}")),
            Refused::Other(e) => e,
        }
    }
}

/// Appends the request body to a session, after checking its
/// `Content-Range` (`check`) against what the session holds. A body that
/// breaks off leaves the session unusable, so it is cancelled.
async fn receive(ctx: &Rc<Ctx>, req: &mut Req, uuid: &str, check: Option<&str>) -> Result<u64, Refused> {
    let mut s = take(ctx, uuid)?;
    let have = crate::store::Store::session_len(&s);
    let length = req.header(CONTENT_LENGTH).and_then(|l| l.trim().parse::<u64>().ok());
    if let Err(e) = check_chunk(have, check, length) {
        ctx.store.session_put_back(s);
        return Err(match e {
            ChunkError::Gap { have } => Refused::Gap(have),
            ChunkError::Invalid(m) => Refused::Other(upload_invalid(m)),
        });
    }
    let res = async {
        while let Some(data) = req.next_body_frame().await? {
            ctx.store.session_append(&mut s, data).await?;
        }
        ctx.store.session_settle(&mut s).await?;
        Ok::<(), HttpError>(())
    }
    .await;
    match res {
        Ok(()) => {
            let len = crate::store::Store::session_len(&s);
            ctx.store.session_put_back(s);
            Ok(len)
        }
        Err(e) => {
            ctx.store.session_cancel(s).await;
            Err(e.into())
        }
    }
}

/// `PATCH …/blobs/uploads/<uuid>`: a chunk. Its `Content-Range`, when
/// given, must start where the upload ends: 416 otherwise, with the
/// `Range` the upload has.
async fn append_upload(ctx: &Rc<Ctx>, req: &mut Req, a: &UploadAddr) -> HttpResult<Response<Body>> {
    let range = req.header("content-range").map(str::to_string);
    match receive(ctx, req, &a.uuid, range.as_deref()).await {
        Ok(len) => Ok(session_answer(StatusCode::ACCEPTED, req, &a.uuid, len)),
        Err(Refused::Gap(have)) => {
            let err = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!("the chunk must start at byte {have}"),
            );
            let mut r = err.into_response();
            header(&mut r, "location", &req.path);
            header(&mut r, "range", &range_header(have));
            header(&mut r, "docker-upload-uuid", &a.uuid);
            Ok(r)
        }
        Err(Refused::Other(e)) => Err(e),
    }
}

async fn commit(ctx: &Rc<Ctx>, uuid: &str, digest: &str) -> HttpResult<()> {
    let s = take(ctx, uuid)?;
    let d = match Digest::parse(Some(digest)) {
        Ok(d) => d,
        Err(e) => {
            ctx.store.session_cancel(s).await;
            return Err(upload_invalid(e.to_string()));
        }
    };
    let store = ctx.store.clone();
    match detached(async move { store.session_commit(s, &d).await }).await? {
        Ok(()) => Ok(()),
        Err(StoreError::DigestMismatch(m)) => Err(upload_invalid(m)),
        Err(e) => Err(e.into()),
    }
}

/// `PUT …/blobs/uploads/<uuid>?digest=<d>`: the last chunk, if any, then
/// the blob.
async fn finish_upload(ctx: &Rc<Ctx>, req: &mut Req, a: &UploadAddr) -> HttpResult<Response<Body>> {
    let Some(digest) = query(req, "digest") else {
        if let Ok(s) = take(ctx, &a.uuid) {
            ctx.store.session_cancel(s).await;
        }
        return Err(upload_invalid("the digest query parameter is missing"));
    };
    receive(ctx, req, &a.uuid, None).await.map_err(HttpError::from)?;
    commit(ctx, &a.uuid, &digest).await?;
    let mut r = empty(StatusCode::CREATED);
    header(&mut r, "location", &req.path);
    header(&mut r, "docker-content-digest", &digest);
    Ok(r)
}

async fn cancel_upload(ctx: &Rc<Ctx>, _req: &Req, a: &UploadAddr) -> HttpResult<Response<Body>> {
    let s = take(ctx, &a.uuid)?;
    ctx.store.session_cancel(s).await;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `GET|HEAD /v2/<name>/blobs/<digest>`: blobs are global, whatever the name.
async fn get_blob(ctx: &Rc<Ctx>, req: &Req, a: &BlobAddr) -> HttpResult<Response<Body>> {
    let d = Digest::parse(Some(&a.digest)).map_err(|e| blob_unknown(e.to_string()))?;
    let blob = ctx
        .store
        .hold_blob(&d, true)
        .await?
        .ok_or_else(|| blob_unknown("Unknown blob in registry."))?;
    if *req.method() == Method::HEAD {
        let mut r = Response::new(Body::empty());
        r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(blob.size));
        header(&mut r, "docker-content-digest", &a.digest);
        return Ok(r);
    }
    // Served while pinned: the GC cannot take it between the lookup and the open.
    let mut r = file::serve(ctx, req, &blob.path, None, true).await?;
    header(&mut r, "docker-content-digest", &a.digest);
    drop(blob);
    Ok(r)
}
