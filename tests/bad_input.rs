//! Hostile and malformed requests: each gets a clear error, nothing is
//! written, and the server keeps serving.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn assert_nothing_written(s: &Server) {
    let tree = s.tree();
    let allowed = |l: &str| {
        l.starts_with("branches/b/")
            || l == "branches/"
            || l.starts_with(".blobs")
            || l.starts_with(".uploads")
            || l.starts_with(".dlrepo-rs")
    };
    let stray: Vec<&String> = tree.iter().filter(|l| !allowed(l)).collect();
    assert!(stray.is_empty(), "unexpected entries: {stray:?}");
    let staging = std::fs::read_dir(s.path(".uploads")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(staging, 0, "staging files left");
}

#[test]
fn path_traversal_in_every_form() {
    let s = Server::start();
    s.put_file("/branches/b/t/j/f/ok", b"ok").expect(201);
    for path in [
        "/branches/../t/j/f/a",
        "/branches/%2e%2e/t/j/f/a",
        "/branches/b/%2E%2E/j/f/a",
        "/branches/b/t/../f/a",
        "/branches/b/t/j/%2e%2e/a",
        "/branches/.x/t/j/f/a",
        "/branches/b/.t/j/f/a",
        "/branches/b/t/.j/f/a",
        "/branches/b/t/j/.f/a",
        "/~../branches/b/t/j/f/a",
        "/~./branches/b/t/j/f/a",
        "/~.hidden/branches/b/t/j/f/a",
        "/%7e../branches/b/t/j/f/a",
    ] {
        let r = s.put_file(path, b"evil");
        assert_eq!(r.status, 404, "PUT {path}: {} {}", r.status, r.text());
        let r = s.get(path);
        assert_eq!(r.status, 404, "GET {path}: {}", r.status);
    }
    for (path, reason) in [
        (
            "/branches/b/t/j/f/../../../../../etc/passwd",
            "../../../../../etc/passwd",
        ),
        ("/branches/b/t/j/f/%2e%2e/%2e%2e/x", "../../x"),
        ("/branches/b/t/j/f/a/%2E%2E%2Fb", "a/../b"),
        ("/branches/b/t/j/f//etc/passwd", "/etc/passwd"),
        ("/branches/b/t/j/f/./x", "./x"),
        ("/branches/b/t/j/f/.digests", ".digests"),
        ("/branches/b/t/j/f/.dirty", ".dirty"),
    ] {
        s.put_file(path, b"evil").expect_error(400, reason);
        s.get(path).expect_error(400, reason);
    }
    // NUL bytes and invalid UTF-8 never reach the file system.
    s.put_file("/branches/b/t/j/f/a%00b", b"evil").expect(400);
    s.put_file("/branches/b/t/j/f/a%ffb", b"evil").expect(404);
    s.get("/~../branches/").expect(404);
    s.get("/~%2e%2e/branches/").expect(404);
    assert_nothing_written(&s);
    assert!(!std::path::Path::new(&s.root).join("../etc").exists());
}

#[test]
fn oversized_headers_are_refused() {
    let s = Server::start();
    let mut c = s.connect();
    let big = "x".repeat(100_000);
    // The server may answer and close before the whole head is sent, so a
    // write error (broken pipe, reset) is expected; the 431 is still readable.
    let _ = write!(c, "GET /branches/ HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "got {:?}", text.lines().next());
    s.get("/branches/").expect(200);
}

#[test]
fn stalled_upload_bodies_get_408_and_leave_nothing() {
    let s = Server::start_with(&[("DLREPO_BODY_TIMEOUT", "1")]);
    for (framing, first_part) in [
        ("Content-Length: 100000\r\n", b"part of the body".to_vec()),
        ("Transfer-Encoding: chunked\r\n", b"10\r\npart of the body\r\n".to_vec()),
    ] {
        let mut c = s.connect();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "PUT /branches/b/t/j/f/stalled HTTP/1.1\r\nHost: x\r\nDigest: {}\r\n{framing}\r\n",
            sha256_digest(b"x")
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&first_part).unwrap();
        let mut r = std::io::BufReader::new(c);
        let resp = read_response(&mut r, "PUT");
        resp.expect_error(408, "request body timed out");
    }
    s.get("/branches/b/t/j/f/stalled").expect(404);
    // The staging files go once their requests end, just after the answers.
    wait_until("the staging files to go", || s.staging_files() == 0);
    assert_nothing_written(&s);
}

