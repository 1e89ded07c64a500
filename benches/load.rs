//! Load benchmark: this server against the original Python dlrepo 0.44 and
//! nginx with WebDAV `PUT` (the plain-file upper bound), in one run.
//!
//! ```sh
//! cargo bench --bench load                      # disk (target/) and tmpfs (/dev/shm)
//! cargo bench --bench load -- --dir /some/where # one location
//! cargo bench --bench load -- --quick           # smaller sizes, for a smoke run
//! cargo bench --bench load -- --servers ours,nginx --small 40000   # a subset, more small files
//! cargo bench --bench load -- --small-only --download-rounds 10    # (d) reads every file 10 times
//! DLREPO_LOG_LEVEL=INFO cargo bench --bench load -- --servers ours --small-only   # with the access log
//! cargo bench --bench load -- --no-pin          # server and load generator unpinned
//! cargo bench --bench load -- --servers ours,splice,nginx --small 2000   # spliced large downloads too
//! cargo bench --bench load -- --scenarios bd   # some scenarios only (c and d read b's uploads)
//! ```
//!
//! Scenarios: (a) 4 × 512 MiB uploads, one at a time; (b) 20 000 × 4 KiB
//! distinct uploads over 64 connections; (c) link-only uploads of those
//! blobs (dlrepo only); (d) downloads of those small files over 64
//! connections; (e) 256 MiB downloads, one at a time. Every status code is
//! checked; small bodies are all compared, large bodies by SHA-256 on the
//! first download. Peak RSS is the server's VmHWM, reset before each
//! scenario.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest as _;

mod common;

struct Opts {
    dirs: Vec<PathBuf>,
    big_files: usize,
    big_size: usize,
    small_files: usize,
    small_size: usize,
    conns: usize,
    dl_size: usize,
    dl_repeat: usize,
    peers: bool,
    /// `--servers ours,auth,fsync,orig,nginx,splice`: which servers to run
    /// (all but `splice` by default).
    servers: Option<Vec<String>>,
    /// `--small-only`: skip the large transfers (a) and (e).
    small_only: bool,
    /// `--scenarios abcde`: the scenarios to run, by letter (all by default;
    /// c and d read what b uploaded). For profiling one at a time.
    scenarios: String,
    /// `--download-rounds K`: (d) reads every small file K times (default 1),
    /// for a measurement longer than a third of a second.
    download_rounds: usize,
    /// Server on CPU 0, this load generator on CPU 1.
    pin: bool,
}

const SERVER_CPU: usize = 0;
const LOAD_CPU: usize = 1;

fn parse_opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut dirs = Vec::new();
    let mut servers = None;
    let mut small = None;
    let mut rounds = 1;
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned();
        match (args[i].as_str(), val) {
            ("--dir", Some(d)) => dirs.push(PathBuf::from(d)),
            ("--servers", Some(l)) => servers = Some(l.split(',').map(str::to_string).collect()),
            ("--small", Some(n)) => small = Some(n.parse().expect("--small takes a count")),
            ("--download-rounds", Some(n)) => {
                rounds = n.parse().expect("--download-rounds takes a count");
                assert!(rounds > 0, "--download-rounds takes a positive count");
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    if dirs.is_empty() {
        dirs.push(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-disk"));
        dirs.push(PathBuf::from("/dev/shm/dlrepo-bench"));
    }
    let mib = 1 << 20;
    Opts {
        dirs,
        big_files: 4,
        big_size: if quick { 32 * mib } else { 512 * mib },
        small_files: small.unwrap_or(if quick { 2000 } else { 20_000 }),
        small_size: 4096,
        conns: 64,
        dl_size: if quick { 32 * mib } else { 256 * mib },
        dl_repeat: if quick { 2 } else { 6 },
        peers: !args.iter().any(|a| a == "--no-peers"),
        servers,
        small_only: args.iter().any(|a| a == "--small-only"),
        scenarios: args
            .iter()
            .position(|a| a == "--scenarios")
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| "abcde".into()),
        // Both sides on one core each, so the server's cost shows; the
        // server's io-wq workers are its threads and stay on its core.
        pin: !args.iter().any(|a| a == "--no-pin") && common::pinned(),
        download_rounds: rounds,
    }
}

// ---------------------------------------------------------------- servers

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ours {
        fsync: bool,
    },
    /// Authentication on: auth file + ACLs, every request with Basic credentials.
    OursAuth,
    /// `DLREPO_SPLICE_DOWNLOADS=1` (only when named in `--servers`).
    OursSplice,
    Original,
    Nginx,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Ours { fsync: false } => "dlrepo-rs",
            Kind::Ours { fsync: true } => "dlrepo-rs fsync=1",
            Kind::OursAuth => "dlrepo-rs auth",
            Kind::OursSplice => "dlrepo-rs splice",
            Kind::Original => "dlrepo 0.44",
            Kind::Nginx => "nginx",
        }
    }
    fn short_name(self) -> &'static str {
        match self {
            Kind::Ours { fsync: false } => "ours",
            Kind::Ours { fsync: true } => "fsync",
            Kind::OursAuth => "auth",
            Kind::OursSplice => "splice",
            Kind::Original => "orig",
            Kind::Nginx => "nginx",
        }
    }
    fn is_dlrepo(self) -> bool {
        self != Kind::Nginx
    }
}

