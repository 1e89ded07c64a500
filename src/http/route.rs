//! URL routing (docs/spec/http-api.md §4): a decoded path becomes a [`Route`] (what
//! it names), and the route table turns a route and a method into the one
//! [`Endpoint`] that answers, or a 405 whose `Allow` list is the table's.
//!
//! Names are kept as typed here; handlers lowercase them. A variable segment
//! is one or more characters other than `/`, `{` and `}`.

use hyper::Method;

use super::error::HttpError;
use super::registry;
use super::registry::route::{RegistryEndpoint, RegistryRoute};

/// A format's parent: a job in `branches/`, or a version in `products/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    Job {
        branch: String,
        tag: String,
        job: String,
    },
    Version {
        product: String,
        variant: String,
        pbranch: String,
        version: String,
    },
}

/// A format as a URL names it, for the handlers of format and artifact routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatAddr {
    pub user: Option<String>,
    pub parent: Parent,
    pub format: String,
}

/// A product version as a URL names it (the version may be an alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionAddr {
    pub user: Option<String>,
    pub product: String,
    pub variant: String,
    pub pbranch: String,
    pub version: String,
}

/// `/~<user>` with or without its slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHomeAddr {
    pub user: String,
    pub slash: bool,
}

/// A repository's `branches/` or `products/` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoAddr {
    pub user: Option<String>,
    pub slash: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchAddr {
    pub user: Option<String>,
    pub branch: String,
    pub slash: bool,
}

/// A tag (the tag may be an alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagAddr {
    pub user: Option<String>,
    pub branch: String,
    pub tag: String,
}

/// A job (the tag may be an alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAddr {
    pub user: Option<String>,
    pub branch: String,
    pub tag: String,
    pub job: String,
}

/// A file below a format; the path is everything after the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactAddr {
    pub format: FormatAddr,
    pub path: String,
}

/// A level of the products tree above the versions: none, the product,
/// the variant, or the product branch (lowercased by the handler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductsAddr {
    pub user: Option<String>,
    pub levels: Vec<String>,
    pub slash: bool,
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Home,
    UserHome(UserHomeAddr),
    Cli,
    Health,
    Cleanup,
    Metrics,
    Static(String),
    Branches(RepoAddr),
    Branch(BranchAddr),
    Tag(TagAddr),
    JobTar(JobAddr),
    Job(JobAddr),
    FormatTar(FormatAddr),
    FormatSha256(FormatAddr),
    /// `…/<format>` without a slash: a redirect to its only file or folder.
    FormatShortcut(FormatAddr),
    Format(FormatAddr),
    Artifact(ArtifactAddr),
    Products(ProductsAddr),
    VersionTar(VersionAddr),
    Version(VersionAddr),
    Registry(RegistryRoute),
    NotFound,
}

/// The one handler that answers a request, with what the path named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    GetHome,
    GetUserHome(UserHomeAddr),
    GetCli,
    GetHealth,
    GetMetrics,
    GetCleanup,
    RunCleanup,
    GetStatic(String),
    ListBranches(RepoAddr),
    GetBranch(BranchAddr),
    UpdateBranch(BranchAddr),
    DeleteBranch(BranchAddr),
    GetTag(TagAddr),
    UpdateTag(TagAddr),
    DeleteTag(TagAddr),
    GetJobTar(JobAddr),
    GetJob(JobAddr),
    /// PATCH: metadata.
    UpdateJobMetadata(JobAddr),
    /// PUT: the internal flag and locking.
    UpdateJob(JobAddr),
    /// POST: unlocking.
    UnlockJob(JobAddr),
    DeleteJob(JobAddr),
    GetFormatTar(FormatAddr),
    GetFormatSha256(FormatAddr),
    GetFormatShortcut(FormatAddr),
    GetFormat(FormatAddr),
    /// HEAD: "exists and is finalised".
    ProbeFormat(FormatAddr),
    /// PATCH: post-process and clear the dirty flag.
    FinalizeFormat(FormatAddr),
    DeleteFormat(FormatAddr),
    /// GET and HEAD.
    GetArtifact(ArtifactAddr),
    PutArtifact(ArtifactAddr),
    ListProducts(ProductsAddr),
    GetVersionTar(VersionAddr),
    GetVersion(VersionAddr),
    /// The container registry's endpoints (`/v2/…`).
    Registry(RegistryEndpoint),
}

