//! Test harness: starts the real `dlrepo` binary on a temporary root and a
//! free loopback port, and talks raw HTTP/1.1 to it. When a test fails, the
//! server's log and the root's tree are printed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub root: PathBuf,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    /// This server rather than the original 0.44.
    ours: bool,
    _tmp: Option<tempfile::TempDir>,
}

/// Extra environment for a server.
pub type Env<'a> = &'a [(&'a str, &'a str)];

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(env: Env) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).expect("root");
        Server::start_in(tmp, root, env)
    }

    /// Starts on an existing root (for pre-filled trees).
    pub fn start_on(root_fill: impl FnOnce(&Path), env: Env) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).expect("root");
        root_fill(&root);
        Server::start_in(tmp, root, env)
    }

    /// Starts this server on `root` itself (a mount, say), which outlives it.
    pub fn start_at(root: &Path, env: Env) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        Server::start_in(tmp, root.to_path_buf(), env)
    }

    /// Starts the original Python dlrepo 0.44 on an existing root.
    pub fn start_original_on(root_fill: impl FnOnce(&Path), env: Env) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).expect("root");
        root_fill(&root);
        let py = original_python();
        Server::launch(tmp, root, env, false, || {
            let mut c = Command::new(&py);
            c.arg("-m").arg("dlrepo");
            c
        })
    }

    fn start_in(tmp: tempfile::TempDir, root: PathBuf, env: Env) -> Server {
        Server::launch(tmp, root, env, true, || Command::new(env!("CARGO_BIN_EXE_dlrepo")))
    }

    /// Starts a server on `root`. Ours listens on port 0 and the port is
    /// read from its "Running on" line; the original cannot say which
    /// port it got, so it is given a free one (and another if that one was
    /// taken before it bound).
    fn launch(tmp: tempfile::TempDir, root: PathBuf, env: Env, ours: bool, program: impl Fn() -> Command) -> Server {
        let log = tmp.path().join("server.log");
        let mut tmp = Some(tmp);
        for _attempt in 0..5 {
            let port = if ours { 0 } else { free_port() };
            let logf = std::fs::File::create(&log).expect("log file");
            let mut cmd = program();
            cmd.env_clear()
                .env("DLREPO_ROOT_DIR", &root)
                .env("DLREPO_LISTEN_ADDRESS", "127.0.0.1")
                .env("DLREPO_LISTEN_PORT", port.to_string())
                .env("DLREPO_LOG_OUTPUT", "console")
                .env("DLREPO_LOG_LEVEL", "DEBUG")
                .env("DLREPO_AUTH_DISABLED", "1")
                .env("DLREPO_FSYNC", "0")
                .env("DLREPO_TAG_CLEANUP_PERIOD", "0")
                // Tests read the original's DEBUG line; the INFO one is tested on its own.
                .env("DLREPO_ACCESS_LOG", "0")
                // The original prints "Running on" through Python's stdout.
                .env("PYTHONUNBUFFERED", "1");
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("log"))
                .stderr(logf)
                .spawn()
                .expect("spawn dlrepo");
            let mut s = Server {
                root: root.clone(),
                port,
                child: Some(child),
                log: log.clone(),
                ours,
                _tmp: tmp.take(),
            };
            if s.wait_ready() {
                return s;
            }
            s.stop();
            tmp = s._tmp.take();
            if ours {
                break;
            }
        }
        panic!(
            "dlrepo did not start; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Waits for the "Running on" line (taking the port from it when the
    /// server chose one), then for the port to answer.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    return false;
                }
            }
            if let Some(port) = running_port(&self.log()) {
                if self.port == 0 {
                    self.port = port;
                }
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` at least `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) -> bool {
        poll(Duration::from_secs(10), || self.log().matches(needle).count() >= count)
    }

    /// Number of staging files: the names in `.uploads`, and the unnamed
    /// (`O_TMPFILE`) or already removed files there that the server still
    /// holds open, which take disk space as well.
    pub fn staging_files(&self) -> usize {
        let uploads = std::fs::canonicalize(&self.root)
            .unwrap_or_else(|_| self.root.clone())
            .join(".uploads");
        let named = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
        let unnamed = std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|t| t.starts_with(&uploads) && t.to_string_lossy().ends_with(" (deleted)"))
                    .count()
            })
            .unwrap_or(0);
        named + unnamed
    }

    /// `PUT` of `data` with its digest, which must answer 201.
    #[track_caller]
    pub fn put(&self, path: &str, data: &str) {
        self.put_file(path, data.as_bytes()).expect(201);
    }

    /// Has the server write every `.digests` file now (SIGHUP; it writes
    /// them back a little after uploads otherwise), for tests that read the
    /// tree itself. The original writes them before answering.
    pub fn flush(&self) {
        if !self.ours {
            return;
        }
        let done = "wrote the .digests files";
        let n = self.log().matches(done).count();
        self.signal(nix::sys::signal::Signal::SIGHUP);
        assert!(self.wait_log(done, n + 1), "no SIGHUP answer in the log");
    }

    /// SIGKILL: no chance to write anything back.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts this server binary on a copy of `from`'s root (hard links
    /// kept), for a restart after [`Server::kill`] or [`Server::stop`].
    pub fn restart_copy(from: &Server, env: Env) -> Server {
        Server::start_on(|dst| copy_tree(&from.root, dst), env)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `find`-like listing of the root, for failure reports and assertions.
    pub fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        s
    }

    /// A `PUT` of `len` bytes (with a digest no body matches) of which
    /// only `sent` are sent: an upload in progress, for as long as the
    /// returned connection stays open.
    pub fn begin_put(&self, path: &str, len: usize, sent: usize) -> TcpStream {
        use std::io::Write;
        let mut c = self.connect();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nDigest: {}\r\nContent-Length: {len}\r\n\r\n",
            sha256_digest(b"never")
        );
        c.write_all(head.as_bytes()).expect("send the head");
        c.write_all(&vec![7u8; sent]).expect("send part of the body");
        c
    }

    pub fn req(&self, method: &str, path: &str) -> Request<'_> {
        Request {
            server: self,
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
            chunked: false,
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.req("GET", path).send()
    }

    pub fn put_file(&self, path: &str, data: &[u8]) -> Response {
        self.req("PUT", path)
            .header("Digest", &sha256_digest(data))
            .body(data)
            .send()
    }

    /// `PUT <job>` with `{"job": {"locked": true}}`.
    pub fn lock_job(&self, job: &str) -> Response {
        self.req("PUT", job).json(r#"{"job": {"locked": true}}"#).send()
    }

    pub fn delete(&self, path: &str) -> Response {
        self.req("DELETE", path).send()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        let md = std::fs::symlink_metadata(&p);
        match md {
            Ok(m) if m.file_type().is_symlink() => {
                let t = std::fs::read_link(&p)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                out.push(format!("{rel} -> {t}"));
            }
            Ok(m) if m.is_dir() => {
                out.push(format!("{rel}/"));
                walk(root, &p, out);
            }
            Ok(m) => out.push(format!(
                "{rel} ({} bytes, {} links, mode {:o})",
                m.len(),
                m.nlink(),
                m.mode() & 0o7777
            )),
            Err(_) => out.push(rel),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("==== server log ====\n{}", self.log());
            eprintln!("==== tree of {} ====", self.root.display());
            for l in self.tree() {
                eprintln!("{l}");
            }
        }
    }
}

