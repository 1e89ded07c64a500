//! ACL files (docs/spec/auth.md §4): one file per group, lines of an access string and
//! patterns, evaluated against percent-decoded request paths.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

/// The access class of a request (docs/spec/auth.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Read,
    Add,
    Delete,
    Update,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A glob: `**`, `*`, `?`, anchored at both ends.
    Glob,
    /// A regular expression after `~`, anchored at the start only.
    Regex,
}

#[derive(Debug, Clone)]
struct Pattern {
    kind: Kind,
    /// The text after `!` and `~`, with `$user` still in it.
    text: String,
    /// Compiled once when the pattern does not depend on the login.
    fixed: Option<Regex>,
}

#[derive(Debug, Clone)]
pub struct Line {
    add: bool,
    delete: bool,
    update: bool,
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

/// All groups' lines, and compiled patterns per login.
#[derive(Default)]
pub struct AclSet {
    groups: HashMap<String, Vec<Line>>,
    compiled: RefCell<HashMap<(String, String), Option<Regex>>>,
}

impl Pattern {
    fn regex_source(&self, login: &str) -> String {
        let text = self.text.replace("$user", login);
        match self.kind {
            Kind::Regex => format!("^(?:{text})"),
            Kind::Glob => {
                let mut re = String::from("^");
                let mut chars = text.chars().peekable();
                while let Some(c) = chars.next() {
                    match c {
                        '*' if chars.peek() == Some(&'*') => {
                            chars.next();
                            re.push_str(".*");
                        }
                        '*' => re.push_str("[^/]*"),
                        '?' => re.push_str("[^/]"),
                        c => re.push_str(&regex::escape(&c.to_string())),
                    }
                }
                re.push('$');
                re
            }
        }
    }
}

/// Parses one line; `None` for lines the original ignores.
fn parse_line(raw: &str, group: &str) -> Option<Line> {
    let content = raw.split('#').next().unwrap_or("");
    let mut tokens = content.split_whitespace();
    let access = tokens.next()?;
    let patterns: Vec<&str> = tokens.collect();
    if patterns.is_empty() || !access.contains('r') || !access.chars().all(|c| "rowadu".contains(c)) {
        return None;
    }
    let w = access.contains('w');
    let mut line = Line {
        add: w || access.contains('a'),
        delete: w || access.contains('d'),
        update: w || access.contains('u'),
        include: Vec::new(),
        exclude: Vec::new(),
    };
    for p in patterns {
        let (negated, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        let mut pattern = match p.strip_prefix('~') {
            Some(re) => Pattern {
                kind: Kind::Regex,
                text: re.to_string(),
                fixed: None,
            },
            None => Pattern {
                kind: Kind::Glob,
                text: p.to_string(),
                fixed: None,
            },
        };
        // Python constructs the regex crate lacks (look-around, backreferences)
        // make the line unusable: say so once, at load time.
        if let Err(e) = Regex::new(&pattern.regex_source("user")) {
            let msg = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            tracing::warn!("ACL {group}: ignoring line {:?}: {msg}", raw.trim());
            return None;
        }
        if !pattern.text.contains("$user") {
            pattern.fixed = Regex::new(&pattern.regex_source("")).ok();
        }
        if negated {
            line.exclude.push(pattern);
        } else {
            line.include.push(pattern);
        }
    }
    Some(line)
}

impl AclSet {
    /// Reads every regular file of `dir`; each one is the group of its name.
    pub fn load(dir: &Path) -> std::io::Result<AclSet> {
        let mut groups = HashMap::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if !e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                continue;
            }
            let group = e.file_name().to_string_lossy().into_owned();
            let text = match std::fs::read(e.path()) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(err) => {
                    tracing::error!("ACL {group}: {err}");
                    continue;
                }
            };
            let lines: Vec<Line> = text.lines().filter_map(|l| parse_line(l, &group)).collect();
            groups.insert(group, lines);
        }
        Ok(AclSet {
            groups,
            compiled: RefCell::new(HashMap::new()),
        })
    }

    pub fn from_texts(files: &[(&str, &str)]) -> AclSet {
        let groups = files
            .iter()
            .map(|(g, text)| (g.to_string(), text.lines().filter_map(|l| parse_line(l, g)).collect()))
            .collect();
        AclSet {
            groups,
            compiled: RefCell::new(HashMap::new()),
        }
    }

    fn matches(&self, p: &Pattern, login: &str, path: &str) -> bool {
        if let Some(re) = &p.fixed {
            return re.is_match(path);
        }
        let key = (p.regex_source(login), String::new());
        if let Some(re) = self.compiled.borrow().get(&key) {
            return re.as_ref().map(|r| r.is_match(path)).unwrap_or(false);
        }
        let re = Regex::new(&key.0).ok();
        let hit = re.as_ref().map(|r| r.is_match(path)).unwrap_or(false);
        let mut compiled = self.compiled.borrow_mut();
        if compiled.len() > 65_536 {
            compiled.clear();
        }
        compiled.insert(key, re);
        hit
    }

    /// Whether any line of `groups` grants `class` on `path` to `login`.
    pub fn allows(&self, groups: &[String], login: &str, class: Class, path: &str) -> bool {
        groups.iter().filter_map(|g| self.groups.get(g)).flatten().any(|line| {
            let class_ok = match class {
                Class::Read => true,
                Class::Add => line.add,
                Class::Delete => line.delete,
                Class::Update => line.update,
            };
            class_ok
                && line.include.iter().all(|p| self.matches(p, login, path))
                && !line.exclude.iter().any(|p| self.matches(p, login, path))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Class::*;
    use super::*;

    fn set() -> AclSet {
        AclSet::from_texts(&[
            (
                "users",
                "r /  # root page\nr /branches/\nr /branches/pub/**  !/branches/pub/secret**\nrw /~$user/**\n\
                 ra /branches/dev/*/job-?/**\nr ~/products/.*\nr /v2/\nr /v2/pub/**\n",
            ),
            ("dev", "rw /branches/dev/**\nx /branches/**\nrwz /products/**\n"),
            ("ANONYMOUS", "r /branches/\nr /branches/pub/**\nrw /branches/anon/**\n"),
        ])
    }

    fn g(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_specification_examples() {
        let a = set();
        let bob = g(&["users"]);
        let alice = g(&["dev", "users"]);
        let anon = g(&["ANONYMOUS"]);
        assert!(a.allows(&anon, "", Read, "/branches/"));
        assert!(!a.allows(&anon, "", Read, "/"));
        assert!(a.allows(&bob, "bob", Read, "/branches/pub/t1/"));
        assert!(!a.allows(&bob, "bob", Read, "/branches/pub/secret1/"));
        assert!(a.allows(&anon, "", Read, "/branches/pub/secret1/"));
        assert!(!a.allows(&bob, "bob", Read, "/branches/pub"));
        assert!(!a.allows(&bob, "bob", Read, "/branches/anon/"));
        assert!(a.allows(&bob, "bob", Add, "/branches/dev/t/job-1/f/x"));
        assert!(!a.allows(&bob, "bob", Add, "/branches/dev/t/job-12/f/x"));
        assert!(!a.allows(&bob, "bob", Delete, "/branches/dev/t/job-1/"));
        assert!(a.allows(&bob, "bob", Add, "/~bob/branches/b/t/j/f/x"));
        assert!(!a.allows(&bob, "bob", Add, "/~alice/branches/b/t/j/f/x"));
        assert!(!a.allows(&bob, "bob", Add, "/~BOB/branches/b/t/j/f/x"));
        assert!(a.allows(&bob, "bob", Read, "/products/"));
        assert!(!a.allows(&bob, "bob", Read, "/productsXYZ"));
        assert!(a.allows(&bob, "bob", Read, "/v2/"));
        assert!(!a.allows(&bob, "bob", Read, "/v2/_catalog"));
        assert!(a.allows(&alice, "alice", Delete, "/branches/dev/t/"));
        assert!(!a.allows(&alice, "alice", Add, "/products/"));
        assert!(a.allows(&anon, "", Read, "/branches/anon/"));
    }

    #[test]
    fn ignored_lines() {
        let a = AclSet::from_texts(&[("g", "a /x/**\nrwz /y/**\nr\nr (?=x)\nr ~(?=look)ahead\nr /ok/**\n")]);
        let g = g(&["g"]);
        assert!(!a.allows(&g, "", Read, "/x/1"));
        assert!(!a.allows(&g, "", Read, "/y/1"));
        assert!(a.allows(&g, "", Read, "/ok/1"));
        assert!(!a.allows(&g, "", Read, "/lookahead"));
    }

    #[test]
    fn only_exclusions_grant_the_rest() {
        let a = AclSet::from_texts(&[("g", "r !/secret/**\n")]);
        let g = g(&["g"]);
        assert!(a.allows(&g, "", Read, "/public"));
        assert!(!a.allows(&g, "", Read, "/secret/x"));
    }
}