/// The methods routing knows, in the alphabetical order `Allow` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Delete,
    Get,
    Head,
    Patch,
    Post,
    Put,
}

impl Verb {
    fn of(m: &Method) -> Option<Verb> {
        Some(match *m {
            Method::DELETE => Verb::Delete,
            Method::GET => Verb::Get,
            Method::HEAD => Verb::Head,
            Method::PATCH => Verb::Patch,
            Method::POST => Verb::Post,
            Method::PUT => Verb::Put,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Verb::Delete => "DELETE",
            Verb::Get => "GET",
            Verb::Head => "HEAD",
            Verb::Patch => "PATCH",
            Verb::Post => "POST",
            Verb::Put => "PUT",
        }
    }
}

/// The methods of one kind of route and the endpoint each reaches, sorted
/// by method.
type Table<A> = &'static [(Verb, fn(A) -> Endpoint)];

mod table {
    use super::Endpoint::*;
    use super::*;

    pub const HOME: Table<()> = &[(Verb::Get, |()| GetHome)];
    pub const USER_HOME: Table<UserHomeAddr> = &[(Verb::Get, GetUserHome)];
    pub const CLI: Table<()> = &[(Verb::Get, |()| GetCli), (Verb::Head, |()| GetCli)];
    pub const HEALTH: Table<()> = &[(Verb::Get, |()| GetHealth), (Verb::Head, |()| GetHealth)];
    pub const METRICS: Table<()> = &[(Verb::Get, |()| GetMetrics)];
    pub const CLEANUP: Table<()> = &[(Verb::Get, |()| GetCleanup), (Verb::Post, |()| RunCleanup)];
    pub const STATIC: Table<String> = &[(Verb::Get, GetStatic), (Verb::Head, GetStatic)];
    pub const BRANCHES: Table<RepoAddr> = &[(Verb::Get, ListBranches)];
    pub const BRANCH: Table<BranchAddr> = &[
        (Verb::Delete, DeleteBranch),
        (Verb::Get, GetBranch),
        (Verb::Post, UpdateBranch),
    ];
    pub const TAG: Table<TagAddr> = &[(Verb::Delete, DeleteTag), (Verb::Get, GetTag), (Verb::Post, UpdateTag)];
    pub const JOB_TAR: Table<JobAddr> = &[(Verb::Get, GetJobTar)];
    pub const JOB: Table<JobAddr> = &[
        (Verb::Delete, DeleteJob),
        (Verb::Get, GetJob),
        (Verb::Patch, UpdateJobMetadata),
        (Verb::Post, UnlockJob),
        (Verb::Put, UpdateJob),
    ];
    pub const FORMAT_TAR: Table<FormatAddr> = &[(Verb::Get, GetFormatTar), (Verb::Head, GetFormatTar)];
    pub const FORMAT_SHA256: Table<FormatAddr> = &[(Verb::Get, GetFormatSha256)];
    pub const FORMAT_SHORTCUT: Table<FormatAddr> = &[(Verb::Get, GetFormatShortcut), (Verb::Head, GetFormatShortcut)];
    pub const FORMAT: Table<FormatAddr> = &[
        (Verb::Delete, DeleteFormat),
        (Verb::Get, GetFormat),
        (Verb::Head, ProbeFormat),
        (Verb::Patch, FinalizeFormat),
    ];
    pub const ARTIFACT: Table<ArtifactAddr> = &[
        (Verb::Get, GetArtifact),
        (Verb::Head, GetArtifact),
        (Verb::Put, PutArtifact),
    ];
    pub const PRODUCTS: Table<ProductsAddr> = &[(Verb::Get, ListProducts)];
    pub const VERSION_TAR: Table<VersionAddr> = &[(Verb::Get, GetVersionTar)];
    pub const VERSION: Table<VersionAddr> = &[(Verb::Get, GetVersion)];
}

/// The table's endpoint for `verb`, or the 405 that lists the table.
fn pick<A>(table: Table<A>, verb: Option<Verb>, addr: A) -> Result<Endpoint, HttpError> {
    match table.iter().find(|(v, _)| Some(*v) == verb) {
        Some((_, endpoint)) => Ok(endpoint(addr)),
        None => {
            let allow: Vec<&str> = table.iter().map(|(v, _)| v.as_str()).collect();
            Err(HttpError::MethodNotAllowed(allow.join(",")))
        }
    }
}

impl Route {
    /// The endpoint that answers `method` on this route: 404 for a path
    /// that names nothing, 405 with the route's methods otherwise.
    pub fn endpoint(self, method: &Method) -> Result<Endpoint, HttpError> {
        use table::*;
        let v = Verb::of(method);
        match self {
            Route::Home => pick(HOME, v, ()),
            Route::UserHome(a) => pick(USER_HOME, v, a),
            Route::Cli => pick(CLI, v, ()),
            Route::Health => pick(HEALTH, v, ()),
            Route::Cleanup => pick(CLEANUP, v, ()),
            Route::Metrics => pick(METRICS, v, ()),
            Route::Static(f) => pick(STATIC, v, f),
            Route::Branches(a) => pick(BRANCHES, v, a),
            Route::Branch(a) => pick(BRANCH, v, a),
            Route::Tag(a) => pick(TAG, v, a),
            Route::JobTar(a) => pick(JOB_TAR, v, a),
            Route::Job(a) => pick(JOB, v, a),
            Route::FormatTar(a) => pick(FORMAT_TAR, v, a),
            Route::FormatSha256(a) => pick(FORMAT_SHA256, v, a),
            Route::FormatShortcut(a) => pick(FORMAT_SHORTCUT, v, a),
            Route::Format(a) => pick(FORMAT, v, a),
            Route::Artifact(a) => pick(ARTIFACT, v, a),
            Route::Products(a) => pick(PRODUCTS, v, a),
            Route::VersionTar(a) => pick(VERSION_TAR, v, a),
            Route::Version(a) => pick(VERSION, v, a),
            Route::Registry(r) => r.endpoint(method).map(Endpoint::Registry),
            Route::NotFound => Err(HttpError::NotFound),
        }
    }

