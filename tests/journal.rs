//! The `.digests` write-behind: uploads are answered before their format's
//! `.digests` file is rewritten, journaled meanwhile, and nothing is lost
//! across a kill, a stop, a lock or a delete.

mod common;

use common::*;
use serde_json::json;
use std::io::Write;

/// Long enough that no checkpoint runs during a test on its own.
const NEVER: (&str, &str) = ("DLREPO_DIGESTS_FLUSH_DELAY_MS", "600000");

fn on_disk(s: &Server, format: &str) -> Option<serde_json::Value> {
    let bytes = std::fs::read(s.path(&format!("{format}/.digests"))).ok()?;
    Some(serde_json::from_slice(&bytes).expect(".digests is JSON"))
}

/// Asserts a format's `.digests` on disk.
#[track_caller]
fn expect_on_disk(s: &Server, format: &str, expected: serde_json::Value) {
    assert_eq!(
        on_disk(s, format).expect(".digests written"),
        expected,
        "{format}/.digests"
    );
}

fn files(s: &Server, url: &str) -> serde_json::Value {
    s.get(url).json()["artifact_format"]["files"].clone()
}

/// The commit lines in the journal (an upload also writes an intent line
/// before its link, ending in `"linking"`).
fn journal_lines(s: &Server) -> usize {
    std::fs::read_dir(s.path(".dlrepo-rs"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("digests-journal."))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .map(|t| {
                    t.lines()
                        .filter(|l| !l.ends_with(r#", "linking"]"#) && !l.ends_with(r#","linking"]"#))
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn uploads_are_visible_at_once_and_written_back_later() {
    let s = Server::start();
    s.put_file("/branches/b/t/j/f/a.txt", b"a").expect(201);
    // Served from memory straight away.
    assert_eq!(files(&s, "/branches/b/t/j/f/"), json!(["a.txt"]));
    let r = s.req("HEAD", "/branches/b/t/j/f/a.txt").send();
    assert_eq!(r.header("digest"), Some(sha256_digest(b"a").as_str()));
    // And on disk within the default delay, without being asked.
    wait_until(".digests to be written", || on_disk(&s, "branches/b/t/j/f").is_some());
    expect_on_disk(&s, "branches/b/t/j/f", json!({"a.txt": sha256_digest(b"a")}));
}

#[test]
fn a_delay_of_zero_writes_digests_before_answering() {
    let s = Server::start_with(&[("DLREPO_DIGESTS_FLUSH_DELAY_MS", "0")]);
    s.put_file("/branches/b/t/j/f/a.txt", b"a").expect(201);
    expect_on_disk(&s, "branches/b/t/j/f", json!({"a.txt": sha256_digest(b"a")}));
    assert_eq!(journal_lines(&s), 0);
}

#[test]
fn a_stop_writes_everything_back() {
    let mut s = Server::start_with(&[NEVER]);
    s.put_file("/branches/b/t/j/f/a.txt", b"a").expect(201);
    s.put_file("/branches/b/t/j/g/b.txt", b"b").expect(201);
    assert!(on_disk(&s, "branches/b/t/j/f").is_none());
    assert_eq!(journal_lines(&s), 2);
    s.stop();
    expect_on_disk(&s, "branches/b/t/j/f", json!({"a.txt": sha256_digest(b"a")}));
    expect_on_disk(&s, "branches/b/t/j/g", json!({"b.txt": sha256_digest(b"b")}));
    assert_eq!(journal_lines(&s), 0);
}

#[test]
fn a_kill_loses_nothing_and_stale_lines_are_not_replayed() {
    let mut s = Server::start_with(&[NEVER]);
    for (name, data) in [("a.txt", "a"), ("b.txt", "b"), ("c.txt", "c"), ("gone.txt", "g")] {
        s.put_file(&format!("/branches/b/t/j/f/{name}"), data.as_bytes())
            .expect(201);
    }
    // An overwrite: the later line wins.
    s.put_file("/branches/b/t/j/f/a.txt", b"A").expect(201);
    s.req("PUT", "/branches/b/t2/j/f/linked.txt")
        .header("Digest", &sha256_digest(b"b"))
        .header("X-Dlrepo-Link", &sha256_digest(b"b"))
        .send()
        .expect(201);
    assert!(on_disk(&s, "branches/b/t/j/f").is_none());
    s.kill();
    // Changes made while the server was down: a file removed, one replaced
    // by hand (no longer the blob its line names), garbage in the journal.
    std::fs::remove_file(s.path("branches/b/t/j/f/gone.txt")).unwrap();
    let c = s.path("branches/b/t/j/f/c.txt");
    std::fs::remove_file(&c).unwrap();
    std::fs::write(&c, "hand-made").unwrap();
    let journal = std::fs::read_dir(s.path(".dlrepo-rs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("digests-journal."))
        .expect("a journal file");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(
        b"\0\0not json\n[\"../../etc\", \"x\", \"sha256:00\", \".blobs/x\"]\n[\"branches/b/t/j/f\", \"a.txt\"",
    );
    std::fs::write(&journal, bytes).unwrap();

    let s2 = Server::restart_copy(&s, &[NEVER]);
    assert!(s2.wait_log("journal replay: restored 3", 1), "replay not logged");
    expect_on_disk(
        &s2,
        "branches/b/t/j/f",
        json!({"a.txt": sha256_digest(b"A"), "b.txt": sha256_digest(b"b")}),
    );
    expect_on_disk(&s2, "branches/b/t2/j/f", json!({"linked.txt": sha256_digest(b"b")}));
    assert_eq!(files(&s2, "/branches/b/t/j/f/"), json!(["a.txt", "b.txt"]));
    assert_eq!(journal_lines(&s2), 0);
}

#[test]
fn locking_hashes_the_written_back_digests() {
    let s = Server::start_with(&[NEVER]);
    s.put_file("/branches/b/t/j/f/a.txt", b"a").expect(201);
    s.req("PATCH", "/branches/b/t/j/f/").send().expect(200);
    s.lock_job("/branches/b/t/j/").expect(200);
    let digests = std::fs::read(s.path("branches/b/t/j/f/.digests")).expect("written by the lock");
    assert_eq!(
        digests,
        format!("{{\"a.txt\": \"{}\"}}", sha256_digest(b"a")).into_bytes()
    );
    let h = |p: &str| sha256_hex(&std::fs::read(s.path(p)).unwrap());
    let map = format!(
        r#"{{".metadata": "sha256:{}", "f": "sha256:{}"}}"#,
        h("branches/b/t/j/.metadata"),
        h("branches/b/t/j/f/.digests")
    );
    let digest = std::fs::read_to_string(s.path("branches/b/t/j/.digest")).unwrap();
    assert_eq!(digest, sha256_hex(map.as_bytes()));
}

#[test]
fn products_and_archives_see_what_is_not_written_back() {
    let s = Server::start_with(&[NEVER]);
    s.put_file("/branches/b/t/j/f/a.txt", b"a").expect(201);
    s.req("PATCH", "/branches/b/t/j/")
        .json(r#"{"job": {"product": "p", "product_variant": "v", "product_branch": "pb", "version": "1"}}"#)
        .send()
        .expect(200);
    s.put_file("/branches/b/t/j/f/b.txt", b"b").expect(201);
    assert!(on_disk(&s, "branches/b/t/j/f").is_none());
    assert_eq!(files(&s, "/products/p/v/pb/1/f/"), json!(["a.txt", "b.txt"]));
    let r = s.get("/products/p/v/pb/1/f/b.txt");
    assert_eq!(r.header("digest"), Some(sha256_digest(b"b").as_str()));
    s.req("PATCH", "/branches/b/t/j/f/").send().expect(200);
    let tar = s.get("/products/p/v/pb/1.tar");
    tar.expect(200);
    let names = String::from_utf8_lossy(&tar.body).into_owned();
    assert!(names.contains("f/a.txt") && names.contains("f/b.txt"), "tar members");
}

#[test]
fn a_deleted_format_stays_deleted_after_a_kill() {
    let mut s = Server::start_with(&[NEVER]);
    s.put_file("/branches/b/t/j/f/a.txt", b"a").expect(201);
    s.delete("/branches/b/t/j/f/").expect(200);
    s.put_file("/branches/b/t/j/f/b.txt", b"b").expect(201);
    assert_eq!(files(&s, "/branches/b/t/j/f/"), json!(["b.txt"]));
    s.kill();
    let s2 = Server::restart_copy(&s, &[NEVER]);
    assert_eq!(files(&s2, "/branches/b/t/j/f/"), json!(["b.txt"]));
    expect_on_disk(&s2, "branches/b/t/j/f", json!({"b.txt": sha256_digest(b"b")}));
}

#[test]
fn a_kill_during_post_process_loses_nothing() {
    // The command replaces shared files by private copies, which a journal
    // line can no longer vouch for: the index must be on disk before it runs.
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("started");
    let script = dir.path().join("post-process");
    std::fs::write(&script, format!("#!/bin/sh\ntouch '{}'\nsleep 60\n", mark.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cmd = script.to_string_lossy().into_owned();
    let mut s = Server::start_with(&[NEVER, ("DLREPO_POST_PROCESS_CMD", &cmd)]);
    s.put_file("/branches/b/t/j/f/a.txt", b"a").expect(201);
    let mut conn = s.connect();
    conn.write_all(b"PATCH /branches/b/t/j/f/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    wait_until("the post-process command to start", || mark.exists());
    s.kill();
    let s2 = Server::restart_copy(&s, &[NEVER]);
    assert_eq!(files(&s2, "/branches/b/t/j/f/"), json!(["a.txt"]));
}

#[test]
fn concurrent_uploads_into_one_format_survive_a_kill_amid_checkpoints() {
    // Checkpoints run every few milliseconds while 8 clients upload into
    // the same format, so some journal lines are written after the
    // checkpoint that covers them has started. A kill then must lose none.
    let mut s = Server::start_with(&[("DLREPO_DIGESTS_FLUSH_DELAY_MS", "3")]);
    upload_from_clients(&s, "/branches/b/t/j/f", 8, 40);
    s.kill();
    let s2 = Server::restart_copy(&s, &[NEVER]);
    s2.flush();
    expect_on_disk(&s2, "branches/b/t/j/f", client_digests(8, 40));
}

/// `clients` threads each upload `each` files `t<client>-<i>.txt` (whose
/// content is their name) into the format at `url`.
fn upload_from_clients(s: &Server, url: &str, clients: usize, each: usize) {
    std::thread::scope(|sc| {
        for t in 0..clients {
            sc.spawn(move || {
                for i in 0..each {
                    let name = format!("t{t}-{i}.txt");
                    s.put_file(&format!("{url}/{name}"), name.as_bytes()).expect(201);
                }
            });
        }
    });
}

/// The index [`upload_from_clients`] leaves.
fn client_digests(clients: usize, each: usize) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = (0..clients)
        .flat_map(|t| (0..each).map(move |i| format!("t{t}-{i}.txt")))
        .map(|name| {
            let digest = sha256_digest(name.as_bytes());
            (name, json!(digest))
        })
        .collect();
    serde_json::Value::Object(map)
}

#[test]
fn a_journal_that_refuses_lines_falls_back_to_writing_the_index() {
    // Concurrent uploads by one user into one format while every journal
    // append fails: each upload writes the index itself instead, and none
    // may wait forever on another (the fallback takes the format lock).
    let tmp = tempfile::tempdir().unwrap();
    let fail = tmp.path().join("fail");
    std::fs::write(&fail, b"").unwrap();
    let s = Server::start_with(&[NEVER, ("DLREPO_TEST_JOURNAL_FAIL", fail.to_str().unwrap())]);
    upload_from_clients(&s, "/~alice/branches/b/t/j/f", 4, 10);
    // Written at once, without any checkpoint.
    expect_on_disk(&s, "users/alice/branches/b/t/j/f", client_digests(4, 10));
    assert_eq!(journal_lines(&s), 0);
}
