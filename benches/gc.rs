//! Orphan GC benchmark: a root pre-filled with 200 000 orphan blobs (old
//! mtimes) and 100 000 live ones; measures the GC's files scanned and
//! orphans removed per second, and small-upload latency while it runs
//! against the same uploads with no GC.
//!
//! ```sh
//! cargo bench --bench gc                      # tmpfs (/dev/shm) and disk (target/)
//! cargo bench --bench gc -- --dir /some/where # one location
//! cargo bench --bench gc -- --quick           # 20 000 + 10 000 files
//! cargo bench --bench gc -- --scan-only       # orphans too young to go: a scan that removes nothing
//! cargo bench --bench gc -- --pause-us 1000   # each client waits 1 ms between uploads: a load that
//!                                             # leaves the server idle part of the time
//! ```
//!
//! With two cores or more the server runs on CPU 0 and this process (the
//! files' creation and the upload clients) on CPU 1.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::Digest as _;

mod common;

/// Concurrent upload clients during the measurements.
const CLIENTS: usize = 4;

/// `--scan-only`: an orphan lifetime no file reaches, so the GC only scans.
static SCAN_ONLY: AtomicBool = AtomicBool::new(false);
/// `--pause-us N`: each client's wait between two uploads (0: back to back,
/// which keeps the server's core busy all the time).
static PAUSE_US: AtomicU64 = AtomicU64::new(0);

