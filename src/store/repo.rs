//! Paths of a repository: the base one at the root, or `users/<user>/`.

use std::path::{Path, PathBuf};

/// A base or user repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// `<root>` or `<root>/users/<user>`.
    pub dir: PathBuf,
    /// Lowercased user name for user repositories.
    pub user: Option<String>,
}

impl Repo {
    pub fn new(root: &Path, user: Option<&str>) -> Repo {
        match user {
            None => Repo {
                dir: root.to_path_buf(),
                user: None,
            },
            Some(u) => Repo {
                dir: root.join("users").join(u),
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
        // Sized once: this runs for every artifact request.
        let mut p = self.branches_dir();
        p.reserve(b.len() + t.len() + j.len() + 3);
        p.push(b);
        p.push(t);
        p.push(j);
        p
    }

    pub fn format_dir(&self, b: &str, t: &str, j: &str, f: &str) -> PathBuf {
        self.job_dir(b, t, j).join(f)
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
        let mut u = self.repo.url_prefix();
        u.reserve(self.branch.len() + self.tag.len() + self.job.len() + 14);
        for part in ["/branches/", &self.branch, "/", &self.tag, "/", &self.job, "/"] {
            u.push_str(part);
        }
        u
    }
}
