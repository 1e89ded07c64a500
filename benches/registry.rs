//! Registry benchmark: pushing one large layer (500 MiB by default) on
//! tmpfs, as a registry client does: POST a session, PATCH the bytes in one
//! request, PUT with the digest (the server hashes as the bytes arrive).
//!
//! ```sh
//! cargo bench --bench registry
//! cargo bench --bench registry -- --mib 200 --dir /some/where
//! ```
//!
//! The server (release build, `DLREPO_FSYNC=0`) is pinned to CPU 0 and the
//! client to CPU 1 when the machine has two cores and `taskset` exists;
//! the server's CPU time (its threads and io-wq workers) is reported beside
//! the rate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Instant;

mod common;
use common::{arg, cpu_seconds, pinned, start_dlrepo};

fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &mut dyn Read,
    len: u64,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    std::io::copy(body, &mut s).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    (status, rest)
}

fn main() {
    let dir = PathBuf::from(arg("--dir").unwrap_or_else(|| "/dev/shm/dlrepo-registry-bench".into()));
    let mib: u64 = arg("--mib").and_then(|m| m.parse().ok()).unwrap_or(500);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Incompressible bytes (a cheap generator), hashed once for the digest.
    let layer = dir.join("layer.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&layer).unwrap());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for c in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&buf).unwrap();
        }
    }
    let size = mib << 20;
    let digest = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        let mut f = std::fs::File::open(&layer).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        format!(
            "sha256:{}",
            h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    };
    println!("pinned (server on CPU 0, client on CPU 1): {}", pinned());
    println!("| client | layer | time | MB/s | server CPU s | MB per server CPU-second |");
    println!("|---|---|---:|---:|---:|---:|");
    for round in 0..3 {
        let (mut child, port) = start_dlrepo(&dir.join("root"), "0", &[]);
        let (st, rest) = send(port, "POST", "/v2/b/j/blobs/uploads/", &[], &mut std::io::empty(), 0);
        assert_eq!(st, 202);
        let loc = rest
            .lines()
            .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
            .expect("a Location")
            .trim()
            .to_string();
        let cpu0 = cpu_seconds(child.id());
        let started = Instant::now();
        let mut f = std::fs::File::open(&layer).unwrap();
        let (st, _) = send(port, "PATCH", &loc, &[], &mut f, size);
        assert_eq!(st, 202);
        let (st, _) = send(
            port,
            "PUT",
            &format!("{loc}?digest={digest}"),
            &[],
            &mut std::io::empty(),
            0,
        );
        assert_eq!(st, 201);
        let took = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(child.id()) - cpu0;
        println!(
            "| HTTP, round {} | {mib} MiB | {took:.2} s | {:.0} | {cpu:.2} | {:.0} |",
            round + 1,
            size as f64 / took / 1e6,
            size as f64 / cpu.max(0.001) / 1e6
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