struct Server {
    /// [`Server::cpu_split`] when the scenario began.
    cpu_mark: Mutex<(f64, f64)>,
    kind: Kind,
    child: Child,
    port: u16,
    root: PathBuf,
}

impl Server {
    fn start(kind: Kind, base: &Path, venv: &Path, pin: bool) -> Server {
        let root = base.join(format!("root-{}", kind.label().replace([' ', '='], "-")));
        // For the authenticated run: one user whose group may do everything.
        let _ = std::fs::create_dir_all(base.join("acls"));
        let _ = std::fs::write(base.join("acls/ci"), "rw /**\n");
        let _ = std::fs::write(base.join("auth"), "bench:s3cret:ci\n");
        AUTH_ON.store(kind == Kind::OursAuth, Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create root");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(base.join(format!("{}.log", kind.label().replace([' ', '='], "-")))).unwrap();
        let mut cmd = match kind {
            Kind::Ours { .. } | Kind::OursAuth | Kind::OursSplice => Command::new(env!("CARGO_BIN_EXE_dlrepo")),
            Kind::Original => {
                let mut c = Command::new(venv.join("bin/python"));
                c.args(["-m", "dlrepo"]);
                c
            }
            Kind::Nginx => {
                let conf = nginx_conf(&root, port);
                let path = base.join("nginx.conf");
                std::fs::write(&path, conf).unwrap();
                let mut c = Command::new("/usr/sbin/nginx");
                c.arg("-p").arg(base).arg("-c").arg(&path);
                c
            }
        };
        cmd.env_clear()
            .env("DLREPO_ROOT_DIR", &root)
            .env("DLREPO_LISTEN_ADDRESS", "127.0.0.1")
            .env("DLREPO_LISTEN_PORT", port.to_string())
            .env("DLREPO_AUTH_DISABLED", if kind == Kind::OursAuth { "0" } else { "1" })
            .env("DLREPO_ACLS_DIR", base.join("acls"))
            .env("DLREPO_AUTH_FILE", base.join("auth"))
            .env("DLREPO_LOG_OUTPUT", "console")
            // DLREPO_LOG_LEVEL=INFO measures the access log's cost.
            .env(
                "DLREPO_LOG_LEVEL",
                std::env::var("DLREPO_LOG_LEVEL").unwrap_or_else(|_| "WARNING".into()),
            )
            .env("DLREPO_TAG_CLEANUP_PERIOD", "0")
            .env(
                "DLREPO_SPLICE_DOWNLOADS",
                if kind == Kind::OursSplice { "1" } else { "0" },
            )
            .env(
                "DLREPO_FSYNC",
                if kind == (Kind::Ours { fsync: true }) { "1" } else { "0" },
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if pin {
            use std::os::unix::process::CommandExt;
            // SAFETY: only an async-signal-safe system call between fork and exec.
            unsafe {
                cmd.pre_exec(|| common::pin_self(SERVER_CPU).map_err(std::io::Error::from));
            }
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {}: {e}", kind.label()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{} did not start", kind.label());
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            cpu_mark: Mutex::new((0.0, 0.0)),
            kind,
            child,
            port,
            root,
        }
    }

    /// Resets the peak RSS and notes the CPU time used so far.
    fn begin_scenario(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
        *self.cpu_mark.lock().unwrap() = self.cpu_split();
        // For `perf record -k CLOCK_MONOTONIC` (benches/profile.sh).
        eprintln!("scenario begins at {:.6}", monotonic());
    }

    /// The server's user and system CPU seconds so far ([`common::cpu_split`]).
    fn cpu_split(&self) -> (f64, f64) {
        common::cpu_split(self.child.id())
    }

    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }

    fn path(&self, p: &str) -> String {
        match self.kind {
            Kind::Nginx => format!("/{p}"),
            _ => format!("/branches/{p}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Only the large files go now. Deleting the tens of thousands of small
        // ones would slow the next server's file creations on ext4 for
        // minutes; the whole location is removed at the end instead.
        remove_large_files(&self.root);
    }
}

fn remove_large_files(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => remove_large_files(&e.path()),
            Ok(m) if m.len() > (1 << 20) => {
                let _ = std::fs::remove_file(e.path());
            }
            _ => {}
        }
    }
}

fn nginx_conf(root: &Path, port: u16) -> String {
    // One worker, like the single-threaded dlrepo servers.
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
error_log stderr warn;
pid nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {root}/.tmp;
    client_max_body_size 0;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"#,
        root = root.display()
    )
}

// ----------------------------------------------------------------- client

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
    /// Send `bench:s3cret` Basic credentials with every request.
    auth: bool,
}

/// Whether the server under test wants credentials.
static AUTH_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_nodelay(true).ok();
        Conn {
            w: s.try_clone().unwrap(),
            r: BufReader::with_capacity(1 << 20, s),
            auth: AUTH_ON.load(Ordering::Relaxed),
        }
    }

    /// Sends a request; returns the status and the body (kept only if `keep`).
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        keep: bool,
    ) -> (u16, Vec<u8>, u64) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if self.auth {
            head.push_str("Authorization: Basic YmVuY2g6czNjcmV0\r\n");
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        if body.len() <= 64 * 1024 {
            let mut buf = head.into_bytes();
            buf.extend_from_slice(body);
            self.w.write_all(&buf).expect("send");
        } else {
            self.w.write_all(head.as_bytes()).expect("send head");
            self.w.write_all(body).expect("send body");
        }
        self.read_response(method == "HEAD", keep)
    }

    fn read_response(&mut self, head_only: bool, keep: bool) -> (u16, Vec<u8>, u64) {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("status line");
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut len: Option<u64> = None;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).expect("header");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        let mut total = 0u64;
        if head_only || status == 304 || status == 204 {
            return (status, body, 0);
        }
        if chunked {
            loop {
                let mut l = String::new();
                self.r.read_line(&mut l).unwrap();
                let n = u64::from_str_radix(l.trim(), 16).unwrap_or(0);
                total += self.take(n, keep, &mut body);
                let mut crlf = [0u8; 2];
                self.r.read_exact(&mut crlf).unwrap();
                if n == 0 {
                    break;
                }
            }
        } else if let Some(n) = len {
            total = self.take(n, keep, &mut body);
        }
        (status, body, total)
    }

    fn take(&mut self, n: u64, keep: bool, out: &mut Vec<u8>) -> u64 {
        if keep {
            let start = out.len();
            out.resize(start + n as usize, 0);
            self.r.read_exact(&mut out[start..]).expect("body");
        } else {
            let mut left = n;
            while left > 0 {
                let buf = self.r.fill_buf().expect("body");
                let k = (buf.len() as u64).min(left) as usize;
                assert!(k > 0, "connection closed early");
                self.r.consume(k);
                left -= k as u64;
            }
        }
        n
    }
}

fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic, incompressible-enough content.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

// -------------------------------------------------------------- scenarios

