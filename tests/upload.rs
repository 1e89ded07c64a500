//! Uploads: both paths, digests, chunked bodies, overwrites, and what a
//! refused upload leaves behind (nothing).

mod common;

use common::*;
use std::io::{BufReader, Write};

#[test]
fn upload_creates_blob_link_digests_and_dirty() {
    let s = Server::start();
    let data = b"hello world\n";
    s.put_file("/branches/Main/T1/Job1/Fmt/dir/File.txt", data)
        .expect(201)
        .text()
        .eq("201: Created")
        .then_some(())
        .expect("body is 201: Created");
    let hex = sha256_hex(data);
    let blob = s.path(&format!(".blobs/sha256/{}/{}", &hex[..2], hex));
    let art = s.path("branches/main/t1/job1/fmt/dir/File.txt");
    assert_eq!(std::fs::read(&art).unwrap(), data);
    assert_eq!(nlink(&blob), 2, "artifact is a hard link to its blob");
    s.flush();
    assert_eq!(file_mode(&blob), 0o644);
    assert_eq!(file_mode(&s.path(".blobs/sha256")), 0o755);
    assert_eq!(
        std::fs::read_to_string(s.path("branches/main/t1/job1/fmt/.digests")).unwrap(),
        format!("{{\"dir/File.txt\": \"sha256:{hex}\"}}")
    );
    assert!(s.path("branches/main/t1/job1/fmt/.dirty").exists());
    assert!(s.path("branches/main/t1/.stamp").exists());
    assert!(s.path("branches/main/t1/job1/.stamp").exists());
    assert!(!s.path("branches/main/.stamp").exists(), "branches have no stamp");
    assert!(
        !s.path("branches/main/t1/job1/fmt/.stamp").exists(),
        "formats have no stamp"
    );
    // No staging file is left.
    assert_eq!(std::fs::read_dir(s.path(".uploads")).unwrap().count(), 0);
}

#[test]
fn digest_is_stored_verbatim_and_echoed() {
    let s = Server::start();
    let data = b"abc";
    let upper = format!("SHA256:{}", sha256_hex(data).to_uppercase());
    s.req("PUT", "/branches/b/t/j/f/upper.txt")
        .header("Digest", &upper)
        .body(data)
        .send()
        .expect(201);
    s.flush();
    let digests = std::fs::read_to_string(s.path("branches/b/t/j/f/.digests")).unwrap();
    assert_eq!(digests, format!("{{\"upper.txt\": \"{upper}\"}}"));
    let r = s.get("/branches/b/t/j/f/upper.txt");
    r.expect(200);
    assert_eq!(r.header("digest"), Some(upper.as_str()));
    assert_eq!(r.body, data);
    // The blob path is lowercase.
    let hex = sha256_hex(data);
    assert!(s.path(&format!(".blobs/sha256/{}/{hex}", &hex[..2])).exists());
}

#[test]
fn non_ascii_names_are_escaped_like_python() {
    let s = Server::start();
    s.put_file("/branches/b/t/j/f/%C3%9Cn%C3%AF", b"x").expect(201);
    s.put_file("/branches/b/t/j/f/a%20b", b"y").expect(201);
    s.flush();
    let digests = std::fs::read_to_string(s.path("branches/b/t/j/f/.digests")).unwrap();
    assert_eq!(
        digests,
        format!(
            "{{\"a b\": \"{}\", \"\\u00dcn\\u00ef\": \"{}\"}}",
            sha256_digest(b"y"),
            sha256_digest(b"x")
        )
    );
    s.get("/branches/b/t/j/f/%C3%9Cn%C3%AF").expect(200);
}