/// The Python interpreter of a virtualenv holding the original dlrepo 0.44,
/// created on first use (it needs network access to PyPI, and the Debian
/// packages libldap2-dev, libsasl2-dev and sassc to build).
pub fn original_python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("original-dlrepo-0.44");
        let py = venv.join("bin/python");
        let ok = |py: &Path| {
            Command::new(py)
                .args(["-c", "import dlrepo"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if ok(&py) {
            return py;
        }
        let run = |cmd: &mut Command| {
            run_setup(
                cmd,
                "setting up the original dlrepo",
                "On Debian: apt-get install libldap2-dev libsasl2-dev sassc",
            )
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip")).args(["install", "-q", "dlrepo==0.44"]));
        assert!(ok(&py), "dlrepo 0.44 is not importable after installation");
        py
    })
    .clone()
}

/// Runs a set-up command of the test environment; a failure names what
/// was being set up, the command and its output, and `hint`.
fn run_setup(cmd: &mut Command, what: &str, hint: &str) {
    let out = cmd.output().expect("run setup command");
    assert!(
        out.status.success(),
        "{what} failed ({cmd:?}):\n{}\n{}\n{hint}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The port of a "Running on http://host:port" log line (ours and the
/// original's alike).
fn running_port(log: &str) -> Option<u16> {
    // "Running on http://…" (at INFO), or ours at every level:
    // "listening on http://…, root …".
    let (line, marker) = log.lines().find_map(|l| {
        ["Running on ", "listening on "]
            .into_iter()
            .find(|m| l.contains(m))
            .map(|m| (l, m))
    })?;
    let addr = line.split(marker).nth(1)?.split_whitespace().next()?;
    addr.trim_end_matches(',')
        .rsplit(':')
        .next()?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// A small tmpfs mounted for a test (a disk that fills up), unmounted when
/// dropped. `None`, with a message, when this process may not mount.
pub struct Tmpfs {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("mnt");
        std::fs::create_dir_all(&dir).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (the test needs root); nothing was checked");
            return None;
        }
        Some(Tmpfs { dir, _tmp: tmp })
    }

    /// Fills the file system with one file, up to the last byte it takes.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        // Whatever did not fit as a whole block, byte by byte.
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Calls `f` until it answers true or `timeout` passes; whether it did.
pub fn poll(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to 20 s for `f` to answer true; fails the test naming `what`.
#[track_caller]
pub fn wait_until(what: &str, f: impl FnMut() -> bool) {
    assert!(poll(Duration::from_secs(20), f), "timed out waiting for {what}");
}

/// Waits until something accepts connections on a loopback port.
#[track_caller]
pub fn wait_for_port(what: &str, port: u16) {
    wait_until(what, || TcpStream::connect(("127.0.0.1", port)).is_ok());
}

/// Controls the GC's debug-only pause point (`DLREPO_TEST_GC_PAUSE_DIR`):
/// the GC stops right after its `statx` of the file named in `target`.
pub struct GcPause(PathBuf);

impl GcPause {
    pub fn new(dir: &Path, target: &Path) -> GcPause {
        std::fs::create_dir_all(dir).expect("pause dir");
        let name = target.file_name().and_then(|n| n.to_str()).expect("target name");
        std::fs::write(dir.join("target"), name).expect("pause target");
        GcPause(dir.to_path_buf())
    }
    #[track_caller]
    pub fn wait_paused(&self) {
        wait_until("the GC to pause", || self.0.join("paused").exists());
    }
    pub fn resume(&self) {
        std::fs::write(self.0.join("resume"), "").expect("resume");
    }
}

/// A server whose uploads wait in their link step while `hold` exists
/// (the debug-only `DLREPO_TEST_LINK_HOLD`), writing `paused` when they do.
pub struct LinkHold {
    pub server: Server,
    pub hold: PathBuf,
    pub paused: PathBuf,
    _dir: tempfile::TempDir,
}

impl LinkHold {
    pub fn start() -> LinkHold {
        let dir = tempfile::tempdir().expect("tempdir");
        let hold = dir.path().join("hold");
        let paused = dir.path().join("hold.paused");
        let server = Server::start_with(&[("DLREPO_TEST_LINK_HOLD", hold.to_str().expect("utf-8 path"))]);
        LinkHold {
            server,
            hold,
            paused,
            _dir: dir,
        }
    }
    /// Uploads from now on stop in their link step.
    pub fn engage(&self) {
        std::fs::write(&self.hold, "").expect("hold file");
    }
    /// Held uploads go on.
    pub fn release(&self) {
        let _ = std::fs::remove_file(&self.hold);
    }
    #[track_caller]
    pub fn wait_paused(&self) {
        wait_until("an upload to reach its link step", || self.paused.exists());
    }
}

/// Holds every cleanup run at its start while it lives (the debug-only
/// `DLREPO_TEST_CLEANUP_HOLD`), so requests pile up behind a run.
pub struct CleanupHold(Option<tempfile::NamedTempFile>, String);

impl CleanupHold {
    pub fn new() -> CleanupHold {
        let f = tempfile::NamedTempFile::new().expect("hold file");
        let path = f.path().to_str().expect("utf-8 path").to_string();
        CleanupHold(Some(f), path)
    }
    /// The setting that makes a server obey this hold.
    pub fn env(&self) -> (&'static str, &str) {
        ("DLREPO_TEST_CLEANUP_HOLD", &self.1)
    }
    /// Lets the held runs go on.
    pub fn release(&mut self) {
        self.0.take();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

pub struct Request<'a> {
    server: &'a Server,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    chunked: bool,
}

impl Request<'_> {
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: &[u8]) -> Self {
        self.body = Some(b.to_vec());
        self
    }
    pub fn json(self, v: &str) -> Self {
        self.header("Content-Type", "application/json").body(v.as_bytes())
    }
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
    pub fn send(self) -> Response {
        let mut s = self.server.connect();
        // A server may answer (413, 431, 401...) and close before reading the
        // whole request: a failed write is fine as long as the answer arrives.
        let _ = s.write_all(&self.encode());
        read_response(&mut BufReader::new(s), &self.method)
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.method, self.path, self.server.port
        )
        .into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        match (&self.body, self.chunked) {
            (Some(b), true) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for c in b.chunks(7) {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            (Some(b), false) => {
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            (None, _) => out.extend_from_slice(b"\r\n"),
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// Asserts the status and, for errors, the original's body shape.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status {} {}: {}",
            self.status,
            self.reason,
            self.text()
        );
        self
    }
    #[track_caller]
    pub fn expect_error(&self, status: u16, reason: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.reason, reason, "status line reason");
        assert_eq!(self.text(), format!("{status}: {reason}"), "error body");
        assert_eq!(self.header("content-type"), Some("text/plain; charset=utf-8"));
        self
    }
    #[track_caller]
    pub fn expect_redirect(&self, location: &str) -> &Self {
        self.expect(302);
        assert_eq!(self.header("location"), Some(location), "Location");
        self
    }
}

/// Reads one response. HEAD and 1xx/204/304 answers have no body.
pub fn read_response(r: &mut impl BufRead, method: &str) -> Response {
    loop {
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).expect("status line");
        let line = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        assert!(line.starts_with("HTTP/1."), "bad status line {line:?}");
        let mut parts = line.splitn(3, ' ');
        parts.next();
        let status: u16 = parts.next().unwrap_or("0").parse().unwrap_or(0);
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = Vec::new();
            r.read_until(b'\n', &mut h).expect("header");
            let h = String::from_utf8_lossy(&h).trim_end().to_string();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        if status == 100 {
            continue;
        }
        let mut resp = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if method == "HEAD" || status == 304 || status == 204 {
            return resp;
        }
        if let Some(len) = resp.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut body = vec![0; len];
            r.read_exact(&mut body).expect("body");
            resp.body = body;
        } else if resp
            .header("transfer-encoding")
            .map(|v| v.contains("chunked"))
            .unwrap_or(false)
        {
            loop {
                let mut l = String::new();
                r.read_line(&mut l).expect("chunk size");
                let n = usize::from_str_radix(l.trim(), 16).expect("chunk size hex");
                let mut c = vec![0; n + 2];
                r.read_exact(&mut c).expect("chunk");
                if n == 0 {
                    break;
                }
                resp.body.extend_from_slice(&c[..n]);
            }
        } else {
            r.read_to_end(&mut resp.body).ok();
        }
        return resp;
    }
}

/// Parsed JSON bodies for comparisons that ignore float timestamps.
pub fn strip_timestamps(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(t) = m.get_mut("timestamp") {
                *t = serde_json::Value::from("T");
            }
            for (_, x) in m.iter_mut() {
                strip_timestamps(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_timestamps),
        _ => {}
    }
}

pub fn file_mode(p: &Path) -> u32 {
    std::fs::metadata(p).map(|m| m.mode() & 0o7777).unwrap_or(0)
}

pub fn nlink(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.nlink()).unwrap_or(0)
}