#[derive(Clone, Default)]
struct Row {
    /// Server CPU seconds spent in the scenario, and requests and MB per
    /// server CPU-second.
    cpu_s: f64,
    /// The system (kernel) part of `cpu_s`.
    kernel_share: Option<f64>,
    req_per_cpu: Option<f64>,
    mb_per_cpu: Option<f64>,
    server: String,
    scenario: &'static str,
    mb_s: Option<f64>,
    req_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CLOCK_MONOTONIC in seconds, the clock `perf record -k CLOCK_MONOTONIC` stamps samples with.
fn monotonic() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

fn row(s: &Server, scenario: &'static str, bytes: u64, elapsed: Duration, mut lat: Vec<f64>) -> Row {
    eprintln!("scenario ends at {:.6}: {scenario}", monotonic());
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let secs = elapsed.as_secs_f64();
    let ((user, sys), (user0, sys0)) = (s.cpu_split(), *s.cpu_mark.lock().unwrap());
    let (user, sys) = ((user - user0).max(0.0), (sys - sys0).max(0.0));
    let cpu = user + sys;
    // Ticks are 10 ms: a scenario shorter than a few ticks has no figure.
    let enough = cpu >= 0.05;
    let per = |v: f64| enough.then(|| v / cpu);
    let req_per_cpu = per(lat.len() as f64);
    let mb_per_cpu = if bytes > 0 { per(bytes as f64 / 1e6) } else { None };
    Row {
        cpu_s: cpu,
        kernel_share: enough.then(|| sys / cpu),
        req_per_cpu,
        mb_per_cpu,
        server: s.kind.label().into(),
        scenario,
        mb_s: if bytes > 0 {
            Some(bytes as f64 / 1e6 / secs)
        } else {
            None
        },
        req_s: lat.len() as f64 / secs,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        rss_mib: s.peak_rss_mib(),
    }
}

/// Runs `n` jobs over `conns` connections; `job(i, conn)` returns nothing and
/// panics on a wrong answer. Returns per-request latencies in ms.
fn parallel(port: u16, conns: usize, n: usize, job: impl Fn(usize, &mut Conn) + Sync) -> Vec<f64> {
    let next = AtomicUsize::new(0);
    let lat = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|sc| {
        for _ in 0..conns {
            sc.spawn(|| {
                let mut c = Conn::open(port);
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let t = Instant::now();
                    job(i, &mut c);
                    mine.push(t.elapsed().as_secs_f64() * 1e3);
                }
                lat.lock().unwrap().extend(mine);
            });
        }
    });
    lat.into_inner().unwrap()
}

struct Data {
    big: Vec<Vec<u8>>,
    big_digest: Vec<String>,
    small: Vec<Vec<u8>>,
    small_digest: Vec<String>,
    dl: Vec<u8>,
    dl_digest: String,
}

fn make_data(o: &Opts) -> Data {
    let big: Vec<Vec<u8>> = (0..o.big_files)
        .map(|i| {
            let mut b = vec![0u8; o.big_size];
            fill(&mut b, 1000 + i as u64);
            b
        })
        .collect();
    let small: Vec<Vec<u8>> = (0..o.small_files)
        .map(|i| {
            let mut b = vec![0u8; o.small_size];
            fill(&mut b, 5_000_000 + i as u64);
            b
        })
        .collect();
    let mut dl = vec![0u8; o.dl_size];
    fill(&mut dl, 42);
    Data {
        big_digest: big.iter().map(|b| format!("sha256:{}", sha256_hex(b))).collect(),
        small_digest: small.iter().map(|b| format!("sha256:{}", sha256_hex(b))).collect(),
        dl_digest: format!("sha256:{}", sha256_hex(&dl)),
        big,
        small,
        dl,
    }
}

fn small_path(s: &Server, conns: usize, i: usize) -> String {
    s.path(&format!("bench/t/j{}/f/{i}.bin", i % conns))
}

