//! HTTP as the original client speaks it: the common headers, pre-emptive
//! Basic auth with one retry (after a password prompt on a terminal) on
//! the first 401 that asks for credentials, urllib's redirect rules, and
//! `error: remote: <body>` for an error status. Transient failures
//! (connection lost, 408, 429, 5xx) are retried with backoff.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::config::Settings;

#[derive(Debug)]
pub enum CliError {
    /// The server answered an error status: its body (or the status line).
    Remote {
        status: u16,
        message: String,
    },
    Local(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Remote { message, .. } => write!(f, "remote: {message}"),
            CliError::Local(m) => f.write_str(m),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Local(e.to_string())
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// What a request carries.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    /// No body: `Content-Length: 0` for PUT/POST/PATCH, nothing otherwise.
    None,
    Json(&'a Value),
    /// A file streamed with chunked encoding; `on_read` sees every block.
    File(&'a Path, &'a (dyn Fn(usize) + Sync)),
}

/// A decoded answer: JSON when the server said so; otherwise the body
/// (which no command prints) is read and dropped.
pub enum Data {
    Json(Value),
    Other,
}

impl Data {
    pub fn json(self) -> CliResult<Value> {
        match self {
            Data::Json(v) => Ok(v),
            Data::Other => Err(CliError::Local("the server did not answer JSON".into())),
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    pub base: String,
    user: String,
    password: Mutex<String>,
    /// The one retry after a 401 is spent.
    prompted: AtomicBool,
    retries: u32,
}

/// Statuses worth another try.
fn transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

impl Client {
    pub fn new(s: &Settings, retries: u32) -> Client {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(30))
            .build();
        Client {
            agent,
            base: s.base.clone(),
            user: s.user.clone(),
            password: Mutex::new(s.password.clone()),
            prompted: AtomicBool::new(false),
            retries,
        }
    }

    /// `quote_plus(path, safe="/")` joined to the base, then `?query`.
    pub fn make_url(&self, path: &str, params: &[(String, String)]) -> String {
        let quoted = quote_plus(path.trim_start_matches('/'), "/");
        let mut url = match url::Url::parse(&self.base).and_then(|b| b.join(&quoted)) {
            Ok(u) => u.to_string(),
            Err(_) => format!("{}{quoted}", self.base),
        };
        if !params.is_empty() {
            let q: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", quote_plus(k, ""), quote_plus(v, "")))
                .collect();
            url.push('?');
            url.push_str(&q.join("&"));
        }
        url
    }

    fn auth_header(&self) -> Option<String> {
        if self.user.is_empty() {
            return None;
        }
        let pw = self.password.lock().map(|p| p.clone()).unwrap_or_default();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{pw}", self.user));
        Some(format!("Basic {token}"))
    }

    /// A JSON API call (the original's generic method).
    pub fn call(&self, method: &str, path: &str, params: &[(String, String)], body: Payload) -> CliResult<Data> {
        let url = self.make_url(path, params);
        let resp = self.exchange(method, &url, body, &[], true)?;
        let is_json = resp.header("Content-Type").unwrap_or("").contains("json");
        let mut bytes = Vec::new();
        resp.into_reader().read_to_end(&mut bytes)?;
        if method == "HEAD" || !is_json {
            return Ok(Data::Other);
        }
        serde_json::from_slice(&bytes)
            .map(Data::Json)
            .map_err(|e| CliError::Local(format!("bad JSON from the server: {e}")))
    }

    pub fn get_json(&self, path: &str, params: &[(String, String)]) -> CliResult<Value> {
        self.call("GET", path, params, Payload::None)?.json()
    }

    /// One request with the retries, the 401 retry and the redirects. With
    /// `api`, the generic method's headers (Accept, Referer) are sent.
    pub fn exchange(
        &self,
        method: &str,
        url: &str,
        body: Payload,
        headers: &[(&str, String)],
        api: bool,
    ) -> CliResult<ureq::Response> {
        let mut method = method.to_string();
        let mut url = url.to_string();
        let mut body = body;
        let referer = url.clone();
        let mut redirects = 0;
        loop {
            let resp = self.with_retries(|| self.send_once(&method, &url, body, headers, api.then_some(&referer)))?;
            let status = resp.status();
            if status == 401 && resp.header("WWW-Authenticate").is_some() && !self.prompted.swap(true, Ordering::SeqCst)
            {
                self.prompt_password(&url);
                continue;
            }
            if (200..300).contains(&status) {
                return Ok(resp);
            }
            let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            let location = resp.header("Location").map(str::to_string);
            if let (true, Some(loc)) = (redirect && redirects < 10, location) {
                let follow = match method.as_str() {
                    "GET" | "HEAD" => true,
                    // urllib re-sends a redirected POST as a GET without a body.
                    "POST" if matches!(status, 301..=303) => {
                        method = "GET".into();
                        body = Payload::None;
                        true
                    }
                    _ => false,
                };
                if follow {
                    redirects += 1;
                    url = url::Url::parse(&url)
                        .and_then(|u| u.join(&loc))
                        .map(|u| u.to_string())
                        .unwrap_or(loc);
                    continue;
                }
            }
            return Err(remote_error(resp));
        }
    }

    fn with_retries(
        &self,
        mut send: impl FnMut() -> Result<ureq::Response, Box<ureq::Error>>,
    ) -> CliResult<ureq::Response> {
        let mut attempt = 0;
        loop {
            let failure = match send().map_err(|e| *e) {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(code, r)) if !transient(code) || attempt >= self.retries => return Ok(r),
                Err(ureq::Error::Status(code, _)) => format!("HTTP {code}"),
                Err(ureq::Error::Transport(t)) if attempt >= self.retries => {
                    return Err(CliError::Local(t.to_string()))
                }
                Err(ureq::Error::Transport(t)) => t.to_string(),
            };
            attempt += 1;
            let wait = Duration::from_millis(250 << attempt.min(6));
            warn(&format!("{failure}; trying again in {:.1} s", wait.as_secs_f64()));
            std::thread::sleep(wait);
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        body: Payload,
        headers: &[(&str, String)],
        referer: Option<&String>,
    ) -> Result<ureq::Response, Box<ureq::Error>> {
        let mut req = self.agent.request(method, url).set("User-Agent", "dlrepo-cli");
        if let Some(r) = referer {
            req = req
                .set("Accept", "application/json,application/octet-stream")
                .set("Referer", r);
        }
        if let Some(a) = self.auth_header() {
            req = req.set("Authorization", &a);
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let res = match body {
            Payload::None if matches!(method, "PUT" | "POST" | "PATCH") => req.send_bytes(&[]),
            Payload::None => req.call(),
            Payload::Json(v) => req
                .set("Content-Type", "application/json")
                .send_bytes(&serde_json::to_vec(v).unwrap_or_default()),
            Payload::File(path, on_read) => {
                let file = std::fs::File::open(path).map_err(|e| Box::new(ureq::Error::from(e)))?;
                req.send(Counting { inner: file, on_read })
            }
        };
        res.map_err(Box::new)
    }

    /// On a terminal, asks for the password (the original's prompt);
    /// otherwise the same one is sent again.
    fn prompt_password(&self, url: &str) {
        if !std::io::stdin().is_terminal() {
            return;
        }
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        eprintln!();
        if let Some(pw) = read_password(&format!("{}@{host}'s password: ", self.user)) {
            if let Ok(mut p) = self.password.lock() {
                *p = pw;
            }
        }
    }
}

/// The error line of a failed request: the server's body, stripped, or
/// urllib's `HTTP Error <code>: <reason>`.
fn remote_error(resp: ureq::Response) -> CliError {
    let status = resp.status();
    let reason = resp.status_text().to_string();
    let mut body = Vec::new();
    let _ = resp.into_reader().take(1 << 20).read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body).trim().to_string();
    CliError::Remote {
        status,
        message: if text.is_empty() {
            format!("HTTP Error {status}: {reason}")
        } else {
            text
        },
    }
}

/// Notes a retry on stderr (the client has no logger).
pub fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}

struct Counting<'a, R> {
    inner: R,
    on_read: &'a (dyn Fn(usize) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_read)(n);
        Ok(n)
    }
}