pub fn files_under(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn rec(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                rec(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap_or(&p).display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                );
            }
        }
    }
    rec(p, p, &mut out);
    out
}

/// The original dlrepo 0.44 test suite, from its PyPI source archive,
/// unpacked under the cargo target directory on first use, with pytest
/// installed beside the original in its virtualenv.
pub fn original_test_suite() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let py = original_python();
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("original-dlrepo-0.44-sdist");
        let tests = base.join("dlrepo-0.44/tests");
        let run = |cmd: &mut Command| run_setup(cmd, "fetching the original test suite", "");
        let has_pytest = Command::new(&py)
            .args(["-c", "import pytest, pytest_asyncio"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !has_pytest {
            run(Command::new(&py).args(["-m", "pip", "install", "-q", "pytest", "pytest-asyncio"]));
        }
        if !tests.join("conftest.py").exists() {
            std::fs::create_dir_all(&base).expect("sdist dir");
            run(Command::new(&py)
                .args(["-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d"])
                .arg(&base)
                .arg("dlrepo==0.44"));
            run(Command::new("tar")
                .arg("-xzf")
                .arg(base.join("dlrepo-0.44.tar.gz"))
                .arg("-C")
                .arg(&base));
        }
        tests
    })
    .clone()
}

/// `cp -a from/. to`: a copy that keeps hard links between its files.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a failed");
}