    /// What a write through an alias (or into the read-only products view)
    /// lists in `Allow`: the spec gives these per endpoint, and they are
    /// not always the route's own read methods (docs/spec/http-api.md §7.5).
    pub fn read_only_allow(&self) -> &'static str {
        match self {
            Route::Tag(_) => "GET,HEAD",
            _ => "GET",
        }
    }
}

fn is_var(seg: &str) -> bool {
    !seg.is_empty() && !seg.contains(['{', '}'])
}

/// Splits `rest` (which starts after a fixed prefix) into its segments and
/// whether it ends with a slash. Returns `None` for an empty segment.
fn segments(rest: &str) -> Option<(Vec<&str>, bool)> {
    if rest.is_empty() {
        return Some((Vec::new(), false));
    }
    let rest = rest.strip_prefix('/')?;
    if rest.is_empty() {
        return Some((Vec::new(), true));
    }
    let slash = rest.ends_with('/');
    let body = if slash { &rest[..rest.len() - 1] } else { rest };
    let segs: Vec<&str> = body.split('/').collect();
    if segs.iter().all(|s| is_var(s)) {
        Some((segs, slash))
    } else {
        None
    }
}

/// `name.ext` → `name`, when `name` is a valid variable segment.
fn strip_ext<'a>(seg: &'a str, ext: &str) -> Option<&'a str> {
    seg.strip_suffix(ext).filter(|s| is_var(s))
}

