//! The auth file (`DLREPO_AUTH_FILE`, docs/spec/auth.md §3.3): `LOGIN:PASSWORD:GROUPS`.
//!
//! Passwords are not kept: each entry is stored as a salted SHA-256 of
//! `login:password`, the salt drawn at load time.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;
use sha2::Digest as _;

pub struct Users {
    salt: [u8; 16],
    /// Salted hash of `login:password` (or of the login alone when
    /// passwords are ignored) → groups. Later lines win.
    entries: HashMap<[u8; 32], Vec<String>>,
    ignore_passwords: bool,
}

impl Users {
    pub fn empty(ignore_passwords: bool) -> Users {
        Users {
            salt: random_salt(),
            entries: HashMap::new(),
            ignore_passwords,
        }
    }

    pub fn load(path: &Path, ignore_passwords: bool) -> std::io::Result<Users> {
        let text = std::fs::read(path)?;
        Ok(Users::parse(&String::from_utf8_lossy(&text), ignore_passwords))
    }

    pub fn parse(text: &str, ignore_passwords: bool) -> Users {
        let mut users = Users::empty(ignore_passwords);
        // Same shape as the original's pattern, applied line by line.
        let Ok(re) = Regex::new(r"^([^:]+):(.+):([\w\s-]+)$") else {
            return users;
        };
        for line in text.lines() {
            let Some(c) = re.captures(line) else { continue };
            let groups: Vec<String> = c[3].split_whitespace().map(str::to_string).collect();
            if groups.is_empty() {
                continue;
            }
            let key = users.key(&c[1], &c[2]);
            users.entries.insert(key, groups);
        }
        users
    }

    fn key(&self, login: &str, password: &str) -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        h.update(self.salt);
        h.update(login.as_bytes());
        if !self.ignore_passwords {
            h.update(b":");
            h.update(password.as_bytes());
        }
        h.finalize().into()
    }

    /// The groups of valid credentials, or `None`.
    pub fn check(&self, login: &str, password: &str) -> Option<Vec<String>> {
        self.entries.get(&self.key(login, password)).cloned()
    }
}

fn random_salt() -> [u8; 16] {
    let mut s = [0u8; 16];
    let _ = getrandom::getrandom(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "# comment\nalice:pw:dev users\nbob:b:o:b:users\ncarl:c:nogroup-has-no-acl\ndave::users\neve:e:\n\n";

    #[test]
    fn entries_and_passwords() {
        let u = Users::parse(FILE, false);
        assert_eq!(u.check("alice", "pw"), Some(vec!["dev".into(), "users".into()]));
        assert_eq!(u.check("alice", "bad"), None);
        assert_eq!(u.check("bob", "b:o:b"), Some(vec!["users".into()]));
        assert_eq!(u.check("carl", "c"), Some(vec!["nogroup-has-no-acl".into()]));
        assert_eq!(u.check("dave", ""), None);
        assert_eq!(u.check("eve", "e"), None);
        assert_eq!(u.check("nobody", "x"), None);
    }

    #[test]
    fn ignored_passwords_compare_logins_only() {
        let u = Users::parse(FILE, true);
        assert!(u.check("alice", "whatever").is_some());
        assert!(u.check("alice", "").is_some());
        assert!(u.check("zed", "").is_none());
    }

    #[test]
    fn later_lines_win() {
        let u = Users::parse("a:p:one\na:p:two\n", false);
        assert_eq!(u.check("a", "p"), Some(vec!["two".into()]));
    }
}