fn run_server(s: &Server, o: &Opts, d: &Data, rows: &mut Vec<Row>) {
    let dl = s.kind.is_dlrepo();
    let wants = |c: char| o.scenarios.contains(c);
    if !o.small_only && wants('a') {
        // (a) large uploads, one at a time. Each server gets memory just
        // freed, as the page cache would give it: on a VM that returns
        // free pages to its host, the first touch of a page the host took
        // back costs several times a write (a server run right after
        // another's files were deleted would otherwise be favoured).
        warm_up(s.root.parent().unwrap_or(&s.root), d);
        s.begin_scenario();
        let mut c = Conn::open(s.port);
        let t = Instant::now();
        let mut lat = Vec::new();
        for (i, body) in d.big.iter().enumerate() {
            let t1 = Instant::now();
            let (st, _, _) = c.send(
                "PUT",
                &s.path(&format!("bench/big/j/f/big{i}.bin")),
                &[("Digest", &d.big_digest[i])],
                body,
                false,
            );
            assert!(st == 201 || st == 204, "{}: large upload got {st}", s.kind.label());
            lat.push(t1.elapsed().as_secs_f64() * 1e3);
        }
        rows.push(row(
            s,
            "a) upload 4 x 512 MiB",
            (d.big.len() * o.big_size) as u64,
            t.elapsed(),
            lat,
        ));
        drop(c);
    }

    // (b) small distinct uploads at c=64.
    if wants('b') {
        s.begin_scenario();
        let t = Instant::now();
        let lat = parallel(s.port, o.conns, d.small.len(), |i, c| {
            let (st, _, _) = c.send(
                "PUT",
                &small_path(s, o.conns, i),
                &[("Digest", &d.small_digest[i])],
                &d.small[i],
                false,
            );
            assert!(st == 201 || st == 204, "{}: small upload got {st}", s.kind.label());
        });
        rows.push(row(
            s,
            "b) upload 4 KiB, c=64",
            (d.small.len() * o.small_size) as u64,
            t.elapsed(),
            lat,
        ));
    }

    // (c) link-only uploads of existing blobs.
    if dl && wants('c') {
        s.begin_scenario();
        let t = Instant::now();
        let lat = parallel(s.port, o.conns, d.small.len(), |i, c| {
            let path = s.path(&format!("bench/link/j{}/f/{i}.bin", i % o.conns));
            let dg = d.small_digest[i].as_str();
            let (st, _, _) = c.send("PUT", &path, &[("Digest", dg), ("X-Dlrepo-Link", dg)], b"", false);
            assert_eq!(st, 201, "{}: link-only upload", s.kind.label());
        });
        rows.push(row(s, "c) link-only PUT, c=64", 0, t.elapsed(), lat));
    }

    // (d) small downloads at c=64, every body compared.
    if wants('d') {
        s.begin_scenario();
        let t = Instant::now();
        let n = d.small.len() * o.download_rounds;
        let lat = parallel(s.port, o.conns, n, |k, c| {
            let i = k % d.small.len();
            let (st, body, _) = c.send("GET", &small_path(s, o.conns, i), &[], b"", true);
            assert_eq!(st, 200, "{}: small download", s.kind.label());
            assert!(body == d.small[i], "{}: wrong bytes for small file {i}", s.kind.label());
        });
        rows.push(row(
            s,
            "d) download 4 KiB, c=64",
            (n * o.small_size) as u64,
            t.elapsed(),
            lat,
        ));
    }

    if o.small_only || !wants('e') {
        return;
    }
    // (e) large downloads, one at a time; the first is hashed and compared.
    let mut c = Conn::open(s.port);
    let path = s.path("bench/dl/j/f/large.bin");
    let (st, _, _) = c.send("PUT", &path, &[("Digest", &d.dl_digest)], &d.dl, false);
    assert!(
        st == 201 || st == 204,
        "{}: upload for download test got {st}",
        s.kind.label()
    );
    if dl {
        // dlrepo: finalise the format so nothing is dirty (not needed to GET).
        let _ = c.send("PATCH", &s.path("bench/dl/j/f/"), &[], b"", false);
    }
    let (st, body, _) = c.send("GET", &path, &[], b"", true);
    assert_eq!(st, 200);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&body)),
        d.dl_digest,
        "{}: large download corrupted",
        s.kind.label()
    );
    drop(body);
    s.begin_scenario();
    let t = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..o.dl_repeat {
        let t1 = Instant::now();
        let (st, _, n) = c.send("GET", &path, &[], b"", false);
        assert_eq!(st, 200);
        assert_eq!(n as usize, o.dl_size);
        lat.push(t1.elapsed().as_secs_f64() * 1e3);
    }
    rows.push(row(
        s,
        "e) download 256 MiB",
        (o.dl_repeat * o.dl_size) as u64,
        t.elapsed(),
        lat,
    ));
}

/// Writes and removes as much data as a server run stores, so the server
/// measured next does not pay for the file system's first allocations.
fn warm_up(dir: &Path, d: &Data) {
    let p = dir.join("warm-up");
    {
        let mut f = std::fs::File::create(&p).unwrap();
        for b in &d.big {
            f.write_all(b).unwrap();
        }
        f.write_all(&d.dl).unwrap();
    }
    let _ = std::fs::remove_file(&p);
}

