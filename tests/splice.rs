//! Large downloads with `DLREPO_SPLICE_DOWNLOADS=1`: file pages go to the
//! socket through a pipe. Every byte is compared, across chunk boundaries,
//! ranges, several answers on one connection, and an abandoned download.

mod common;

use std::io::{BufReader, Read, Write};

use common::{read_response, Server};

/// Not a multiple of a pipe's chunk, so the last chunk is short.
fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

fn spliced() -> Server {
    Server::start_with(&[("DLREPO_SPLICE_DOWNLOADS", "1")])
}

const BIG: &str = "/branches/b/t/j/f/big.bin";
const OTHER: &str = "/branches/b/t/j/f/other.bin";
const SMALL: &str = "/branches/b/t/j/f/small.txt";

#[test]
fn whole_files_and_ranges_arrive_intact() {
    let s = spliced();
    let big = data(5 * 1024 * 1024 + 4321, 1);
    s.put_file(BIG, &big).expect(201);
    let r = s.get(BIG);
    r.expect(200);
    assert_eq!(r.header("content-length"), Some(big.len().to_string().as_str()));
    assert!(r.body == big, "whole file differs");

    for (a, b) in [(0usize, 1_048_575usize), (524_287, 3_000_001), (1_000, big.len() - 1)] {
        let r = s.req("GET", BIG).header("Range", &format!("bytes={a}-{b}")).send();
        r.expect(206);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{}", big.len()).as_str())
        );
        assert!(r.body == big[a..=b], "range {a}-{b} differs");
    }
    // A suffix range below the splice size takes the copying path.
    let r = s.req("GET", BIG).header("Range", "bytes=-100").send();
    r.expect(206);
    assert!(r.body == big[big.len() - 100..]);

    let r = s.req("HEAD", BIG).send();
    r.expect(200);
    assert!(r.body.is_empty());
}

#[test]
fn answers_on_one_connection_stay_in_order() {
    let s = spliced();
    let big = data(3 * 1024 * 1024 + 17, 2);
    let other = data(2 * 1024 * 1024 + 999, 3);
    s.put_file(BIG, &big).expect(201);
    s.put_file(OTHER, &other).expect(201);
    s.put(SMALL, "small one\n");

    let conn = s.connect();
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    // Pipelined: the next requests wait in the socket while the first
    // answer's pipe drains.
    let mut reqs = String::new();
    for p in [BIG, SMALL, OTHER, BIG] {
        reqs.push_str(&format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    w.write_all(reqs.as_bytes()).expect("send");
    for (p, want) in [
        (BIG, &big[..]),
        (SMALL, &b"small one\n"[..]),
        (OTHER, &other[..]),
        (BIG, &big[..]),
    ] {
        let resp = read_response(&mut r, "GET");
        resp.expect(200);
        assert!(resp.body == want, "{p} differs");
    }
}

#[test]
fn a_slow_reader_gets_every_byte() {
    // The socket fills up again and again: the writer waits for it between
    // partial splices.
    let s = spliced();
    let big = data(4 * 1024 * 1024 + 3, 5);
    s.put_file(BIG, &big).expect(201);
    let pipes_before = pipes(&s);
    let conn = s.connect();
    // A small receive buffer, so the server's side fills quickly.
    nix::sys::socket::setsockopt(&conn, nix::sys::socket::sockopt::RcvBuf, &(32 * 1024)).expect("SO_RCVBUF");
    let mut w = conn.try_clone().expect("clone");
    w.write_all(format!("GET {BIG} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("send");
    let mut r = BufReader::with_capacity(16 * 1024, SlowReader(conn));
    let resp = read_response(&mut r, "GET");
    resp.expect(200);
    assert!(resp.body == big, "slowly read file differs");
    // The bytes came through a pipe: the connection still holds its read
    // end (the write end went with the answer).
    assert_eq!(pipes(&s), pipes_before + 1, "the download's pipe is not open");
    drop(r);
}

/// Pipe ends the server has open (its runtime has some of its own).
fn pipes(s: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("pipe:"))
        .count()
}

/// Reads at most 16 KiB at a time, pausing between reads.
struct SlowReader(std::net::TcpStream);

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(std::time::Duration::from_micros(300));
        let n = buf.len().min(16 * 1024);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn an_abandoned_download_leaves_the_server_serving() {
    let s = spliced();
    let big = data(8 * 1024 * 1024, 4);
    s.put_file(BIG, &big).expect(201);
    for _ in 0..3 {
        let mut c = s.connect();
        c.write_all(format!("GET {BIG} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .expect("send");
        let mut some = [0u8; 64 * 1024];
        c.read_exact(&mut some).expect("first bytes");
        drop(c);
    }
    let r = s.get(BIG);
    r.expect(200);
    assert!(r.body == big);
    // No pipe is left open per abandoned download.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", s.pid())).expect("fds").count();
    assert!(fds < 40, "{fds} descriptors open");
}

#[test]
fn the_setting_takes_only_0_or_1() {
    let root = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dlrepo"))
        .env("DLREPO_ROOT_DIR", root.path())
        .env("DLREPO_SPLICE_DOWNLOADS", "yes")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DLREPO_SPLICE_DOWNLOADS"), "{err}");
}
