//! Authentication and access control (docs/spec/auth.md): who the caller is, which
//! groups they have, and whether their ACL lines grant a request or let
//! them see a listing entry.

pub mod acl;
mod cache;
pub mod ldap;
pub mod users;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use hyper::HeaderMap;

use acl::AclSet;
pub use acl::Class;
use cache::TtlCache;
use users::Users;

use crate::config::Config;
use crate::logging::CRITICAL;

/// Who is calling. `login` is `None` for anonymous callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub login: Option<String>,
    pub groups: Vec<String>,
}

impl Identity {
    fn anonymous() -> Identity {
        Identity {
            login: None,
            groups: vec!["ANONYMOUS".into()],
        }
    }
}

enum Mode {
    Disabled,
    Headers { login: String, groups: String },
    Ldap(ldap::Ldap),
    File,
}

pub struct Auth {
    mode: Mode,
    cfg: Rc<Config>,
    acls: RefCell<Rc<AclSet>>,
    users: RefCell<Rc<Users>>,
    /// Raw `Authorization` value → identity (successes only).
    credentials: RefCell<TtlCache<String, Identity>>,
    /// (groups, login, class, path) → decision.
    decisions: RefCell<TtlCache<(String, String, Class, String), bool>>,
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No identity, a wrong one, or one the ACLs do not let through: 401.
    Unauthorized,
    /// A request that cannot be judged, such as a proxy identity header
    /// given twice: 400 with the reason.
    BadRequest(String),
}

/// The outcome of authorising a request: what the caller may read, for
/// listings and aliases.
#[derive(Clone)]
pub struct Access {
    auth: Option<Rc<Auth>>,
    pub identity: Option<Identity>,
}

impl Access {
    /// Everything is readable (auth disabled).
    pub fn all() -> Access {
        Access {
            auth: None,
            identity: None,
        }
    }

    /// Whether the caller may read `path` (a canonical URL).
    pub fn can_read(&self, path: &str) -> bool {
        match (&self.auth, &self.identity) {
            (Some(auth), Some(id)) => auth.allowed(id, Class::Read, path),
            _ => true,
        }
    }

    /// The user as the access log shows it: the login, `ANONYMOUS`, or `None`.
    pub fn log_name(&self) -> String {
        match &self.identity {
            None => "None".into(),
            Some(Identity { login: Some(l), .. }) => l.clone(),
            Some(_) => "ANONYMOUS".into(),
        }
    }
}

/// The access class of a request (docs/spec/auth.md §2).
pub fn classify(method: &hyper::Method, path: &str) -> Class {
    match *method {
        hyper::Method::PUT | hyper::Method::PATCH => Class::Add,
        hyper::Method::POST if path.starts_with("/v2/") => Class::Add,
        hyper::Method::DELETE => Class::Delete,
        hyper::Method::POST => Class::Update,
        _ => Class::Read,
    }
}

impl Auth {
    pub fn new(cfg: Rc<Config>) -> Rc<Auth> {
        let mode = if cfg.auth_disabled {
            Mode::Disabled
        } else if let (Some(l), Some(g)) = (&cfg.auth_http_login_header, &cfg.auth_http_groups_header) {
            Mode::Headers {
                login: l.clone(),
                groups: g.clone(),
            }
        } else if cfg.ldap_url.is_some() {
            Mode::Ldap(ldap::Ldap::new(&cfg))
        } else {
            Mode::File
        };
        let size = cfg.auth_cache_size as usize;
        let ttl = Duration::from_secs(cfg.auth_cache_ttl);
        let auth = Rc::new(Auth {
            mode,
            acls: RefCell::new(Rc::new(AclSet::default())),
            users: RefCell::new(Rc::new(Users::empty(cfg.ignore_passwords))),
            credentials: RefCell::new(TtlCache::new(size, ttl)),
            decisions: RefCell::new(TtlCache::new(size, ttl)),
            cfg,
        });
        auth.reload();
        auth
    }

    pub fn is_disabled(&self) -> bool {
        matches!(self.mode, Mode::Disabled)
    }

