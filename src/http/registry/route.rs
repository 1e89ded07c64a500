//! Registry paths (docs/spec/http-api.md §9): `/v2/…` becomes a
//! [`RegistryRoute`], and its table gives the endpoint of each method.

use hyper::Method;

use crate::http::error::HttpError;

/// An image as its name says: a job's, or a product branch's (read-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Job {
        user: Option<String>,
        branch: String,
        job: String,
    },
    Product {
        user: Option<String>,
        product: String,
        variant: String,
        pbranch: String,
    },
}

/// An image and its name as the URL spells it (after `/v2/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAddr {
    pub image: Image,
    pub name: String,
}

impl ImageAddr {
    /// The name without `u/<user>/`, as the tags list shows it.
    pub fn short_name(&self) -> &str {
        match self.name.strip_prefix("u/") {
            Some(rest) => rest.split_once('/').map_or(rest, |(_, r)| r),
            None => &self.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestAddr {
    pub image: ImageAddr,
    /// A tag, version or alias, or a digest (`<algo>:<hex>`).
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadAddr {
    pub image: ImageAddr,
    pub uuid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobAddr {
    pub image: ImageAddr,
    pub digest: String,
}

/// What a `/v2/` path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryRoute {
    Root,
    Catalog,
    TagsList(ImageAddr),
    Manifest(ManifestAddr),
    /// `…/blobs/uploads/`: starts a session.
    NewUpload(ImageAddr),
    Upload(UploadAddr),
    Blob(BlobAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEndpoint {
    GetRoot,
    GetCatalog,
    GetTags(ImageAddr),
    /// GET and HEAD.
    GetManifest(ManifestAddr),
    PutManifest(ManifestAddr),
    StartUpload(ImageAddr),
    GetUpload(UploadAddr),
    AppendUpload(UploadAddr),
    FinishUpload(UploadAddr),
    CancelUpload(UploadAddr),
    /// GET and HEAD.
    GetBlob(BlobAddr),
}

fn is_var(seg: &str) -> bool {
    !seg.is_empty() && !seg.contains(['{', '}', '/'])
}

/// The image of `segs` (the name's segments), if they name one.
fn image(segs: &[&str]) -> Option<ImageAddr> {
    if !segs.iter().all(|s| is_var(s)) {
        return None;
    }
    let (user, rest) = match segs {
        ["u", user, rest @ ..] if rest.len() >= 2 => (Some(user.to_string()), rest),
        _ => (None, segs),
    };
    let image = match rest {
        [b, j] => Image::Job {
            user,
            branch: b.to_string(),
            job: j.to_string(),
        },
        [p, v, pb] => Image::Product {
            user,
            product: p.to_string(),
            variant: v.to_string(),
            pbranch: pb.to_string(),
        },
        _ => return None,
    };
    Some(ImageAddr {
        image,
        name: segs.join("/"),
    })
}

/// Parses what follows `/v2/`; `None` names nothing.
pub fn route(rest: &str) -> Option<RegistryRoute> {
    match rest {
        "" => return Some(RegistryRoute::Root),
        "_catalog" => return Some(RegistryRoute::Catalog),
        _ => {}
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        let segs: Vec<&str> = name.split('/').collect();
        return image(&segs).map(RegistryRoute::TagsList);
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads/") {
        let segs: Vec<&str> = name.split('/').collect();
        return image(&segs).map(RegistryRoute::NewUpload);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    if n >= 5 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" && is_var(segs[n - 1]) {
        return image(&segs[..n - 3]).map(|image| {
            RegistryRoute::Upload(UploadAddr {
                image,
                uuid: segs[n - 1].to_string(),
            })
        });
    }
    if n >= 4 && is_var(segs[n - 1]) {
        let last = segs[n - 1].to_string();
        match segs[n - 2] {
            "manifests" => {
                return image(&segs[..n - 2])
                    .map(|image| RegistryRoute::Manifest(ManifestAddr { image, reference: last }))
            }
            "blobs" => return image(&segs[..n - 2]).map(|image| RegistryRoute::Blob(BlobAddr { image, digest: last })),
            _ => {}
        }
    }
    None
}

type Table<A> = &'static [(Method, fn(A) -> RegistryEndpoint)];

mod table {
    use super::RegistryEndpoint::*;
    use super::*;

    pub const ROOT: Table<()> = &[(Method::GET, |()| GetRoot)];
    pub const CATALOG: Table<()> = &[(Method::GET, |()| GetCatalog)];
    pub const TAGS: Table<ImageAddr> = &[(Method::GET, GetTags)];
    pub const JOB_MANIFEST: Table<ManifestAddr> = &[
        (Method::GET, GetManifest),
        (Method::HEAD, GetManifest),
        (Method::PUT, PutManifest),
    ];
    /// Product images are read-only.
    pub const PRODUCT_MANIFEST: Table<ManifestAddr> = &[(Method::GET, GetManifest), (Method::HEAD, GetManifest)];
    pub const NEW_UPLOAD: Table<ImageAddr> = &[(Method::POST, StartUpload)];
    pub const UPLOAD: Table<UploadAddr> = &[
        (Method::DELETE, CancelUpload),
        (Method::GET, GetUpload),
        (Method::PATCH, AppendUpload),
        (Method::PUT, FinishUpload),
    ];
    pub const BLOB: Table<BlobAddr> = &[(Method::GET, GetBlob), (Method::HEAD, GetBlob)];
}

fn pick<A>(table: Table<A>, method: &Method, addr: A) -> Result<RegistryEndpoint, HttpError> {
    match table.iter().find(|(m, _)| m == method) {
        Some((_, endpoint)) => Ok(endpoint(addr)),
        None => {
            let allow: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
            Err(HttpError::MethodNotAllowed(allow.join(",")))
        }
    }
}

fn is_product(i: &ImageAddr) -> bool {
    matches!(i.image, Image::Product { .. })
}

impl RegistryRoute {
    /// The endpoint for `method`; sessions exist for job images only.
    pub fn endpoint(self, method: &Method) -> Result<RegistryEndpoint, HttpError> {
        use table::*;
        match self {
            RegistryRoute::Root => pick(ROOT, method, ()),
            RegistryRoute::Catalog => pick(CATALOG, method, ()),
            RegistryRoute::TagsList(a) => pick(TAGS, method, a),
            RegistryRoute::Manifest(a) if is_product(&a.image) => pick(PRODUCT_MANIFEST, method, a),
            RegistryRoute::Manifest(a) => pick(JOB_MANIFEST, method, a),
            RegistryRoute::NewUpload(a) if is_product(&a) => Err(HttpError::NotFound),
            RegistryRoute::NewUpload(a) => pick(NEW_UPLOAD, method, a),
            RegistryRoute::Upload(a) if is_product(&a.image) => Err(HttpError::NotFound),
            RegistryRoute::Upload(a) => pick(UPLOAD, method, a),
            RegistryRoute::Blob(a) => pick(BLOB, method, a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(user: Option<&str>, b: &str, j: &str, name: &str) -> ImageAddr {
        ImageAddr {
            image: Image::Job {
                user: user.map(str::to_string),
                branch: b.into(),
                job: j.into(),
            },
            name: name.into(),
        }
    }

    #[test]
    fn names_and_their_images() {
        assert_eq!(route(""), Some(RegistryRoute::Root));
        assert_eq!(route("_catalog"), Some(RegistryRoute::Catalog));
        assert_eq!(
            route("b/j/tags/list"),
            Some(RegistryRoute::TagsList(job(None, "b", "j", "b/j")))
        );
        let m = route("u/alice/b/j/manifests/v1").expect("a manifest");
        assert_eq!(
            m,
            RegistryRoute::Manifest(ManifestAddr {
                image: job(Some("alice"), "b", "j", "u/alice/b/j"),
                reference: "v1".into()
            })
        );
        match route("p/v/pb/manifests/latest") {
            Some(RegistryRoute::Manifest(a)) => assert!(matches!(a.image.image, Image::Product { .. })),
            r => panic!("{r:?}"),
        }
        // Three segments after `u/`… is a product whose name starts with u.
        match route("u/x/y/blobs/sha256:ab") {
            Some(RegistryRoute::Blob(a)) => assert!(matches!(a.image.image, Image::Product { user: None, .. })),
            r => panic!("{r:?}"),
        }
        assert_eq!(
            route("b/j/blobs/uploads/"),
            Some(RegistryRoute::NewUpload(job(None, "b", "j", "b/j")))
        );
        assert_eq!(
            route("b/j/blobs/uploads/abc"),
            Some(RegistryRoute::Upload(UploadAddr {
                image: job(None, "b", "j", "b/j"),
                uuid: "abc".into()
            }))
        );
        assert_eq!(job(Some("a"), "b", "j", "u/a/b/j").short_name(), "b/j");
        for bad in [
            "x/manifests/t",
            "a/b/c/d/manifests/t",
            "b/j/manifests/",
            "b//j/tags/list",
            "b/j/other/x",
            "b/j",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }

    #[test]
    fn product_images_are_read_only() {
        let put = |p: &str| route(p).expect("route").endpoint(&Method::PUT);
        assert!(matches!(put("b/j/manifests/t"), Ok(RegistryEndpoint::PutManifest(_))));
        match put("p/v/pb/manifests/t") {
            Err(HttpError::MethodNotAllowed(allow)) => assert_eq!(allow, "GET,HEAD"),
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            route("p/v/pb/blobs/uploads/").expect("route").endpoint(&Method::POST),
            Err(HttpError::NotFound)
        ));
    }
}