/// fdatasync of a 4 KiB append, the disk's own durability limit.
fn fdatasync_rate(dir: &Path) -> (f64, f64) {
    use std::os::unix::fs::FileExt;
    let p = dir.join("fdatasync-probe");
    let f = std::fs::File::create(&p).unwrap();
    let buf = [7u8; 4096];
    let mut lat = Vec::new();
    let t = Instant::now();
    for i in 0..300u64 {
        let t1 = Instant::now();
        f.write_all_at(&buf, i * 4096).unwrap();
        f.sync_data().unwrap();
        lat.push(t1.elapsed().as_secs_f64() * 1e3);
    }
    let rate = 300.0 / t.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let _ = std::fs::remove_file(&p);
    (rate, percentile(&lat, 0.5))
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!(
        "| scenario | server | MB/s | req/s | server CPU s | of it kernel | req per server CPU-s | MB per server CPU-s | p50 ms | p99 ms | peak RSS MiB | vs 0.44 | vs nginx |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let peer = |name: &str| {
            rows.iter()
                .find(|x| x.scenario == r.scenario && x.server == name)
                .map(|p| {
                    let (a, b) = match (r.mb_s, p.mb_s) {
                        (Some(a), Some(b)) => (a, b),
                        _ => (r.req_s, p.req_s),
                    };
                    format!("{:.2}x", a / b)
                })
        };
        let ratios = if r.server.starts_with("dlrepo-rs") {
            (
                peer("dlrepo 0.44").unwrap_or("-".into()),
                peer("nginx").unwrap_or("-".into()),
            )
        } else {
            ("".into(), "".into())
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} |",
            r.scenario,
            r.server,
            r.mb_s.map(|m| format!("{m:.0}")).unwrap_or("-".into()),
            r.req_s,
            r.cpu_s,
            r.kernel_share
                .map(|k| format!("{:.0} %", k * 100.0))
                .unwrap_or("-".into()),
            r.req_per_cpu.map(|v| format!("{v:.0}")).unwrap_or("-".into()),
            r.mb_per_cpu.map(|v| format!("{v:.0}")).unwrap_or("-".into()),
            r.p50_ms,
            r.p99_ms,
            r.rss_mib,
            ratios.0,
            ratios.1
        );
    }
}

fn main() {
    let o = parse_opts();
    if o.pin {
        // Before any thread starts: they all inherit it.
        common::pin_self(LOAD_CPU).expect("pin the load generator");
        eprintln!("pinned: server on CPU {SERVER_CPU}, load generator on CPU {LOAD_CPU} (--no-pin to turn off)");
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("original-dlrepo-0.44");
    if o.peers {
        let st = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/setup-peers.sh"))
            .arg(&venv)
            .status();
        assert!(matches!(st, Ok(s) if s.success()), "installing the peers failed");
    }
    eprintln!("preparing data...");
    let d = Arc::new(make_data(&o));
    for dir in &o.dirs {
        std::fs::create_dir_all(dir).expect("bench dir");
        let fstype = Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(dir)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let (rate, p50) = fdatasync_rate(dir);
        warm_up(dir, &d);
        let mut rows = Vec::new();
        let mut kinds = vec![Kind::Ours { fsync: false }, Kind::OursAuth, Kind::Ours { fsync: true }];
        if o.peers {
            kinds.push(Kind::Original);
            kinds.push(Kind::Nginx);
        }
        if let Some(only) = &o.servers {
            kinds.push(Kind::OursSplice);
            kinds.retain(|k| only.iter().any(|n| n == k.short_name()));
        }
        for kind in kinds {
            eprintln!("{}: {} ...", dir.display(), kind.label());
            let s = Server::start(kind, dir, &venv, o.pin);
            run_server(&s, &o, &d, &mut rows);
        }
        rows.sort_by_key(|r| r.scenario);
        let _ = std::fs::remove_dir_all(dir);
        print_table(
            &format!(
                "{} ({fstype}); fdatasync of a 4 KiB append: {rate:.0}/s, p50 {p50:.2} ms",
                dir.display()
            ),
            &rows,
        );
    }
}
