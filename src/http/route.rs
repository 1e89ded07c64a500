//! URL routing (http-api.md §4): a decoded path becomes a [`Route`].
//!
//! Names are kept as typed here; handlers lowercase them. A variable segment
//! is one or more characters other than `/`, `{` and `}`.

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Home,
    UserHome {
        user: String,
        slash: bool,
    },
    Cli,
    Static {
        file: String,
    },
    Branches {
        user: Option<String>,
        slash: bool,
    },
    Branch {
        user: Option<String>,
        branch: String,
        slash: bool,
    },
    Tag {
        user: Option<String>,
        branch: String,
        tag: String,
        slash: bool,
    },
    JobTar {
        user: Option<String>,
        branch: String,
        tag: String,
        job: String,
    },
    Job {
        user: Option<String>,
        branch: String,
        tag: String,
        job: String,
        slash: bool,
    },
    FormatTar {
        user: Option<String>,
        parent: Parent,
        format: String,
    },
    FormatSha256 {
        user: Option<String>,
        parent: Parent,
        format: String,
    },
    FormatShortcut {
        user: Option<String>,
        parent: Parent,
        format: String,
    },
    Format {
        user: Option<String>,
        parent: Parent,
        format: String,
    },
    Artifact {
        user: Option<String>,
        parent: Parent,
        format: String,
        path: String,
    },
    Products {
        user: Option<String>,
        slash: bool,
    },
    Product {
        user: Option<String>,
        product: String,
        slash: bool,
    },
    Variant {
        user: Option<String>,
        product: String,
        variant: String,
        slash: bool,
    },
    ProductBranch {
        user: Option<String>,
        product: String,
        variant: String,
        pbranch: String,
        slash: bool,
    },
    VersionTar(VersionAddr),
    Version {
        addr: VersionAddr,
        slash: bool,
    },
    Registry,
    NotFound,
}