    /// (Re)reads the ACL files and the auth file, and empties the caches.
    pub fn reload(&self) {
        if self.is_disabled() {
            return;
        }
        match AclSet::load(&self.cfg.acls_dir) {
            Ok(a) => *self.acls.borrow_mut() = Rc::new(a),
            Err(e) => {
                tracing::error!("DLREPO_ACLS_DIR: {}: {e}", self.cfg.acls_dir.display());
                *self.acls.borrow_mut() = Rc::new(AclSet::default());
            }
        }
        if matches!(self.mode, Mode::File) {
            match Users::load(&self.cfg.auth_file, self.cfg.ignore_passwords) {
                Ok(u) => *self.users.borrow_mut() = Rc::new(u),
                Err(e) => {
                    tracing::error!("DLREPO_AUTH_FILE: {}: {e}", self.cfg.auth_file.display());
                    *self.users.borrow_mut() = Rc::new(Users::empty(self.cfg.ignore_passwords));
                }
            }
        }
        self.credentials.borrow_mut().clear();
        self.decisions.borrow_mut().clear();
    }

    /// Logs the startup banners.
    pub fn banners(&self) {
        if self.is_disabled() {
            tracing::error!(target: CRITICAL, "NO AUTHENTICATION! ANYONE CAN WRITE!");
        }
        if self.cfg.ignore_passwords && !self.is_disabled() {
            tracing::error!(target: CRITICAL, "PASSWORD AUTHENTICATION BYPASSED!");
        }
    }

    /// Authorises a request.
    pub async fn authorize(
        self: &Rc<Self>,
        method: &hyper::Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Access, Refusal> {
        if self.is_disabled() {
            return Ok(Access::all());
        }
        let class = classify(method, path);
        // Load balancers and watchdogs ask `/health` without credentials.
        if class == Class::Read && (path.starts_with("/static/") || path == "/favicon.ico" || path == "/health") {
            return Ok(Access {
                auth: Some(self.clone()),
                identity: Some(Identity::anonymous()),
            });
        }
        // `/cleanup` is judged on what it shows or does: the status is for
        // readers of `/`, a run for whoever may delete under `/branches/`.
        let (class, path) = match (class, path) {
            (Class::Read, "/cleanup") => (Class::Read, "/"),
            (_, "/cleanup") => (Class::Delete, "/branches/"),
            _ => (class, path),
        };
        let identity = self.identify(headers).await?;
        if identity.login.is_none() && (class != Class::Read || path == "/v2/") {
            return Err(Refusal::Unauthorized);
        }
        if !self.allowed(&identity, class, path) {
            return Err(Refusal::Unauthorized);
        }
        // Handlers lowercase names and fold empty segments before touching
        // the disk, so a write must also be allowed on the path it really
        // affects: `DELETE /branches/PROD/` must not pass `!/branches/prod/**`.
        if class != Class::Read {
            let canonical = canonical_path(path);
            if canonical != path && !self.allowed(&identity, class, &canonical) {
                return Err(Refusal::Unauthorized);
            }
        }
        Ok(Access {
            auth: Some(self.clone()),
            identity: Some(identity),
        })
    }

    /// The caller's identity. Credentials that do not check out are an
    /// error: they never fall back to anonymous.
    async fn identify(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        if let Mode::Headers { login, groups } = &self.mode {
            // The proxy sets these headers; a second copy came from the
            // client, and which one is the proxy's cannot be told.
            for name in [login, groups] {
                if headers.get_all(name.as_str()).iter().count() > 1 {
                    return Err(Refusal::BadRequest(format!("{name} is given more than once")));
                }
            }
            let Some(login) = headers.get(login.as_str()).and_then(|v| v.to_str().ok()) else {
                return Ok(Identity::anonymous());
            };
            let groups = match headers.get(groups.as_str()).and_then(|v| v.to_str().ok()) {
                Some(g) => g.trim().split(',').map(str::to_string).collect(),
                None => vec![String::new()],
            };
            return Ok(Identity {
                login: Some(login.to_string()),
                groups,
            });
        }
        let Some(raw) = headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Ok(Identity::anonymous());
        };
        let Some((login, password)) = parse_basic(raw) else {
            return Ok(Identity::anonymous());
        };
        if let Some(id) = self.credentials.borrow_mut().get(raw) {
            return Ok(id);
        }
        let groups = match &self.mode {
            Mode::Ldap(l) => l.groups(&login, &password).await.map_err(|e| {
                tracing::error!("LDAP authentication of {login} failed: {e}");
                Refusal::Unauthorized
            })?,
            _ => {
                let users = self.users.borrow().clone();
                users.check(&login, &password).unwrap_or_default()
            }
        };
        if groups.is_empty() {
            tracing::debug!("authentication failed for {login}");
            return Err(Refusal::Unauthorized);
        }
        tracing::debug!("user {login} authenticated: groups {groups:?}");
        let id = Identity {
            login: Some(login),
            groups,
        };
        self.credentials.borrow_mut().insert(raw.to_string(), id.clone());
        Ok(id)
    }