fn main() {
    if common::pinned() {
        common::pin_self(1).expect("pin the load generator to CPU 1");
        eprintln!("pinned: server on CPU 0, this process on CPU 1");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    SCAN_ONLY.store(args.iter().any(|a| a == "--scan-only"), Ordering::Relaxed);
    if let Some(w) = args.windows(2).find(|w| w[0] == "--pause-us") {
        PAUSE_US.store(w[1].parse().expect("--pause-us takes microseconds"), Ordering::Relaxed);
    }
    let (orphans, live) = if quick { (20_000, 10_000) } else { (200_000, 100_000) };
    let mut dirs: Vec<PathBuf> = args
        .windows(2)
        .filter(|w| w[0] == "--dir")
        .map(|w| PathBuf::from(&w[1]))
        .collect();
    if dirs.is_empty() {
        dirs.push(PathBuf::from("/dev/shm/dlrepo-gc-bench"));
        dirs.push(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gc-bench"));
    }
    println!("Rates: the GC alone / the GC while {CLIENTS} clients upload 4 KiB files.\n");
    println!("| location | files scanned/s | orphans removed/s | GC run s | upload p50 / p99 ms, no GC | upload p50 / p99 ms, during GC | p99 ratio | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for dir in dirs {
        run(&dir, orphans, live);
    }
}

fn run(base: &Path, orphans: usize, live: usize) {
    let _ = std::fs::remove_dir_all(base);
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(base.join("server.log")).unwrap();
    let mut child: Child = common::dlrepo_command("0")
        .env_clear()
        .env("DLREPO_ROOT_DIR", &root)
        .env("DLREPO_LISTEN_PORT", port.to_string())
        .env("DLREPO_LOG_OUTPUT", "console")
        .env("DLREPO_LOG_LEVEL", "INFO")
        .env("DLREPO_AUTH_DISABLED", "1")
        .env("DLREPO_FSYNC", "0")
        .env("DLREPO_TAG_CLEANUP_PERIOD", "0")
        .env(
            "DLREPO_ORPHAN_BLOB_LIFETIME",
            if SCAN_ONLY.load(Ordering::Relaxed) {
                "999999999"
            } else {
                "600"
            },
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start dlrepo");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_runs(&root, 1);

    // Baseline: uploads with no GC running.
    let counter = AtomicUsize::new(0);
    let quiet = uploads_for(port, &counter, Duration::from_secs(5), None);

    // The GC alone.
    eprintln!(
        "{}: creating {orphans} orphans and {live} live blobs...",
        base.display()
    );
    prefill(&root, 1, orphans, live);
    let pid = child.id() as i32;
    let usr1 = || {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGUSR1);
    };
    usr1();
    let alone = wait_runs(&root, 2);

    // The GC while uploads run.
    eprintln!("{}: again, with uploads...", base.display());
    prefill(&root, 2, orphans, live);
    // The uploads on this full root before the GC starts: the baseline
    // with the same folders, the GC's work aside.
    let before = uploads_for(port, &counter, Duration::from_secs(5), None);
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let done = AtomicBool::new(false);
    let (during, report) = std::thread::scope(|sc| {
        let watcher = sc.spawn(|| {
            usr1();
            let r = wait_runs(&root, 3);
            done.store(true, Ordering::Relaxed);
            r
        });
        let during = uploads_for(port, &counter, Duration::from_secs(600), Some(&done));
        (during, watcher.join().unwrap())
    });
    // The same load again with no GC, on the root as the run left it: what
    // the uploads cost now, with the GC's share taken out.
    let after = uploads_for(port, &counter, Duration::from_secs(5), None);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(0.0)
        / 1024.0;

    // Verify: every orphan went, every live blob stayed.
    let (mut left_orphans, mut left_live) = (0, 0);
    for shard in std::fs::read_dir(root.join(".blobs/sha256")).unwrap().flatten() {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("0rphan") {
                left_orphans += 1;
            } else if name.starts_with("11ve") {
                assert_eq!(f.metadata().unwrap().nlink(), 2);
                left_live += 1;
            }
        }
    }
    let scan_only = SCAN_ONLY.load(Ordering::Relaxed);
    let expected_left = if scan_only { 2 * orphans } else { 0 };
    assert_eq!(left_orphans, expected_left, "orphans left behind or removed too early");
    assert_eq!(left_live, 2 * live, "live blobs were removed");
    let rates = |r: &serde_json::Value| {
        let last = &r["last_run"];
        let secs = last["seconds"].as_f64().unwrap_or(1.0);
        let scanned = last["files_scanned"].as_f64().unwrap_or(0.0);
        let removed = last["blobs_removed"].as_f64().unwrap_or(0.0);
        assert_eq!(
            removed as usize,
            if scan_only { 0 } else { orphans },
            "the run removed a different number of orphans"
        );
        (scanned / secs, removed / secs, secs)
    };
    let (a_scan, a_rm, a_secs) = rates(&alone);
    let (d_scan, d_rm, d_secs) = rates(&report);
    let (q50, q99) = (pct(&quiet, 0.5), pct(&quiet, 0.99));
    let (d50, d99) = (pct(&during, 0.5), pct(&during, 0.99));
    eprintln!(
        "upload p90 / p99.9 / max ms: no GC {:.2} / {:.2} / {:.2}, during GC {:.2} / {:.2} / {:.2}",
        pct(&quiet, 0.9),
        pct(&quiet, 0.999),
        pct(&quiet, 1.0),
        pct(&during, 0.9),
        pct(&during, 0.999),
        pct(&during, 1.0)
    );
    eprintln!(
        "uploads/s: no GC {:.0}, full root before GC {:.0} (p50 / p99 {:.2} / {:.2}), during GC {:.0}, after it {:.0}; after it p50 / p99 ms {:.2} / {:.2}",
        quiet.len() as f64 / 5.0,
        before.len() as f64 / 5.0,
        pct(&before, 0.5),
        pct(&before, 0.99),
        during.len() as f64 / d_secs,
        after.len() as f64 / 5.0,
        pct(&after, 0.5),
        pct(&after, 0.99)
    );
    let fstype = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(base)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "| {} ({fstype}) | {a_scan:.0} / {d_scan:.0} | {a_rm:.0} / {d_rm:.0} | {a_secs:.2} / {d_secs:.2} | {q50:.2} / {q99:.2} ({} uploads) | {d50:.2} / {d99:.2} ({} uploads) | {:.2} | {rss:.1} |",
        base.display(),
        quiet.len(),
        during.len(),
        d99 / q99
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(base);
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return 0.0;
    }
    s[(((s.len() - 1) as f64) * p).round() as usize]
}