#[test]
fn chunked_frames_of_mixed_sizes_keep_their_order() {
    // Sent one chunk at a time, so the server gets frames of these sizes:
    // small ones it passes on as they are, small ones it gathers by
    // copying, and large ones, interleaved.
    let s = Server::start();
    let sizes = [
        3usize, 5, 40_000, 2, 1, 1, 1, 1, 1, 70_000, 9, 9, 9, 9, 9, 9, 600_000, 1, 7,
    ];
    let total: usize = sizes.iter().sum();
    let data: Vec<u8> = (0..total).map(|i| (i * 7 % 253) as u8).collect();
    let mut c = s.connect();
    write!(
        c,
        "PUT /branches/b/t/j/f/mixed.bin HTTP/1.1\r\nHost: x\r\nDigest: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        sha256_digest(&data)
    )
    .unwrap();
    let mut at = 0;
    for n in sizes {
        write!(c, "{n:x}\r\n").unwrap();
        c.write_all(&data[at..at + n]).unwrap();
        c.write_all(b"\r\n").unwrap();
        c.flush().unwrap();
        at += n;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    c.write_all(b"0\r\n\r\n").unwrap();
    let r = read_response(&mut std::io::BufReader::new(c), "PUT");
    r.expect(201);
    assert_eq!(s.get("/branches/b/t/j/f/mixed.bin").body, data);
}

#[test]
fn chunked_body_and_expect_continue() {
    let s = Server::start();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    s.req("PUT", "/branches/b/t/j/f/chunked.bin")
        .header("Digest", &sha256_digest(&data))
        .body(&data)
        .chunked()
        .send()
        .expect(201);
    assert_eq!(s.get("/branches/b/t/j/f/chunked.bin").body, data);

    // Expect: 100-continue: the server must answer 100 before we send the body.
    let mut c = s.connect();
    let body = b"continued";
    write!(
        c,
        "PUT /branches/b/t/j/f/cont.txt HTTP/1.1\r\nHost: x\r\nDigest: {}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        sha256_digest(body),
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "got {line:?}");
    let mut blank = String::new();
    std::io::BufRead::read_line(&mut r, &mut blank).unwrap();
    c.write_all(body).unwrap();
    read_response(&mut r, "PUT").expect(201);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = Server::start();
    let mut c = s.connect();
    let mut r = BufReader::new(c.try_clone().unwrap());
    for i in 0..5 {
        let body = format!("file {i}");
        write!(
            c,
            "PUT /branches/b/t/j/f/{i}.txt HTTP/1.1\r\nHost: x\r\nDigest: {}\r\nContent-Length: {}\r\n\r\n{body}",
            sha256_digest(body.as_bytes()),
            body.len()
        )
        .unwrap();
        read_response(&mut r, "PUT").expect(201);
    }
    // Pipelined GETs are answered in order.
    for i in 0..5 {
        write!(c, "GET /branches/b/t/j/f/{i}.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    }
    for i in 0..5 {
        let resp = read_response(&mut r, "GET");
        resp.expect(200);
        assert_eq!(resp.text(), format!("file {i}"));
    }
    // HTTP/1.0 works too.
    let mut c = s.connect();
    write!(c, "GET /branches/b/t/j/f/0.txt HTTP/1.0\r\n\r\n").unwrap();
    let resp = read_response(&mut BufReader::new(c), "GET");
    resp.expect(200);
    assert_eq!(resp.text(), "file 0");
}

#[test]
fn link_only_put_and_head_with_digest() {
    let s = Server::start();
    let data = b"shared content";
    let d = sha256_digest(data);
    // Unknown blob: HEAD 404, link-only PUT 404, nothing created.
    s.req("HEAD", "/branches/b/t/j/f/x")
        .header("Digest", &d)
        .send()
        .expect(404);
    s.req("PUT", "/branches/b/t/j/f/x")
        .header("Digest", &d)
        .header("X-Dlrepo-Link", &d)
        .send()
        .expect(404);
    assert!(
        !s.path("branches").exists(),
        "a refused link creates nothing: {:?}",
        s.tree()
    );

    s.put_file("/branches/b/t/j/f/a.bin", data).expect(201);
    let hex = sha256_hex(data);
    let blob = s.path(&format!(".blobs/sha256/{}/{hex}", &hex[..2]));
    // Age the blob, then HEAD must renew its lease (touch).
    set_old_mtime(&blob);
    let before = std::fs::metadata(&blob).unwrap().modified().unwrap();
    let r = s
        .req("HEAD", "/branches/no/such/job/fmt/anything")
        .header("Digest", &d)
        .send();
    r.expect(200);
    assert_eq!(r.header("digest"), Some(d.as_str()));
    assert_eq!(r.header("content-length"), Some(data.len().to_string().as_str()));
    assert!(
        std::fs::metadata(&blob).unwrap().modified().unwrap() > before,
        "HEAD touches the blob"
    );

    s.req("PUT", "/branches/b/t2/j/f/linked.bin")
        .header("Digest", &d)
        .header("X-Dlrepo-Link", &d)
        .send()
        .expect(201);
    assert_eq!(nlink(&blob), 3);
    assert_eq!(s.get("/branches/b/t2/j/f/linked.bin").body, data);
    s.flush();
    let digests = std::fs::read_to_string(s.path("branches/b/t2/j/f/.digests")).unwrap();
    assert_eq!(digests, format!("{{\"linked.bin\": \"{d}\"}}"));
}

fn set_old_mtime(p: &std::path::Path) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
}

#[test]
fn refused_uploads_leave_nothing_behind() {
    let s = Server::start();
    // No Digest: the answer says what to send.
    s.req("PUT", "/branches/b/t/j/f/a")
        .body(b"data")
        .send()
        .expect_error(422, r#"missing Digest header: send "Digest: sha256:<64 hex digits>""#);
    // Invalid digests quote the lowercased value.
    s.req("PUT", "/branches/b/t/j/f/a")
        .header("Digest", "FOO")
        .body(b"data")
        .send()
        .expect_error(422, "invalid digest: foo");
    s.req("PUT", "/branches/b/t/j/f/a")
        .header("Digest", "")
        .body(b"data")
        .send()
        .expect_error(422, "invalid digest: ");
    s.req("PUT", "/branches/b/t/j/f/a")
        .header("Digest", "shake_128:abcd")
        .body(b"data")
        .send()
        .expect_error(422, "invalid digest: shake_128:abcd");
    // Mismatch.
    let wrong = sha256_digest(b"other");
    s.req("PUT", "/branches/b/t/j/f/a")
        .header("Digest", &wrong)
        .body(b"data")
        .send()
        .expect_error(422, &format!("Received data does not match digest: {wrong}"));
    assert!(!s.path("branches").exists(), "tree: {:?}", s.tree());
    assert!(!s.path(".blobs").exists() || std::fs::read_dir(s.path(".blobs")).unwrap().count() == 0);
    let staging: Vec<_> = std::fs::read_dir(s.path(".uploads"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(staging.is_empty(), "staging files left: {staging:?}");

    // A refusal in an existing format leaves the format as it was (not dirty).
    s.put_file("/branches/b/t/j/f/ok", b"ok").expect(201);
    s.req("PATCH", "/branches/b/t/j/f/").send().expect(200);
    let d = sha256_digest(b"missing");
    s.req("PUT", "/branches/b/t/j/f/x")
        .header("Digest", &d)
        .header("X-Dlrepo-Link", &d)
        .send()
        .expect(404);
    assert!(!s.path("branches/b/t/j/f/.dirty").exists());
    assert!(!s.path("branches/b/t/j/f/x").exists());
}

#[test]
fn overwrite_replaces_atomically_and_same_content_leaves_no_temp() {
    let s = Server::start();
    s.put_file("/branches/b/t/j/f/a.txt", b"one").expect(201);
    s.put_file("/branches/b/t/j/f/a.txt", b"two").expect(201);
    assert_eq!(s.get("/branches/b/t/j/f/a.txt").body, b"two");
    // Same content again: rename between two links of one inode is a no-op.
    s.put_file("/branches/b/t/j/f/a.txt", b"two").expect(201);
    s.flush();
    let names: Vec<String> = std::fs::read_dir(s.path("branches/b/t/j/f"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, vec![".digests", ".dirty", "a.txt"]);
    let hex = sha256_hex(b"two");
    assert_eq!(nlink(&s.path(&format!(".blobs/sha256/{}/{hex}", &hex[..2]))), 2);
    // The old blob is now an orphan (1 link).
    let old = sha256_hex(b"one");
    assert_eq!(nlink(&s.path(&format!(".blobs/sha256/{}/{old}", &old[..2]))), 1);
}

#[test]
fn put_onto_a_directory_or_through_a_file_is_a_conflict() {
    let s = Server::start();
    s.put_file("/branches/b/t/j/f/dir/x.txt", b"x").expect(201);
    let r = s.put_file("/branches/b/t/j/f/dir", b"y");
    r.expect(409);
    assert!(s.path("branches/b/t/j/f/dir/x.txt").exists());
    s.put_file("/branches/b/t/j/f/dir/x.txt/sub", b"z").expect(409);
    s.flush();
    let digests = std::fs::read_to_string(s.path("branches/b/t/j/f/.digests")).unwrap();
    assert_eq!(digests, format!("{{\"dir/x.txt\": \"{}\"}}", sha256_digest(b"x")));
}

#[test]
fn container_uploads_need_the_server_user_agent() {
    let s = Server::start();
    s.put_file("/branches/b/t/j/container/x", b"x")
        .expect_error(400, "Uploading container images must be done with docker push");
    s.req("PUT", "/branches/b/t/j/container/x")
        .header("Digest", &sha256_digest(b"x"))
        .header("User-Agent", "dlrepo-server/1.0")
        .body(b"x")
        .send()
        .expect(201);
}

#[test]
fn concurrent_uploads_into_one_format_all_land_in_digests() {
    let s = Server::start();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let port = s.port;
            std::thread::spawn(move || {
                let body = format!("content {i}");
                let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(
                    c,
                    "PUT /branches/b/t/j/f/{i}.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nDigest: {}\r\nContent-Length: {}\r\n\r\n{body}",
                    sha256_digest(body.as_bytes()),
                    body.len()
                )
                .unwrap();
                read_response(&mut BufReader::new(c), "PUT").status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 201);
    }
    s.flush();
    let digests: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("branches/b/t/j/f/.digests")).unwrap()).unwrap();
    assert_eq!(digests.as_object().unwrap().len(), 16);
}

/// Whether this kernel lets the server link an `O_TMPFILE` by descriptor:
/// as root always, otherwise from Linux 6.10 on.
fn unnamed_files_expected() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    nix::unistd::geteuid().is_root() || (major, minor) >= (6, 10)
}

#[test]
fn durable_uploads_stage_in_named_files() {
    // With DLREPO_FSYNC=1 the staging file is a name in `.uploads`, which
    // the rename into the blob store keeps at one link on disk.
    let s = Server::start_with(&[("DLREPO_FSYNC", "1")]);
    let c = s.begin_put("/branches/b/t/j/f/big", 1_000_000, 50_000);
    wait_until("a staging file", || s.staging_files() > 0);
    assert_eq!(std::fs::read_dir(s.path(".uploads")).unwrap().count(), 1);
    drop(c);
    wait_until("the staging file to go", || s.staging_files() == 0);
    s.put_file("/branches/b/t/j/f/ok", b"ok").expect(201);
    assert_eq!(s.get("/branches/b/t/j/f/ok").body, b"ok");
}

#[test]
fn disconnect_mid_upload_removes_the_staging_file() {
    let s = Server::start();
    let c = s.begin_put("/branches/b/t/j/f/big", 1_000_000, 50_000);
    // Wait until the staging file exists, then hang up.
    wait_until("a staging file", || s.staging_files() > 0);
    if unnamed_files_expected() {
        // It has no name: a crash could not leave it behind either.
        assert_eq!(std::fs::read_dir(s.path(".uploads")).unwrap().count(), 0);
    }
    drop(c);
    wait_until("the staging file to go", || s.staging_files() == 0);
    assert!(!s.path("branches").exists());
    // The server is still fine.
    s.put_file("/branches/b/t/j/f/ok", b"ok").expect(201);
}

#[test]
fn uploads_into_locked_jobs_are_refused_except_internal_formats() {
    let s = Server::start_with(&[("DLREPO_INTERNAL_FORMAT_FILTER", "debug")]);
    s.put_file("/branches/b/t/j/f/a", b"a").expect(201);
    // Locked through the API: refused at once, however recently the job was
    // seen unlocked.
    s.req("PATCH", "/branches/b/t/j/f/").send().expect(200);
    s.lock_job("/branches/b/t/j/").expect(200);
    s.put_file("/branches/b/t/j/f/b", b"b")
        .expect_error(400, "Cannot upload files in locked jobs");
    s.req("POST", "/branches/b/t/j/")
        .json(r#"{"job": {"locked": false}}"#)
        .send()
        .expect(200);
    s.put_file("/branches/b/t/j/f/b", b"b").expect(201);
    // Locked by hand: seen after SIGHUP, which drops the tree caches.
    s.req("PATCH", "/branches/b/t/j/f/").send().expect(200);
    std::fs::write(s.path("branches/b/t/j/.locked"), b"").unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(s.wait_log("dropped the tree caches", 1));
    s.put_file("/branches/b/t/j/f/c", b"c")
        .expect_error(400, "Cannot upload files in locked jobs");
    s.put_file("/branches/b/t/j/debug/b", b"b").expect(201);
    // Locked or released tags do not block uploads.
    std::fs::write(s.path("branches/b/t/.locked"), b"").unwrap();
    std::fs::write(s.path("branches/b/t/.released"), b"").unwrap();
    s.put_file("/branches/b/t/j2/f/c", b"c").expect(201);
}

#[test]
fn fsync_mode_uploads_work() {
    let s = Server::start_with(&[("DLREPO_FSYNC", "1")]);
    for i in 0..4 {
        s.put_file(&format!("/branches/b/t/j/f/{i}"), format!("{i}").as_bytes())
            .expect(201);
    }
    assert_eq!(s.get("/branches/b/t/j/f/3").text(), "3");
}

#[test]
fn other_python_hash_algorithms_are_verified() {
    let s = Server::start();
    let md5 = "md5:900150983cd24fb0d6963f7d28e17f72";
    s.req("PUT", "/branches/b/t/j/f/abc")
        .header("Digest", md5)
        .body(b"abc")
        .send()
        .expect(201);
    assert!(s.path(".blobs/md5/90/900150983cd24fb0d6963f7d28e17f72").exists());
    assert_eq!(s.get("/branches/b/t/j/f/abc").header("digest"), Some(md5));
    s.req("PUT", "/branches/b/t/j/f/abd")
        .header("Digest", md5)
        .body(b"abd")
        .send()
        .expect_error(422, &format!("Received data does not match digest: {md5}"));
    s.req("PUT", "/branches/b/t/j/f/x")
        .header(
            "Digest",
            "blake2s:508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
        )
        .body(b"abc")
        .send()
        .expect(201);
    // The .sha256 listings leave other algorithms out.
    assert_eq!(s.get("/branches/b/t/j/f.sha256").text(), "");
}
