//! From what a URL names to where it is in the store: the repository (the
//! base one or `~user`), names lowercased and checked, tag and version
//! aliases resolved among what the caller may read, and the job, format or
//! product version a route addresses.
//!
//! Every handler finds its place on disk through here, so a URL means the
//! same folder whichever endpoint it reaches. Writes through an alias get
//! [`HttpError::ReadOnly`], which dispatch turns into the endpoint's 405.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::route::{FormatAddr, JobAddr, Parent, VersionAddr};
use super::{Ctx, HttpError, HttpResult};
use crate::auth::Access;
use crate::io;
use crate::names::{self, Alias};
use crate::store::digests::Digests;
use crate::store::repo::JobRef;
use crate::store::{alias, products, Repo};

/// The repository of a URL: the base one, or a user's (lowercased; a name
/// that cannot be a user does not exist).
pub fn repo(ctx: &Ctx, user: &Option<String>) -> HttpResult<Repo> {
    match user {
        None => Ok(ctx.store.repo(None)),
        Some(u) => {
            let u = names::lower(u);
            if !names::is_valid_user(&u) {
                return Err(HttpError::NotFound);
            }
            Ok(ctx.store.repo(Some(&u)))
        }
    }
}

/// Lowercases a URL name; a reserved or malformed one does not exist.
pub fn name(raw: &str) -> HttpResult<String> {
    let n = names::lower(raw);
    if names::is_valid_name(&n) {
        Ok(n)
    } else {
        Err(HttpError::NotFound)
    }
}

/// A name segment that may be an alias, resolved with `resolve` among the
/// entries the caller may read; writes through an alias are refused.
async fn aliased(
    raw: &str,
    write: bool,
    resolve: impl AsyncFnOnce(Alias) -> HttpResult<Option<String>>,
) -> HttpResult<String> {
    let n = names::lower(raw);
    match Alias::parse(&n) {
        Some(_) if write => Err(HttpError::ReadOnly),
        Some(a) => resolve(a).await?.ok_or(HttpError::NotFound),
        None if names::is_valid_name(&n) => Ok(n),
        None => Err(HttpError::NotFound),
    }
}

/// A tag segment of `branch` (lowercased already), aliases resolved.
pub async fn tag(access: &Access, repo: &Repo, branch: &str, raw: &str, write: bool) -> HttpResult<String> {
    aliased(raw, write, async |a| {
        let prefix = format!("{}/branches/{branch}/", repo.url_prefix());
        let readable = |t: &str| access.can_read(&format!("{prefix}{t}/"));
        Ok(alias::resolve_tag(&repo.branch_dir(branch), a, readable).await?)
    })
    .await
}

/// A version segment of the product branch folder `pbranch_dir`, aliases
/// resolved.
async fn version_name(access: &Access, repo: &Repo, pbranch_dir: &Path, raw: &str, write: bool) -> HttpResult<String> {
    aliased(raw, write, async |a| {
        // The URL of a version, from its folder below the repository's products/.
        let rel = pbranch_dir.strip_prefix(repo.products_dir()).unwrap_or(pbranch_dir);
        let prefix = format!("{}/products/{}/", repo.url_prefix(), rel.display());
        let readable = |v: &str| access.can_read(&format!("{prefix}{v}/"));
        Ok(alias::resolve_version(pbranch_dir, a, readable).await?)
    })
    .await
}

/// The job a URL names: names lowercased, the tag resolved.
pub async fn job(ctx: &Ctx, access: &Access, addr: &JobAddr, write: bool) -> HttpResult<JobRef> {
    job_in(
        access,
        repo(ctx, &addr.user)?,
        &addr.branch,
        &addr.tag,
        &addr.job,
        write,
    )
    .await
}

async fn job_in(
    access: &Access,
    repo: Repo,
    branch: &str,
    tag_raw: &str,
    job: &str,
    write: bool,
) -> HttpResult<JobRef> {
    let branch = name(branch)?;
    let tag = tag(access, &repo, &branch, tag_raw, write).await?;
    Ok(JobRef {
        repo,
        branch,
        tag,
        job: name(job)?,
    })
}