/// Waits until the status file reports `n` runs and none running.
fn wait_runs(root: &Path, n: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(b) = std::fs::read(root.join(".dlrepo-rs/cleanup.json")) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                if v["totals"]["runs"].as_u64().unwrap_or(0) >= n && v["running"] == false {
                    return v;
                }
            }
        }
        assert!(Instant::now() < deadline, "cleanup did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Creates the orphans (one link, mtime a day ago) and the live blobs (two
/// links, one in a format folder), spread over the 256 shards.
fn prefill(root: &Path, round: usize, orphans: usize, live: usize) {
    let old = SystemTime::now() - Duration::from_secs(86_400);
    for shard in 0..256 {
        std::fs::create_dir_all(root.join(format!(".blobs/sha256/{shard:02x}"))).unwrap();
    }
    let jobs = live.div_ceil(1000);
    for j in 0..jobs {
        std::fs::create_dir_all(root.join(format!("branches/b/t{round}/j{j}/f"))).unwrap();
    }
    for i in 0..orphans + live {
        let shard = i % 256;
        let is_orphan = i < orphans;
        let name = if is_orphan {
            format!("0rphan{round}-{i:010}")
        } else {
            format!("11ve{round}-{i:012}")
        };
        let p = root.join(format!(".blobs/sha256/{shard:02x}/{name}"));
        let f = std::fs::File::create(&p).unwrap();
        f.write_all_at_once(b"blob data").unwrap();
        f.set_modified(old).unwrap();
        if !is_orphan {
            let k = i - orphans;
            std::fs::hard_link(&p, root.join(format!("branches/b/t{round}/j{}/f/{k}", k / 1000))).unwrap();
        }
    }
}

trait WriteOnce {
    fn write_all_at_once(&self, b: &[u8]) -> std::io::Result<()>;
}

impl WriteOnce for std::fs::File {
    fn write_all_at_once(&self, b: &[u8]) -> std::io::Result<()> {
        let mut f = self;
        f.write_all(b)
    }
}

/// Small distinct uploads from `CLIENTS` connections, for `limit` or until
/// `until` is set. Returns the latencies in ms.
fn uploads_for(port: u16, counter: &AtomicUsize, limit: Duration, until: Option<&AtomicBool>) -> Vec<f64> {
    let lat = Mutex::new(Vec::new());
    let end = Instant::now() + limit;
    std::thread::scope(|sc| {
        for _ in 0..CLIENTS {
            sc.spawn(|| {
                let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_nodelay(true).ok();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut mine = Vec::new();
                while Instant::now() < end && !until.map(|u| u.load(Ordering::Relaxed)).unwrap_or(false) {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let body = format!("upload number {i} {}", "x".repeat(4000));
                    let hex: String = sha2::Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
                    let t = Instant::now();
                    write!(
                        w,
                        "PUT /branches/up/t/j{}/f/{i} HTTP/1.1\r\nHost: x\r\nDigest: sha256:{hex}\r\nContent-Length: {}\r\n\r\n{body}",
                        i / 200,
                        body.len()
                    )
                    .unwrap();
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    assert!(line.contains(" 201 "), "upload failed: {line}");
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut b = vec![0; len];
                    std::io::Read::read_exact(&mut r, &mut b).unwrap();
                    mine.push(t.elapsed().as_secs_f64() * 1e3);
                    let pause = PAUSE_US.load(Ordering::Relaxed);
                    if pause > 0 {
                        std::thread::sleep(Duration::from_micros(pause));
                    }
                }
                lat.lock().unwrap().extend(mine);
            });
        }
    });
    lat.into_inner().unwrap()
}
