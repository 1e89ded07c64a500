//! Publish benchmark: how long releasing a tag of 1 000 files (1 GiB) takes
//! to one and to three mirrors, and what it does to the latency of small
//! uploads into the source meanwhile.
//!
//! ```sh
//! cargo bench --bench publish                      # /dev/shm, 1 and 3 mirrors
//! cargo bench --bench publish -- --dir /some/where --files 200
//! ```
//!
//! All servers are this project's release binary, with `DLREPO_FSYNC=0`.
//! The source is pinned to CPU 0 and everything else (mirrors, clients) to
//! CPU 1 when the machine has two cores and `taskset` exists.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{arg, pinned, start_dlrepo};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(root: &Path, cpu: &str, env: &[(&str, String)]) -> Server {
    let (child, port) = start_dlrepo(root, cpu, env);
    Server { child, port }
}

/// One request on a fresh connection; returns the status and the body.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    let body = match rest.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => rest[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn put(port: u16, path: &str, data: &[u8]) {
    let (st, _) = request(
        port,
        "PUT",
        path,
        &[("Digest", format!("sha256:{}", sha256(data)))],
        data,
    );
    assert_eq!(st, 201, "PUT {path}");
}

/// Small uploads from 8 clients until `stop`; their latencies in µs.
fn small_uploads(port: u16, stop: Arc<AtomicBool>, tag: &str) -> Vec<u64> {
    let lat = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (stop, lat, tag) = (stop.clone(), lat.clone(), tag.to_string());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let data = format!("small {tag} {t} {i} {}", "s".repeat(4000));
                    let start = Instant::now();
                    put(port, &format!("/branches/small/{tag}/j{t}/f/{i}"), data.as_bytes());
                    lat.lock().unwrap().push(start.elapsed().as_micros() as u64);
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut v = Arc::try_unwrap(lat).unwrap().into_inner().unwrap();
    v.sort_unstable();
    v
}

fn pct(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0
}

fn status(port: u16) -> String {
    let (_, body) = request(port, "GET", "/branches/b/t/", &[], b"");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    v["tag"]["publish_status"].as_str().unwrap_or("null").to_string()
}

fn run(dir: &Path, mirrors: usize, files: usize) {
    let mirror_servers: Vec<Server> = (0..mirrors)
        .map(|i| start(&dir.join(format!("mirror{i}")), "1", &[]))
        .collect();
    let urls: Vec<String> = mirror_servers
        .iter()
        .map(|m| format!("http://127.0.0.1:{}", m.port))
        .collect();
    let auth = dir.join("auth");
    std::fs::write(&auth, "bench:bench").unwrap();
    let src = start(
        &dir.join("source"),
        "0",
        &[
            ("DLREPO_PUBLISH_URL", urls.join(",")),
            ("DLREPO_PUBLISH_AUTH", auth.display().to_string()),
            ("DLREPO_PUBLISH_MAX_REQUESTS", "8".into()),
        ],
    );
    let size = (1usize << 30) / files;
    let jobs = 4;
    let mut block = vec![0u8; size];
    for i in 0..files {
        for (k, b) in block.iter_mut().enumerate().step_by(4096) {
            *b = (i * 31 + k) as u8;
        }
        block[0..8].copy_from_slice(&(i as u64).to_le_bytes());
        put(src.port, &format!("/branches/b/t/j{}/f/file{i}.bin", i % jobs), &block);
    }
    for j in 0..jobs {
        assert_eq!(
            request(src.port, "PATCH", &format!("/branches/b/t/j{j}/f/"), &[], b"").0,
            200
        );
        let lock = br#"{"job": {"locked": true}}"#;
        assert_eq!(
            request(
                src.port,
                "PUT",
                &format!("/branches/b/t/j{j}/"),
                &[("Content-Type", "application/json".into())],
                lock
            )
            .0,
            200
        );
    }
    // Small uploads alone.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = {
        let (s, st) = (src.port, stop.clone());
        let h = std::thread::spawn(move || small_uploads(s, st, "quiet"));
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    };
    // And during the publish.
    let stop = Arc::new(AtomicBool::new(false));
    let h = {
        let (s, st) = (src.port, stop.clone());
        std::thread::spawn(move || small_uploads(s, st, "busy"))
    };
    let rel = br#"{"tag": {"released": true}}"#;
    let started = Instant::now();
    assert_eq!(
        request(
            src.port,
            "POST",
            "/branches/b/t/",
            &[("Content-Type", "application/json".into())],
            rel
        )
        .0,
        200
    );
    let final_status = loop {
        let s = status(src.port);
        if s.starts_with("published") || s.starts_with("error") {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "publish stuck at {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let busy = h.join().unwrap();
    assert!(final_status.starts_with("published"), "{final_status}");
    println!(
        "| {mirrors} | {files} × {} KiB | {:.2} s | {:.0} MB/s | {} | {:.2} / {:.2} ms | {} | {:.2} / {:.2} ms |",
        size >> 10,
        took.as_secs_f64(),
        (mirrors as f64 * (1u64 << 30) as f64) / took.as_secs_f64() / 1e6,
        quiet.len(),
        pct(&quiet, 0.5),
        pct(&quiet, 0.99),
        busy.len(),
        pct(&busy, 0.5),
        pct(&busy, 0.99),
    );
}

fn main() {
    let dir = PathBuf::from(arg("--dir").unwrap_or_else(|| "/dev/shm/dlrepo-publish-bench".into()));
    let files: usize = arg("--files").and_then(|f| f.parse().ok()).unwrap_or(1000);
    println!("pinned (source on CPU 0, the rest on CPU 1): {}", pinned());
    println!("| mirrors | files | publish time | MB/s sent | small uploads alone | p50 / p99 | during the publish | p50 / p99 |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for mirrors in [1, 3] {
        run(&dir, mirrors, files);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