/// A small site with one of everything the pages show: branches with
/// flags, policies and aliases, jobs with metadata, product links, RPM and
/// Debian repositories, a docs format with an index.html, nested folders,
/// internal formats, a user repository and a container image.
pub fn demo_site(s: &Server) {
    for (tag, job, fmt, file, data) in [
        ("v1.0", "x86_64", "rpm", "repodata/repomd.xml", "<repomd/>"),
        ("v1.0", "x86_64", "rpm", "pkg-1.0.x86_64.rpm", "rpm bytes"),
        ("v1.0", "x86_64", "deb", "Release", "Origin: demo"),
        ("v1.0", "x86_64", "deb", "pool/main/pkg_1.0_amd64.deb", "deb bytes"),
        (
            "v1.0",
            "x86_64",
            "docs",
            "index.html",
            "<html><body>docs home</body></html>",
        ),
        ("v1.0", "x86_64", "logs", "build/output.log", "a long build log"),
        ("v1.0", "x86_64", "logs", "build/sub dir/ünïcode.txt", "unicode"),
        ("v1.0", "x86_64", "internal-debug", "core.dump", "core"),
        ("v1.0", "arm64", "rpm", "pkg-1.0.aarch64.rpm", "arm rpm"),
        ("v1.9", "x86_64", "logs", "build.log", "1.9"),
        ("v1.10", "x86_64", "logs", "build.log", "1.10"),
    ] {
        let path = format!("/branches/main/{tag}/{job}/{fmt}/{file}")
            .replace(' ', "%20")
            .replace('ü', "%C3%BC")
            .replace('ï', "%C3%AF");
        s.put(&path, data);
    }
    for (tag, job, formats) in [
        ("v1.0", "x86_64", &["rpm", "deb", "docs", "logs", "internal-debug"][..]),
        ("v1.0", "arm64", &["rpm"][..]),
        ("v1.9", "x86_64", &["logs"][..]),
        ("v1.10", "x86_64", &["logs"][..]),
    ] {
        for f in formats {
            s.req("PATCH", &format!("/branches/main/{tag}/{job}/{f}/"))
                .send()
                .expect(200);
        }
    }
    s.req("PATCH", "/branches/main/v1.0/x86_64/")
        .json(r#"{"job": {"product": "demo", "product_variant": "server", "product_branch": "1.0", "version": "1.0.0", "built_by": "CI", "debug": false}}"#)
        .send()
        .expect(200);
    s.lock_job("/branches/main/v1.0/x86_64/").expect(200);
    s.req("POST", "/branches/main/v1.0/")
        .json(r#"{"tag": {"stable": true, "locked": true, "description": "First release: <b>bold</b> & more"}}"#)
        .send()
        .expect(200);
    s.req("POST", "/branches/main/v1.9/")
        .json(r#"{"tag": {"stable": true}}"#)
        .send()
        .expect(200);
    s.req("POST", "/branches/main/")
        .json(r#"{"branch": {"max_daily_tags": 10}}"#)
        .send()
        .expect(200);
    s.put("/branches/feature-1.2/t1/j/f/a.txt", "a");
    s.put("/branches/feature-1.10/t1/j/f/a.txt", "a");
    s.put("/~alice/branches/scratch/t/j/f/note.txt", "alice's note");
}