/// Where a format is.
pub struct FormatLoc {
    /// The job, for formats addressed under `branches/`.
    pub job: Option<JobRef>,
    pub name: String,
    pub dir: PathBuf,
    /// Canonical URL of the format directory, with its trailing slash.
    pub url: String,
}

impl FormatLoc {
    /// The format's `.digests`. Formats reached through `products/` symlinks
    /// are read from disk: the cache is keyed by the `branches/` path.
    pub async fn digests(&self, ctx: &Ctx) -> Rc<Digests> {
        if self.job.is_some() {
            ctx.store.digests(&self.dir).await
        } else {
            ctx.store.digests_via_link(&self.dir).await
        }
    }
}

/// Where a format URL points, whether or not the folder exists.
pub async fn format(ctx: &Ctx, access: &Access, addr: &FormatAddr, write: bool) -> HttpResult<FormatLoc> {
    let FormatAddr { user, parent, format } = addr;
    let repo = repo(ctx, user)?;
    let fname = name(format)?;
    Ok(match parent {
        Parent::Job { branch, tag, job } => {
            let jr = job_in(access, repo, branch, tag, job, write).await?;
            FormatLoc {
                dir: jr.repo.format_dir(&jr.branch, &jr.tag, &jr.job, &fname),
                url: jr.format_url(&fname),
                job: Some(jr),
                name: fname,
            }
        }
        Parent::Version {
            product,
            variant,
            pbranch,
            version: ver,
        } => {
            let addr = VersionAddr {
                user: user.clone(),
                product: product.clone(),
                variant: variant.clone(),
                pbranch: pbranch.clone(),
                version: ver.clone(),
            };
            let v = version_in(access, &repo, &addr, write).await?;
            FormatLoc {
                url: format!("{}{fname}/", v.url),
                dir: v.dir.join(&fname),
                job: None,
                name: fname,
            }
        }
    })
}

/// [`format`], with 404 when the folder does not exist.
pub async fn existing_format(ctx: &Ctx, access: &Access, addr: &FormatAddr, write: bool) -> HttpResult<FormatLoc> {
    let loc = format(ctx, access, addr, write).await?;
    if !io::is_dir(&loc.dir).await {
        return Err(HttpError::NotFound);
    }
    Ok(loc)
}

/// Where a product version is: its folder and canonical URL (with the slash).
pub struct VersionLoc {
    pub dir: PathBuf,
    pub url: String,
    pub product: String,
    pub variant: String,
    pub version: String,
}

impl VersionLoc {
    /// The version's formats that resolve to folders and that the caller may
    /// read, with the folders they resolve to.
    pub async fn readable_formats(&self, access: &Access) -> Vec<(String, PathBuf)> {
        products::version_formats(&self.dir)
            .await
            .into_iter()
            .filter(|(n, _)| access.can_read(&format!("{}{n}/", self.url)))
            .collect()
    }
}

/// The names, folder and URL of a version of `repo`, whether or not the
/// folder exists.
async fn version_in(access: &Access, repo: &Repo, addr: &VersionAddr, write: bool) -> HttpResult<VersionLoc> {
    let (p, v, pb) = (name(&addr.product)?, name(&addr.variant)?, name(&addr.pbranch)?);
    let pbranch_dir = repo.products_dir().join(&p).join(&v).join(&pb);
    let ver = version_name(access, repo, &pbranch_dir, &addr.version, write).await?;
    Ok(VersionLoc {
        url: format!("{}/products/{p}/{v}/{pb}/{ver}/", repo.url_prefix()),
        dir: pbranch_dir.join(&ver),
        product: p,
        variant: v,
        version: ver,
    })
}

/// The product version a URL names (the version may be an alias); 404 if
/// its folder does not exist.
pub async fn existing_version(ctx: &Ctx, access: &Access, addr: &VersionAddr) -> HttpResult<VersionLoc> {
    let loc = version_in(access, &repo(ctx, &addr.user)?, addr, false).await?;
    if !io::is_dir(&loc.dir).await {
        return Err(HttpError::NotFound);
    }
    Ok(loc)
}