    /// Whether the identity's ACL lines grant `class` on `path` (cached).
    /// `$user` stands for the login as given and, for a login with capital
    /// letters, also for its lowercase form: the name of the user's own
    /// repository, which every URL of it leads to (user `Dave` writes to
    /// `/~Dave/…` and `/~dave/…`, both `users/dave/`).
    pub fn allowed(&self, id: &Identity, class: Class, path: &str) -> bool {
        let login = id.login.as_deref().unwrap_or_default();
        let lower = crate::names::lower(login);
        self.allowed_as(id, login, class, path) || (lower != login && self.allowed_as(id, &lower, class, path))
    }

    fn allowed_as(&self, id: &Identity, login: &str, class: Class, path: &str) -> bool {
        let login = login.to_string();
        let key = (id.groups.join("\n"), login, class, path.to_string());
        if let Some(d) = self.decisions.borrow_mut().get(&key) {
            return d;
        }
        let acls = self.acls.borrow().clone();
        let d = acls.allows(&id.groups, &key.1, class, path);
        self.decisions.borrow_mut().insert(key, d);
        d
    }
}

/// The path a request really touches: user, branch, tag, job, format and
/// product names lowercased, empty segments of the artifact path folded.
pub fn canonical_path(path: &str) -> String {
    let lower = crate::names::lower;
    let (mut out, rest) = match path.strip_prefix("/~") {
        Some(after) => match after.find('/') {
            Some(i) => (format!("/~{}", lower(&after[..i])), &after[i..]),
            None => return format!("/~{}", lower(after)),
        },
        None => (String::new(), path),
    };
    let names = if rest.starts_with("/branches/") {
        4
    } else if rest.starts_with("/products/") {
        5
    } else {
        out.push_str(rest);
        return out;
    };
    let (kw, tail) = rest[1..].split_once('/').unwrap_or((&rest[1..], ""));
    out.push('/');
    out.push_str(kw);
    let mut parts = tail.splitn(names + 1, '/');
    for _ in 0..names {
        match parts.next() {
            Some(seg) => {
                out.push('/');
                out.push_str(&lower(seg));
            }
            None => return out,
        }
    }
    if let Some(artifact) = parts.next() {
        out.push('/');
        let mut last_slash = false;
        for c in artifact.chars() {
            if c == '/' && last_slash {
                continue;
            }
            last_slash = c == '/';
            out.push(c);
        }
    }
    out
}

/// `Basic base64(login:password)`; anything else (or an empty login) is `None`.
fn parse_basic(raw: &str) -> Option<(String, String)> {
    let (scheme, rest) = raw.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (login, password) = text.split_once(':')?;
    if login.is_empty() {
        return None;
    }
    Some((login.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        let enc = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert_eq!(parse_basic(&enc("bob:b:o:b")), Some(("bob".into(), "b:o:b".into())));
        assert_eq!(parse_basic(&enc("alice:")), Some(("alice".into(), "".into())));
        assert_eq!(parse_basic(&enc(":pw")), None);
        assert_eq!(parse_basic(&enc("nocolon")), None);
        assert_eq!(parse_basic("Garbage"), None);
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn canonical_paths() {
        assert_eq!(canonical_path("/branches/PROD/"), "/branches/prod/");
        assert_eq!(
            canonical_path("/branches/b/T/J/F/Dir//File.TXT"),
            "/branches/b/t/j/f/Dir/File.TXT"
        );
        assert_eq!(canonical_path("/~BOB/branches/B/"), "/~bob/branches/b/");
        assert_eq!(canonical_path("/~BOB"), "/~bob");
        assert_eq!(
            canonical_path("/products/P/V/PB/1.0/F/a//b"),
            "/products/p/v/pb/1.0/f/a/b"
        );
        assert_eq!(
            canonical_path("/branches/\u{212a}ernel/"),
            "/branches/\u{212a}ernel/".to_lowercase()
        );
        assert_eq!(canonical_path("/v2/X/"), "/v2/X/");
        assert_eq!(canonical_path("/branches/"), "/branches/");
    }

    #[test]
    fn classes() {
        use hyper::Method;
        assert_eq!(classify(&Method::PUT, "/x"), Class::Add);
        assert_eq!(classify(&Method::PATCH, "/x"), Class::Add);
        assert_eq!(classify(&Method::POST, "/v2/x/blobs/uploads/"), Class::Add);
        assert_eq!(classify(&Method::POST, "/branches/b/"), Class::Update);
        assert_eq!(classify(&Method::DELETE, "/x"), Class::Delete);
        assert_eq!(classify(&Method::OPTIONS, "/x"), Class::Read);
    }
}