impl Route {
    /// The methods the endpoint implements, as sent in `Allow`.
    pub fn allowed(&self) -> &'static str {
        match self {
            Route::Home | Route::UserHome { .. } => "GET",
            Route::Cli | Route::Static { .. } => "GET,HEAD",
            Route::Branches { .. } => "GET",
            Route::Branch { .. } | Route::Tag { .. } => "DELETE,GET,POST",
            Route::JobTar { .. } => "GET",
            Route::Job { .. } => "DELETE,GET,PATCH,POST,PUT",
            Route::FormatTar { .. } => "GET,HEAD",
            Route::FormatSha256 { .. } => "GET",
            Route::FormatShortcut { .. } => "GET,HEAD",
            Route::Format { .. } => "DELETE,GET,HEAD,PATCH",
            Route::Artifact { .. } => "GET,HEAD,PUT",
            Route::Products { .. }
            | Route::Product { .. }
            | Route::Variant { .. }
            | Route::ProductBranch { .. }
            | Route::VersionTar(_)
            | Route::Version { .. } => "GET",
            Route::Registry | Route::NotFound => "",
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
        _ => {}
    }
    if let Some(file) = path.strip_prefix("/static/") {
        return if is_var(file) && !file.contains('/') {
            Route::Static { file: file.into() }
        } else {
            Route::NotFound
        };
    }
    if path == "/v2/" || path.starts_with("/v2/") {
        return Route::Registry;
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
                return Route::UserHome {
                    user: u.into(),
                    slash: rest == "/",
                };
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
    if let Some(r) = artifact_split(rest, 4) {
        let (segs, path) = r;
        return Route::Artifact {
            user,
            parent: Parent::Job {
                branch: segs[0].into(),
                tag: segs[1].into(),
                job: segs[2].into(),
            },
            format: segs[3].into(),
            path: path.into(),
        };
    }
    let Some((segs, slash)) = segments(rest) else {
        return Route::NotFound;
    };
    let s = |i: usize| segs[i].to_string();
    match (segs.len(), slash) {
        (0, _) => Route::Branches { user, slash },
        (1, _) => Route::Branch {
            user,
            branch: s(0),
            slash,
        },
        (2, _) => Route::Tag {
            user,
            branch: s(0),
            tag: s(1),
            slash,
        },
        (3, false) if strip_ext(segs[2], ".tar").is_some() => Route::JobTar {
            user,
            branch: s(0),
            tag: s(1),
            job: strip_ext(segs[2], ".tar").unwrap_or_default().into(),
        },
        (3, _) => Route::Job {
            user,
            branch: s(0),
            tag: s(1),
            job: s(2),
            slash,
        },
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
    if slash {
        return Route::Format {
            user,
            parent,
            format: seg.into(),
        };
    }
    if let Some(f) = strip_ext(seg, ".tar") {
        return Route::FormatTar {
            user,
            parent,
            format: f.into(),
        };
    }
    if let Some(f) = strip_ext(seg, ".sha256") {
        return Route::FormatSha256 {
            user,
            parent,
            format: f.into(),
        };
    }
    Route::FormatShortcut {
        user,
        parent,
        format: seg.into(),
    }
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
        return Route::Artifact {
            user,
            parent: Parent::Version {
                product: segs[0].into(),
                variant: segs[1].into(),
                pbranch: segs[2].into(),
                version: segs[3].into(),
            },
            format: segs[4].into(),
            path: path.into(),
        };
    }
    let Some((segs, slash)) = segments(rest) else {
        return Route::NotFound;
    };
    let s = |i: usize| segs[i].to_string();
    match (segs.len(), slash) {
        (0, _) => Route::Products { user, slash },
        (1, _) => Route::Product {
            user,
            product: s(0),
            slash,
        },
        (2, _) => Route::Variant {
            user,
            product: s(0),
            variant: s(1),
            slash,
        },
        (3, _) => Route::ProductBranch {
            user,
            product: s(0),
            variant: s(1),
            pbranch: s(2),
            slash,
        },
        (4, false) if strip_ext(segs[3], ".tar").is_some() => Route::VersionTar(VersionAddr {
            user,
            product: s(0),
            variant: s(1),
            pbranch: s(2),
            version: strip_ext(segs[3], ".tar").unwrap_or_default().into(),
        }),
        (4, _) => Route::Version {
            addr: VersionAddr {
                user,
                product: s(0),
                variant: s(1),
                pbranch: s(2),
                version: s(3),
            },
            slash,
        },
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

    #[test]
    fn top_level() {
        assert_eq!(route("/"), Route::Home);
        assert_eq!(route("/cli"), Route::Cli);
        assert_eq!(
            route("/static/logo.svg"),
            Route::Static {
                file: "logo.svg".into()
            }
        );
        assert_eq!(
            route("/~bob"),
            Route::UserHome {
                user: "bob".into(),
                slash: false
            }
        );
        assert_eq!(
            route("/~bob/"),
            Route::UserHome {
                user: "bob".into(),
                slash: true
            }
        );
        assert_eq!(route("/v2/"), Route::Registry);
        assert_eq!(route("/v2"), Route::NotFound);
        assert_eq!(route("/nope"), Route::NotFound);
        assert_eq!(route("/~/branches/"), Route::NotFound);
    }

    #[test]
    fn branches_tree() {
        assert_eq!(
            route("/branches"),
            Route::Branches {
                user: None,
                slash: false
            }
        );
        assert_eq!(
            route("/~u/branches/"),
            Route::Branches {
                user: Some("u".into()),
                slash: true
            }
        );
        assert_eq!(
            route("/branches/b"),
            Route::Branch {
                user: None,
                branch: "b".into(),
                slash: false
            }
        );
        assert_eq!(
            route("/branches/b/t/"),
            Route::Tag {
                user: None,
                branch: "b".into(),
                tag: "t".into(),
                slash: true
            }
        );
        assert_eq!(
            route("/branches/b/t/x.tar"),
            Route::JobTar {
                user: None,
                branch: "b".into(),
                tag: "t".into(),
                job: "x".into()
            }
        );
        assert_eq!(
            route("/branches/b/t/x.tar/"),
            Route::Job {
                user: None,
                branch: "b".into(),
                tag: "t".into(),
                job: "x.tar".into(),
                slash: true
            }
        );
        assert_eq!(
            route("/branches/b/t/j/f.tar"),
            Route::FormatTar {
                user: None,
                parent: job("b", "t", "j"),
                format: "f".into()
            }
        );
        assert_eq!(
            route("/branches/b/t/j/f.sha256"),
            Route::FormatSha256 {
                user: None,
                parent: job("b", "t", "j"),
                format: "f".into()
            }
        );
        assert_eq!(
            route("/branches/b/t/j/f"),
            Route::FormatShortcut {
                user: None,
                parent: job("b", "t", "j"),
                format: "f".into()
            }
        );
        assert_eq!(
            route("/branches/b/t/j/f/"),
            Route::Format {
                user: None,
                parent: job("b", "t", "j"),
                format: "f".into()
            }
        );
        assert_eq!(
            route("/branches/b/t/j/f/a//b/c.txt"),
            Route::Artifact {
                user: None,
                parent: job("b", "t", "j"),
                format: "f".into(),
                path: "a//b/c.txt".into()
            }
        );
        assert_eq!(route("/branches//"), Route::NotFound);
        assert_eq!(route("/branches/b{x}/"), Route::NotFound);
        assert_eq!(
            route("/branches/b/t/j/f/a/b/"),
            Route::Artifact {
                user: None,
                parent: job("b", "t", "j"),
                format: "f".into(),
                path: "a/b/".into()
            }
        );
    }

    #[test]
    fn products_tree() {
        assert_eq!(
            route("/products"),
            Route::Products {
                user: None,
                slash: false
            }
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
            Route::Artifact { user, path, .. } => {
                assert_eq!(user.as_deref(), Some("a"));
                assert_eq!(path, "x/y");
            }
            r => panic!("{r:?}"),
        }
    }
}
