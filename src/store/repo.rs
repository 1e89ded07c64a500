//! Paths of a repository: the base one at the root, or `users/<user>/`.

use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A base or user repository. Cloning one shares its folder's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// `<root>` or `<root>/users/<user>`.
    pub dir: Rc<Path>,
    /// Lowercased user name for user repositories.
    pub user: Option<String>,
}

impl Repo {
    pub fn new(root: &Path, user: Option<&str>) -> Repo {
        match user {
            None => Repo {
                dir: Rc::from(root),
                user: None,
            },
            Some(u) => Repo {
                dir: Rc::from(root.join("users").join(u)),
                user: Some(u.to_string()),
            },
        }
    }

    /// The URL prefix: empty, or `/~<user>`.
    pub fn url_prefix(&self) -> String {
        match &self.user {
            None => String::new(),
            Some(u) => format!("/~{u}"),
        }
    }

    pub fn branches_dir(&self) -> PathBuf {
        self.dir.join("branches")
    }

    pub fn products_dir(&self) -> PathBuf {
        self.dir.join("products")
    }

    pub fn branch_dir(&self, b: &str) -> PathBuf {
        self.branches_dir().join(b)
    }

    pub fn tag_dir(&self, b: &str, t: &str) -> PathBuf {
        self.branch_dir(b).join(t)
    }

    pub fn job_dir(&self, b: &str, t: &str, j: &str) -> PathBuf {
        self.below_branches(&[b, t, j])
    }

    pub fn format_dir(&self, b: &str, t: &str, j: &str, f: &str) -> PathBuf {
        self.below_branches(&[b, t, j, f])
    }

    /// `branches/<names…>`, allocated once at its final size: this runs
    /// for every artifact request.
    fn below_branches(&self, names: &[&str]) -> PathBuf {
        let len = self.dir.as_os_str().len() + "/branches".len() + names.iter().map(|n| n.len() + 1).sum::<usize>();
        let mut p = PathBuf::with_capacity(len);
        p.push(&self.dir);
        p.push("branches");
        for n in names {
            p.push(n);
        }
        p
    }
}

/// A job inside a repository, with lowercased names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub repo: Repo,
    pub branch: String,
    pub tag: String,
    pub job: String,
}

impl JobRef {
    pub fn dir(&self) -> PathBuf {
        self.repo.job_dir(&self.branch, &self.tag, &self.job)
    }
    pub fn tag_dir(&self) -> PathBuf {
        self.repo.tag_dir(&self.branch, &self.tag)
    }
    pub fn url(&self) -> String {
        self.url_below("")
    }

    /// The URL of a format of this job (with its trailing slash).
    pub fn format_url(&self, format: &str) -> String {
        self.url_below(format)
    }

    /// The job's URL followed by `rest/` (nothing more when `rest` is
    /// empty), allocated once at its final size.
    fn url_below(&self, rest: &str) -> String {
        let user = self.repo.user.as_deref();
        let parts = ["/branches/", &self.branch, "/", &self.tag, "/", &self.job, "/", rest];
        let len = user.map_or(0, |u| u.len() + 2) + parts.iter().map(|p| p.len()).sum::<usize>() + 1;
        let mut u = String::with_capacity(len);
        if let Some(user) = user {
            u.push_str("/~");
            u.push_str(user);
        }
        for part in parts {
            u.push_str(part);
        }
        if !rest.is_empty() {
            u.push('/');
        }
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_urls_of_jobs_and_formats() {
        let root = Path::new("/srv/dlrepo");
        for (user, dir, url) in [
            (None, "/srv/dlrepo/branches/b/t/j", "/branches/b/t/j/"),
            (
                Some("alice"),
                "/srv/dlrepo/users/alice/branches/b/t/j",
                "/~alice/branches/b/t/j/",
            ),
        ] {
            let jr = JobRef {
                repo: Repo::new(root, user),
                branch: "b".into(),
                tag: "t".into(),
                job: "j".into(),
            };
            assert_eq!(jr.dir(), Path::new(dir));
            assert_eq!(jr.repo.format_dir("b", "t", "j", "f"), Path::new(dir).join("f"));
            assert_eq!(jr.url(), url);
            assert_eq!(jr.format_url("deb"), format!("{url}deb/"));
        }
    }
}