/// Reads a line from the terminal with echo off.
fn read_password(prompt: &str) -> Option<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let mut out = &tty;
    let _ = out.write_all(prompt.as_bytes());
    let _ = out.flush();
    let saved = tcgetattr(&tty).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&tty, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let res = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(t) = &saved {
        let _ = tcsetattr(&tty, SetArg::TCSANOW, t);
    }
    let _ = out.write_all(b"\n");
    res.ok()?;
    Some(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Python's `quote_plus(s, safe)`: UTF-8 bytes percent-encoded except
/// letters, digits, `_.-~` and `safe`; a space becomes `+`.
pub fn quote_plus(s: &str, safe: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(b as char),
            b if safe.as_bytes().contains(&b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Python's `os.path.join` for URL paths: an absolute part starts over.
pub fn path_join(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        if p.starts_with('/') {
            out = p.to_string();
        } else if out.is_empty() || out.ends_with('/') {
            out.push_str(p);
        } else {
            out.push('/');
            out.push_str(p);
        }
    }
    out
}

/// `urljoin(base, rel)` for the printed links, where `rel` is a path as
/// typed (not quoted), as the original prints it.
pub fn join_raw(base: &str, rel: &str) -> String {
    if let Some(abs) = rel.strip_prefix('/') {
        let origin_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = base[origin_end..]
            .find('/')
            .map(|i| i + origin_end)
            .unwrap_or(base.len());
        return format!("{}/{abs}", &base[..host_end]);
    }
    match base.rfind('/') {
        Some(i) => format!("{}{rel}", &base[..=i]),
        None => format!("{base}/{rel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_quote_plus() {
        assert_eq!(quote_plus("branches/a b/é~x+y", "/"), "branches/a+b/%C3%A9~x%2By");
        assert_eq!(quote_plus("a/b", ""), "a%2Fb");
    }

    #[test]
    fn joins_follow_os_path_join_and_urljoin() {
        assert_eq!(path_join(&["branches", "b", "t"]), "branches/b/t");
        assert_eq!(path_join(&["branches", "b/", "t"]), "branches/b/t");
        assert_eq!(path_join(&["branches", "/x", "t"]), "/x/t");
        assert_eq!(join_raw("http://h:1/~u/", "branches/B"), "http://h:1/~u/branches/B");
        assert_eq!(join_raw("http://h:1/~u/", "/abs"), "http://h:1/abs");
    }
}