pub fn route(path: &str) -> Route {
    match path {
        "/" => return Route::Home,
        "/cli" => return Route::Cli,
        "/health" => return Route::Health,
        "/cleanup" => return Route::Cleanup,
        "/metrics" => return Route::Metrics,
        _ => {}
    }
    if let Some(file) = path.strip_prefix("/static/") {
        return if is_var(file) && !file.contains('/') {
            Route::Static(file.into())
        } else {
            Route::NotFound
        };
    }
    if let Some(rest) = path.strip_prefix("/v2/") {
        return registry::route::route(rest).map_or(Route::NotFound, Route::Registry);
    }
    let (user, rest) = match path.strip_prefix("/~") {
        Some(after) => {
            let (u, rest) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            if !is_var(u) {
                return Route::NotFound;
            }
            if rest.is_empty() || rest == "/" {
                return Route::UserHome(UserHomeAddr {
                    user: u.into(),
                    slash: rest == "/",
                });
            }
            (Some(u.to_string()), rest)
        }
        None => (None, path),
    };
    if let Some(r) = rest.strip_prefix("/branches") {
        return branches_route(user, r);
    }
    if let Some(r) = rest.strip_prefix("/products") {
        return products_route(user, r);
    }
    Route::NotFound
}

fn branches_route(user: Option<String>, rest: &str) -> Route {
    // The artifact variable takes everything after the format, slashes and
    // empty segments included, so match it before splitting.
    if let Some((segs, path)) = artifact_split(rest, 4) {
        return Route::Artifact(ArtifactAddr {
            format: FormatAddr {
                user,
                parent: Parent::Job {
                    branch: segs[0].into(),
                    tag: segs[1].into(),
                    job: segs[2].into(),
                },
                format: segs[3].into(),
            },
            path: path.into(),
        });
    }
    let Some((segs, slash)) = segments(rest) else {
        return Route::NotFound;
    };
    let s = |i: usize| segs[i].to_string();
    let job = |user, job: String| JobAddr {
        user,
        branch: s(0),
        tag: s(1),
        job,
    };
    match (segs.len(), slash) {
        (0, _) => Route::Branches(RepoAddr { user, slash }),
        (1, _) => Route::Branch(BranchAddr {
            user,
            branch: s(0),
            slash,
        }),
        (2, _) => Route::Tag(TagAddr {
            user,
            branch: s(0),
            tag: s(1),
        }),
        (3, false) if strip_ext(segs[2], ".tar").is_some() => {
            Route::JobTar(job(user, strip_ext(segs[2], ".tar").unwrap_or_default().into()))
        }
        (3, _) => Route::Job(job(user, s(2))),
        (4, _) => {
            let parent = Parent::Job {
                branch: s(0),
                tag: s(1),
                job: s(2),
            };
            format_route(user, parent, segs[3], slash)
        }
        _ => Route::NotFound,
    }
}

fn format_route(user: Option<String>, parent: Parent, seg: &str, slash: bool) -> Route {
    let addr = |format: &str| FormatAddr {
        user,
        parent,
        format: format.into(),
    };
    if slash {
        return Route::Format(addr(seg));
    }
    if let Some(f) = strip_ext(seg, ".tar") {
        return Route::FormatTar(addr(f));
    }
    if let Some(f) = strip_ext(seg, ".sha256") {
        return Route::FormatSha256(addr(f));
    }
    Route::FormatShortcut(addr(seg))
}

/// For `/<s1>/…/<sN>/<artifact>` with N fixed segments and a non-empty
/// artifact, returns the segments and the artifact path.
fn artifact_split(rest: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut r = rest.strip_prefix('/')?;
    let mut segs = Vec::with_capacity(n);
    for _ in 0..n {
        let (seg, tail) = r.split_once('/')?;
        if !is_var(seg) {
            return None;
        }
        segs.push(seg);
        r = tail;
    }
    if r.is_empty() {
        return None;
    }
    Some((segs, r))
}