#[test]
fn slow_clients_are_cut_off_after_the_header_timeout() {
    let s = Server::start_with(&[("DLREPO_HEADER_TIMEOUT", "1")]);
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /branches/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "connection not closed after the timeout ({waited:?})"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    s.get("/branches/").expect(200);
}

#[test]
fn malformed_requests_get_400() {
    let s = Server::start();
    let mut c = s.connect();
    c.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    // Bad chunked encoding mid-upload: the upload is dropped.
    let mut c = s.connect();
    write!(
        c,
        "PUT /branches/b/t/j/f/a HTTP/1.1\r\nHost: x\r\nDigest: {}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n",
        sha256_digest(b"hello")
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("201"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    wait_until("the staging file to go", || s.staging_files() == 0);
    assert!(!s.path("branches").exists());
    s.get("/branches/").expect(200);
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

#[test]
fn invalid_json_bodies() {
    let s = Server::start();
    s.put_file("/branches/b/t/j/f/ok", b"ok").expect(201);
    for body in ["", "{", "nul", "{\"branch\": }"] {
        let r = s.req("POST", "/branches/b/").json(body).send();
        r.expect(400);
        assert!(r.reason.starts_with("invalid JSON data:"), "{body:?}: {}", r.reason);
    }
    assert!(!s.path("branches/b/.cleanup_policy").exists());
}

#[test]
fn unknown_routes_and_registry_placeholder() {
    let s = Server::start();
    s.get("/nope").expect_error(404, "Not Found");
    s.get("/v2").expect(404);
    s.get("/branches//").expect(404);
    s.get("/branches/a{b}/").expect(404);
}

#[test]
fn upload_paths_that_would_break_a_format_or_cannot_exist() {
    let s = Server::start();
    s.put_file("/branches/b/t/j/f/ok", b"ok").expect(201);
    s.req("PATCH", "/branches/b/t/j/f/").send().expect(200);
    let long = "n".repeat(256);
    for path in [
        // Would turn the index, or the dirty flag (gone after the PATCH),
        // into a folder.
        ".digests/x",
        ".dirty/x",
        // Names a folder, not a file.
        "newdir/",
        &format!("dir/{long}"),
    ] {
        s.put_file(&format!("/branches/b/t/j/f/{path}"), b"x")
            .expect_error(400, path);
        s.put_file(&format!("/branches/b/t/j/g/{path}"), b"x")
            .expect_error(400, path);
    }
    // Each part fits, the whole is longer than any path the kernel takes:
    // refused before any folder (or tag) is created.
    let deep = vec!["d".repeat(250); 17].join("/");
    let r = s.put_file(&format!("/branches/b/t2/j/f/{deep}"), b"x");
    r.expect(400);
    // The status line quotes the start of so long a path; the body all of it.
    assert_eq!(r.text(), format!("400: {deep}"));
    assert!(r.reason.ends_with('…') && deep.starts_with(r.reason.trim_end_matches('…')));
    assert!(!s.path("branches/b/t2").exists());
    // Names too long for the file system do not exist.
    s.put_file(&format!("/branches/b/t/{long}/f/a"), b"x").expect(404);
    s.get(&format!("/branches/b/t/j/f/{long}")).expect(404);
    s.get(&format!("/branches/b/t/{long}/f/a")).expect(404);
    s.req("HEAD", "/branches/b/t/j/f/a")
        .header("Digest", &format!("sha256:{}", "a".repeat(300)))
        .send()
        .expect(404);
    assert!(!s.path("branches/b/t/j/g").exists());
    assert!(!s.path("branches/b/t/j/f/.dirty").exists());
    assert!(s.path("branches/b/t/j/f/.digests").is_file());
    assert_eq!(
        s.get("/branches/b/t/j/f/").json()["artifact_format"]["files"],
        serde_json::json!(["ok"])
    );
    assert_nothing_written(&s);
}