fn products_route(user: Option<String>, rest: &str) -> Route {
    if let Some((segs, path)) = artifact_split(rest, 5) {
        return Route::Artifact(ArtifactAddr {
            format: FormatAddr {
                user,
                parent: Parent::Version {
                    product: segs[0].into(),
                    variant: segs[1].into(),
                    pbranch: segs[2].into(),
                    version: segs[3].into(),
                },
                format: segs[4].into(),
            },
            path: path.into(),
        });
    }
    let Some((segs, slash)) = segments(rest) else {
        return Route::NotFound;
    };
    let s = |i: usize| segs[i].to_string();
    let version = |user, version: String| VersionAddr {
        user,
        product: s(0),
        variant: s(1),
        pbranch: s(2),
        version,
    };
    match (segs.len(), slash) {
        (0..=3, _) => Route::Products(ProductsAddr {
            user,
            levels: segs.iter().map(|l| l.to_string()).collect(),
            slash,
        }),
        (4, false) if strip_ext(segs[3], ".tar").is_some() => {
            Route::VersionTar(version(user, strip_ext(segs[3], ".tar").unwrap_or_default().into()))
        }
        (4, _) => Route::Version(version(user, s(3))),
        (5, _) => {
            let parent = Parent::Version {
                product: s(0),
                variant: s(1),
                pbranch: s(2),
                version: s(3),
            };
            format_route(user, parent, segs[4], slash)
        }
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(b: &str, t: &str, j: &str) -> Parent {
        Parent::Job {
            branch: b.into(),
            tag: t.into(),
            job: j.into(),
        }
    }

    fn fmt(parent: Parent, f: &str) -> FormatAddr {
        FormatAddr {
            user: None,
            parent,
            format: f.into(),
        }
    }

    fn job_addr(b: &str, t: &str, j: &str) -> JobAddr {
        JobAddr {
            user: None,
            branch: b.into(),
            tag: t.into(),
            job: j.into(),
        }
    }

    #[test]
    fn top_level() {
        assert_eq!(route("/"), Route::Home);
        assert_eq!(route("/cli"), Route::Cli);
        assert_eq!(route("/health"), Route::Health);
        assert_eq!(route("/cleanup"), Route::Cleanup);
        assert_eq!(route("/health/"), Route::NotFound);
        assert_eq!(route("/static/logo.svg"), Route::Static("logo.svg".into()));
        let home = |slash| {
            Route::UserHome(UserHomeAddr {
                user: "bob".into(),
                slash,
            })
        };
        assert_eq!(route("/~bob"), home(false));
        assert_eq!(route("/~bob/"), home(true));
        assert_eq!(route("/v2/"), Route::Registry(RegistryRoute::Root));
        assert_eq!(route("/v2"), Route::NotFound);
        assert_eq!(route("/nope"), Route::NotFound);
        assert_eq!(route("/~/branches/"), Route::NotFound);
    }

    #[test]
    fn branches_tree() {
        assert_eq!(
            route("/branches"),
            Route::Branches(RepoAddr {
                user: None,
                slash: false
            })
        );
        assert_eq!(
            route("/~u/branches/"),
            Route::Branches(RepoAddr {
                user: Some("u".into()),
                slash: true
            })
        );
        assert_eq!(
            route("/branches/b"),
            Route::Branch(BranchAddr {
                user: None,
                branch: "b".into(),
                slash: false
            })
        );
        assert_eq!(
            route("/branches/b/t/"),
            Route::Tag(TagAddr {
                user: None,
                branch: "b".into(),
                tag: "t".into(),
            })
        );
        assert_eq!(route("/branches/b/t/x.tar"), Route::JobTar(job_addr("b", "t", "x")));
        assert_eq!(route("/branches/b/t/x.tar/"), Route::Job(job_addr("b", "t", "x.tar")));
        assert_eq!(
            route("/branches/b/t/j/f.tar"),
            Route::FormatTar(fmt(job("b", "t", "j"), "f"))
        );
        assert_eq!(
            route("/branches/b/t/j/f.sha256"),
            Route::FormatSha256(fmt(job("b", "t", "j"), "f"))
        );
        assert_eq!(
            route("/branches/b/t/j/f"),
            Route::FormatShortcut(fmt(job("b", "t", "j"), "f"))
        );
        assert_eq!(route("/branches/b/t/j/f/"), Route::Format(fmt(job("b", "t", "j"), "f")));
        assert_eq!(
            route("/branches/b/t/j/f/a//b/c.txt"),
            Route::Artifact(ArtifactAddr {
                format: fmt(job("b", "t", "j"), "f"),
                path: "a//b/c.txt".into()
            })
        );
        assert_eq!(route("/branches//"), Route::NotFound);
        assert_eq!(route("/branches/b{x}/"), Route::NotFound);
        assert_eq!(
            route("/branches/b/t/j/f/a/b/"),
            Route::Artifact(ArtifactAddr {
                format: fmt(job("b", "t", "j"), "f"),
                path: "a/b/".into()
            })
        );
    }

    #[test]
    fn products_tree() {
        assert_eq!(
            route("/products"),
            Route::Products(ProductsAddr {
                user: None,
                levels: vec![],
                slash: false
            })
        );
        assert_eq!(
            route("/products/p/v/"),
            Route::Products(ProductsAddr {
                user: None,
                levels: vec!["p".into(), "v".into()],
                slash: true
            })
        );
        assert_eq!(
            route("/products/p/v/pb/1.0.tar"),
            Route::VersionTar(VersionAddr {
                user: None,
                product: "p".into(),
                variant: "v".into(),
                pbranch: "pb".into(),
                version: "1.0".into()
            })
        );
        match route("/~a/products/p/v/pb/1.0/fmt/x/y") {
            Route::Artifact(a) => {
                assert_eq!(a.format.user.as_deref(), Some("a"));
                assert_eq!(a.path, "x/y");
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn the_table_answers_405_with_its_methods() {
        let tag = || route("/branches/b/t/");
        assert!(matches!(tag().endpoint(&Method::GET), Ok(Endpoint::GetTag(_))));
        assert!(matches!(tag().endpoint(&Method::POST), Ok(Endpoint::UpdateTag(_))));
        match tag().endpoint(&Method::HEAD) {
            Err(HttpError::MethodNotAllowed(allow)) => assert_eq!(allow, "DELETE,GET,POST"),
            r => panic!("{r:?}"),
        }
        match route("/branches/b/t/j/").endpoint(&Method::OPTIONS) {
            Err(HttpError::MethodNotAllowed(allow)) => assert_eq!(allow, "DELETE,GET,PATCH,POST,PUT"),
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            route("/nope").endpoint(&Method::GET),
            Err(HttpError::NotFound)
        ));
        assert!(matches!(route("/v2/x"), Route::NotFound));
        assert!(matches!(
            route("/v2/").endpoint(&Method::GET),
            Ok(Endpoint::Registry(RegistryEndpoint::GetRoot))
        ));
    }

    #[test]
    fn every_table_is_sorted_without_repeats() {
        use table::*;
        fn verbs<A>(t: Table<A>) -> Vec<Verb> {
            t.iter().map(|(v, _)| *v).collect()
        }
        for v in [
            verbs(HOME),
            verbs(USER_HOME),
            verbs(CLI),
            verbs(STATIC),
            verbs(BRANCHES),
            verbs(BRANCH),
            verbs(TAG),
            verbs(JOB_TAR),
            verbs(JOB),
            verbs(FORMAT_TAR),
            verbs(FORMAT_SHA256),
            verbs(FORMAT_SHORTCUT),
            verbs(FORMAT),
            verbs(ARTIFACT),
            verbs(PRODUCTS),
            verbs(VERSION_TAR),
            verbs(VERSION),
        ] {
            assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        }
    }
}
