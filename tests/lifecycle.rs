//! Job metadata, lock/unlock/internal, the products view, format digests,
//! archives, finalisation with a post-process command.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;

fn patch_job(s: &Server, path: &str, body: &str) -> Response {
    s.req("PATCH", path).json(body).send()
}

#[test]
fn metadata_patch_coerces_values_and_creates_the_job() {
    let s = Server::start();
    patch_job(
        &s,
        "/branches/b/t/j/",
        r#"{"job": {"Name": "FooBar", "n": 5, "f": 1.5, "yes": true, "l": [1, "A"], "d": {"K": "V"}, "gone": null}}"#,
    )
    .expect(200);
    assert!(s.path("branches/b/t/.stamp").exists() && s.path("branches/b/t/j/.stamp").exists());
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/t/j/.metadata")).unwrap(),
        r#"{"Name": "foobar", "d": "{'k': 'v'}", "f": "1.5", "l": "[1, 'a']", "n": "5", "yes": "true"}"#
    );
    patch_job(
        &s,
        "/branches/b/t/j/",
        r#"{"job": {"n": 0, "yes": false, "l": "", "new": "X"}}"#,
    )
    .expect(200);
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/t/j/.metadata")).unwrap(),
        r#"{"Name": "foobar", "d": "{'k': 'v'}", "f": "1.5", "new": "x"}"#
    );
    let j = s.get("/branches/b/t/j/").json();
    assert_eq!(j["job"]["Name"], "foobar");
    for bad in [r#"{"job": 1}"#, r#"{"nope": {}}"#, "[]"] {
        patch_job(&s, "/branches/b/t/j/", bad).expect_error(400, "Invalid parameters");
    }
    std::fs::write(s.path("branches/b/t/j/.locked"), "").unwrap();
    patch_job(&s, "/branches/b/t/j/", r#"{"job": {"a": "b"}}"#).expect_error(400, "Job is locked");
    s.req("PATCH", "/branches/b/latest/j/")
        .json(r#"{"job": {}}"#)
        .send()
        .expect(405);
}

/// An upload past its lock check (here held there by the debug-only hook)
/// may be about to create a format the lock request cannot see yet: the
/// lock waits for it, and refuses new uploads meanwhile.
#[test]
fn a_lock_request_waits_for_uploads_past_their_check() {
    let h = LinkHold::start();
    let s = &h.server;
    s.put("/branches/b/t/j/f1/a", "a");
    s.req("PATCH", "/branches/b/t/j/f1/").send().expect(200);
    let lock = |s: &Server| s.lock_job("/branches/b/t/j/");
    h.engage();
    std::thread::scope(|sc| {
        let upload = sc.spawn(|| s.put_file("/branches/b/t/j/f2/new", b"new"));
        h.wait_paused();
        assert!(!s.path("branches/b/t/j/f2").exists(), "held before the format exists");
        let locker = sc.spawn(|| lock(s));
        assert!(s.wait_log("waiting for uploads still linking", 1));
        // Until the lock request knows the outcome, new uploads are refused.
        s.put_file("/branches/b/t/j/f3/x", b"x")
            .expect_error(400, "Cannot upload files in locked jobs");
        assert!(!locker.is_finished(), "the lock did not wait for the upload");
        h.release();
        upload.join().unwrap().expect(201);
        locker.join().unwrap().expect_error(400, "Job has dirty formats");
    });
    assert!(!s.path("branches/b/t/j/.locked").exists());
    s.req("PATCH", "/branches/b/t/j/f2/").send().expect(200);
    lock(s).expect(200);
    s.put_file("/branches/b/t/j/f2/late", b"late")
        .expect_error(400, "Cannot upload files in locked jobs");
}

#[test]
fn internal_flag_lock_digest_and_unlock() {
    let s = Server::start_with(&[("DLREPO_INTERNAL_FORMAT_FILTER", "debug")]);
    s.put("/branches/b/t/j/fmt/a.txt", "a");
    s.put("/branches/b/t/j/fmt2/b.txt", "b");
    s.put("/branches/b/t/j/debug/c.txt", "c");
    patch_job(&s, "/branches/b/t/j/", r#"{"job": {"k": "v"}}"#).expect(200);
    let lock = |s: &Server| s.lock_job("/branches/b/t/j/");
    lock(&s).expect_error(400, "Job has dirty formats");
    for f in ["fmt", "fmt2", "debug"] {
        s.req("PATCH", &format!("/branches/b/t/j/{f}/")).send().expect(200);
    }
    s.req("PUT", "/branches/b/t/j/")
        .json(r#"{"job": {"internal": true}}"#)
        .send()
        .expect(200);
    assert!(s.path("branches/b/t/j/.internal").exists());
    lock(&s).expect(200);
    assert!(s.path("branches/b/t/j/.locked").exists());
    // The digest, computed independently (docs/spec/layout.md §5.3).
    let h = |p: &str| sha256_hex(&std::fs::read(s.path(p)).unwrap());
    let map = format!(
        r#"{{".metadata": "sha256:{}", "fmt": "sha256:{}", "fmt2": "sha256:{}"}}"#,
        h("branches/b/t/j/.metadata"),
        h("branches/b/t/j/fmt/.digests"),
        h("branches/b/t/j/fmt2/.digests")
    );
    let digest = std::fs::read_to_string(s.path("branches/b/t/j/.digest")).unwrap();
    assert_eq!(digest, sha256_hex(map.as_bytes()));
    let j = s.get("/branches/b/t/j/").json();
    assert_eq!(j["job"]["digest"], digest.as_str());
    assert_eq!(j["job"]["locked"], true);
    assert_eq!(j["job"]["internal"], true);
    // Locked: no uploads (but into internal formats), no metadata, no internal change.
    s.put_file("/branches/b/t/j/fmt/x", b"x")
        .expect_error(400, "Cannot upload files in locked jobs");
    s.put_file("/branches/b/t/j/debug/x", b"x").expect(201);
    s.req("PUT", "/branches/b/t/j/")
        .json(r#"{"job": {"internal": false}}"#)
        .send()
        .expect_error(400, "Job is locked");
    lock(&s).expect(200);
    s.req("PUT", "/branches/b/t/j/")
        .json(r#"{"job": {"locked": false}}"#)
        .send()
        .expect_error(400, "Invalid parameters");
    s.req("POST", "/branches/b/t/j/")
        .json(r#"{"job": {"locked": true}}"#)
        .send()
        .expect_error(400, "Invalid parameters");
    s.req("POST", "/branches/b/t/j/")
        .json(r#"{"job": {}}"#)
        .send()
        .expect_error(400, "Invalid parameters");
    s.req("POST", "/branches/b/t/j/")
        .json(r#"{"job": {"locked": false}}"#)
        .send()
        .expect(200);
    assert!(!s.path("branches/b/t/j/.locked").exists());
    assert!(s.path("branches/b/t/j/.digest").exists(), ".digest is kept");
    s.req("POST", "/branches/b/t/nope/")
        .json(r#"{"job": {"locked": false}}"#)
        .send()
        .expect(404);
    s.req("PUT", "/branches/b/t/nope/")
        .json(r#"{"job": {}}"#)
        .send()
        .expect(200);
    assert!(!s.path("branches/b/t/nope").exists());
    s.req("PUT", "/branches/b/t/nope/")
        .json(r#"{"job": {"internal": true}}"#)
        .send()
        .expect(404);
    s.lock_job("/branches/b/t/nope/").expect(404);
}

fn product_job(s: &Server, job: &str, version: &str) {
    s.put(&format!("/branches/main/tag1/{job}/fmt/dir/File.txt"), "hello");
    s.put(&format!("/branches/main/tag1/{job}/{job}-only/x"), job);
    patch_job(
        s,
        &format!("/branches/main/tag1/{job}/"),
        &format!(r#"{{"job": {{"product": "FooBar", "product_variant": "x86", "product_branch": "1.0", "version": "{version}"}}}}"#),
    )
    .expect(200);
}

#[test]
fn product_links_and_the_products_view() {
    let s = Server::start();
    product_job(&s, "job1", "1.0.2");
    let v = "products/foobar/x86/1.0/1.0.2";
    assert_eq!(
        std::fs::read_link(s.path("branches/main/tag1/job1/.product"))
            .unwrap()
            .to_str()
            .unwrap(),
        "../../../../products/foobar/x86/1.0/1.0.2"
    );
    assert_eq!(
        std::fs::read_link(s.path(&format!("{v}/fmt")))
            .unwrap()
            .to_str()
            .unwrap(),
        "../../../../../branches/main/tag1/job1/fmt"
    );
    assert!(s.path(&format!("{v}/.stamp")).exists());
    assert_eq!(s.get("/products/").text(), r#"{"products": [{"name": "foobar"}]}"#);
    s.get("/products").expect_redirect("/products/");
    assert_eq!(
        s.get("/products/FooBar/").text(),
        r#"{"product": {"name": "foobar", "product_variants": [{"name": "x86"}]}}"#
    );
    assert_eq!(
        s.get("/products/foobar/x86/").text(),
        r#"{"product_variant": {"name": "x86", "product_branches": [{"name": "1.0"}]}}"#
    );
    let mut pb = s.get("/products/foobar/x86/1.0/").json();
    strip_timestamps(&mut pb);
    assert_eq!(
        pb,
        json!({"product_branch": {"name": "1.0", "versions": [{"name": "1.0.2", "timestamp": "T", "locked": false, "released": false, "stable": false}]}})
    );
    assert_eq!(
        s.get("/products/foobar/x86/1.0/1.0.2/").text(),
        r#"{"version": {"name": "1.0.2", "artifact_formats": ["fmt", "job1-only"]}}"#
    );
    s.get("/products/nope/").expect(404);
    s.get("/products/foobar/x86/1.0/9.9/").expect(404);
    // Aliases among versions.
    product_job(&s, "job2", "1.0.3");
    std::fs::write(s.path("branches/main/tag1/.stable"), "").unwrap();
    s.get("/products/foobar/x86/1.0/latest/")
        .expect_redirect("/products/foobar/x86/1.0/1.0.3/");
    s.get("/products/foobar/x86/1.0/stable/fmt/dir/File.txt")
        .expect_redirect("/products/foobar/x86/1.0/1.0.3/fmt/dir/File.txt");
    let r = s.get("/products/foobar/x86/1.0/1.0.3/fmt/dir/File.txt");
    r.expect(200);
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("digest"), Some(sha256_digest(b"hello").as_str()));
    assert_eq!(
        s.get("/products/foobar/x86/1.0/1.0.2/fmt/").json()["artifact_format"]["files"],
        json!(["dir/File.txt"])
    );
    // Read-only.
    s.put_file("/products/foobar/x86/1.0/1.0.2/fmt/new", b"x")
        .expect_error(400, "Uploading products is not supported");
    s.delete("/products/foobar/x86/1.0/1.0.2/fmt/")
        .expect_error(400, "Deleting product formats is not supported");
    s.req("PATCH", "/products/foobar/x86/1.0/1.0.2/fmt/").send().expect(405);
    // Flags come from the formats' tags and jobs.
    std::fs::write(s.path("branches/main/tag1/.locked"), "").unwrap();
    let pb = s.get("/products/foobar/x86/1.0/").json();
    assert_eq!(pb["product_branch"]["versions"][0]["locked"], true);
    assert_eq!(pb["product_branch"]["versions"][0]["stable"], true);
    // A second job with a format of the same name in the same version collides.
    s.put("/branches/main/tag2/job3/fmt/y", "y");
    let r = patch_job(
        &s,
        "/branches/main/tag2/job3/",
        r#"{"job": {"product": "foobar", "product_variant": "x86", "product_branch": "1.0", "version": "1.0.2"}}"#,
    );
    r.expect(400);
    assert!(
        r.reason
            .starts_with("[Errno 17] File exists: '../../../../../branches/main/tag2/job3/fmt' -> "),
        "{}",
        r.reason
    );
    // A metadata change moves the links; deleting the jobs prunes everything.
    patch_job(&s, "/branches/main/tag1/job2/", r#"{"job": {"version": "2.0"}}"#).expect(200);
    assert!(!s.path("products/foobar/x86/1.0/1.0.3").exists());
    assert!(s.path("products/foobar/x86/1.0/2.0/fmt").exists());
    for j in ["job1", "job2"] {
        std::fs::remove_file(s.path("branches/main/tag1/.locked")).ok();
        s.delete(&format!("/branches/main/tag1/{j}/")).expect(200);
    }
    s.delete("/branches/main/tag2/job3/").expect(200);
    assert!(!s.path("products").exists(), "{:?}", s.tree());
}

#[test]
fn deleting_a_version_s_last_format_removes_the_version() {
    let s = Server::start();
    s.put("/branches/b/t/j/only/a", "a");
    patch_job(
        &s,
        "/branches/b/t/j/",
        r#"{"job": {"product": "p", "product_variant": "v", "product_branch": "pb", "version": "1"}}"#,
    )
    .expect(200);
    assert!(s.path("products/p/v/pb/1/only").exists());
    s.delete("/branches/b/t/j/only/").expect(200);
    assert!(!s.path("products").exists(), "{:?}", s.tree());
    assert_eq!(s.get("/products/").text(), r#"{"products": []}"#);
}

#[test]
fn product_values_cannot_escape_the_products_tree() {
    let s = Server::start();
    s.put("/branches/b/t/j/f/a", "a");
    let r = patch_job(
        &s,
        "/branches/b/t/j/",
        r#"{"job": {"product": "..", "product_variant": "x", "product_branch": "y", "version": "z"}}"#,
    );
    r.expect(400);
    let r = patch_job(
        &s,
        "/branches/b/t/j/",
        r#"{"job": {"product": "a/../../b", "product_variant": "x", "product_branch": "y", "version": "z"}}"#,
    );
    r.expect(400);
    assert!(
        !s.path("b").exists() && !s.path("products/b").exists(),
        "{:?}",
        s.tree()
    );
}

#[test]
fn format_digests_endpoint() {
    let s = Server::start();
    s.put("/branches/b/t/j/f/b.txt", "b");
    s.put("/branches/b/t/j/f/a/x.txt", "x");
    s.req("PUT", "/branches/b/t/j/f/upper")
        .header("Digest", &format!("SHA256:{}", sha256_hex(b"u")))
        .body(b"u")
        .send()
        .expect(201);
    let r = s.get("/branches/b/t/j/f.sha256");
    r.expect(200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.text(),
        format!("{}  a/x.txt\n{}  b.txt\n", sha256_hex(b"x"), sha256_hex(b"b"))
    );
    s.get("/branches/b/T/j/f.sha256")
        .expect_redirect("/branches/b/t/j/f.sha256");
    s.get("/branches/b/t/j/nope.sha256").expect(404);
    s.req("HEAD", "/branches/b/t/j/f.sha256").send().expect(405);
}

/// Members of a tar archive: (name, size, mode, content).
fn read_tar(bytes: &[u8]) -> Vec<(String, u64, u32, Vec<u8>)> {
    let mut a = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let size = e.header().size().unwrap();
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.push((name, size, mode, data));
    }
    out
}

#[test]
fn archives_of_formats_jobs_and_versions() {
    let s = Server::start();
    s.put("/branches/main/tag/job/format/file2.txt", "two");
    s.put("/branches/main/tag/job/format/file.txt", "one");
    let long = format!("{}/\u{fc}n\u{ef}c\u{f6}de.txt", "d".repeat(120));
    s.put(
        &format!(
            "/branches/main/tag/job/other/{}",
            long.replace('\u{fc}', "%C3%BC")
                .replace('\u{ef}', "%C3%AF")
                .replace('\u{f6}', "%C3%B6")
        ),
        "long",
    );

    let r = s.get("/branches/main/tag/job/format.tar");
    r.expect(200);
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=job-tag-format.tar")
    );
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len() % 10240, 0);
    let m = read_tar(&r.body);
    let names: Vec<&str> = m.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "job-tag-format/file.txt",
            "job-tag-format/file2.txt",
            "job-tag-format/SHA256SUMS.txt"
        ]
    );
    assert_eq!(m[0].3, b"one");
    assert_eq!(m[0].2, 0o644);
    assert_eq!(
        String::from_utf8(m[2].3.clone()).unwrap(),
        format!("{}  file.txt\n{}  file2.txt\n", sha256_hex(b"one"), sha256_hex(b"two"))
    );
    // GNU tar and Python's tarfile read it too, names included.
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = tmp.path().join("a.tar");
    let job = s.get("/branches/main/tag/job.tar");
    job.expect(200);
    std::fs::write(&tar_path, &job.body).unwrap();
    let gnu = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar_path)
        .output()
        .unwrap();
    assert!(gnu.status.success());
    let listed = String::from_utf8(gnu.stdout).unwrap();
    assert!(listed.contains(&format!("job-tag/other/{long}")), "{listed}");
    assert!(listed.contains("job-tag/format/file.txt"));
    assert!(listed.ends_with("job-tag/SHA256SUMS.txt\n"), "{listed}");
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys, tarfile; t = tarfile.open(sys.argv[1]); print('\\n'.join(t.getnames())); print(t.extractfile(t.getmember('job-tag/format/file2.txt')).read().decode())")
        .arg(&tar_path)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let out = String::from_utf8(py.stdout).unwrap();
    assert!(
        out.contains(&format!("job-tag/other/{long}")) && out.ends_with("two\n"),
        "{out}"
    );

    // Redirects and 404s.
    s.get("/branches/main/latest/job.tar")
        .expect_redirect("/branches/main/tag/job.tar");
    s.get("/branches/main/tag/Job/format.tar")
        .expect_redirect("/branches/main/tag/job/format.tar");
    s.get("/branches/main/tag/nope.tar").expect(404);
    s.get("/branches/main/tag/job/nope.tar").expect(404);
    s.req("HEAD", "/branches/main/tag/job/format.tar").send().expect(404); // dirty
    s.req("PATCH", "/branches/main/tag/job/format/").send().expect(200);
    s.req("HEAD", "/branches/main/tag/job/format.tar").send().expect(200);

    // Product version archive, named after the product.
    patch_job(
        &s,
        "/branches/main/tag/job/",
        r#"{"job": {"product": "p", "product_variant": "v", "product_branch": "b", "version": "1.0"}}"#,
    )
    .expect(200);
    let r = s.get("/products/p/v/b/1.0.tar");
    r.expect(200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=p-v-v1.0.tar")
    );
    let names: Vec<String> = read_tar(&r.body).into_iter().map(|e| e.0).collect();
    assert!(names.contains(&"p-v-v1.0/format/file.txt".to_string()), "{names:?}");
    s.get("/products/p/v/b/latest.tar")
        .expect_redirect("/products/p/v/b/1.0.tar");
    assert_eq!(
        s.get("/branches/main/tag/job/format.tar").header("content-disposition"),
        Some("attachment; filename=p-v-v1.0-format.tar")
    );
    assert_eq!(
        s.get("/products/p/v/b/1.0/format.tar").header("content-disposition"),
        Some("attachment; filename=p-v-v1.0-format.tar")
    );
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

#[test]
fn archives_stream_in_constant_memory() {
    let s = Server::start();
    // Three distinct 64 MiB files: far more than the server may hold.
    for i in 0..3u8 {
        let data: Vec<u8> = (0..64 << 20)
            .map(|k: u32| (k as u8).wrapping_mul(31).wrapping_add(i))
            .collect();
        s.put_file(&format!("/branches/b/t/j/f/big{i}.bin"), &data).expect(201);
    }
    let _ = std::fs::write(format!("/proc/{}/clear_refs", s.pid()), "5");
    let before = vm_hwm_kib(s.pid());
    let mut c = s.connect();
    std::io::Write::write_all(
        &mut c,
        b"GET /branches/b/t/j.tar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    // Read slowly at first, so the producer is the one that has to wait.
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut c, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        if total < 8 << 20 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    assert!(total > 3 * (64 << 20), "archive too short: {total}");
    let grown = vm_hwm_kib(s.pid()).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "serving a 192 MiB archive grew the server by {grown} KiB"
    );
}

const SCRIPT: &str = r#"#!/bin/sh
set -e
if [ -f file3.txt ]; then exit 1; fi
if [ -f file.txt ]; then
    echo finalized >> file.txt
    echo "$DLREPO_ROOT_DIR" > finalized
fi
"#;

#[test]
fn post_process_command_runs_on_finalisation() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("post.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&script).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = Server::start_with(&[("DLREPO_POST_PROCESS_CMD", script.to_str().unwrap())]);
    s.put("/branches/b/t/j/f/file.txt", "foo\n");
    s.put("/branches/b/t/j2/f/file.txt", "foo\n");
    s.req("PATCH", "/branches/b/t/j/f/").send().expect(200);
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/t/j/f/file.txt")).unwrap(),
        "foo\nfinalized\n"
    );
    assert!(s.path("branches/b/t/j/f/finalized").exists());
    assert!(!s.path("branches/b/t/j/f/.dirty").exists());
    // The shared blob was not touched: the other job still has the old bytes.
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/t/j2/f/file.txt")).unwrap(),
        "foo\n"
    );
    // The index was refreshed and new content shares blobs again.
    let digests: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("branches/b/t/j/f/.digests")).unwrap()).unwrap();
    assert_eq!(digests["file.txt"], sha256_digest(b"foo\nfinalized\n"));
    assert!(digests.get("finalized").is_some());
    assert_eq!(nlink(&s.path("branches/b/t/j/f/file.txt")), 2);
    let r = s.get("/branches/b/t/j/f/finalized");
    assert!(r.header("digest").is_some());
    // A failing command: 500, still dirty, file unchanged.
    s.put("/branches/b/t/j3/f/file3.txt", "three\n");
    s.req("PATCH", "/branches/b/t/j3/f/")
        .send()
        .expect_error(500, "post process failed");
    assert!(s.path("branches/b/t/j3/f/.dirty").exists());
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/t/j3/f/file3.txt")).unwrap(),
        "three\n"
    );
    assert!(s.log().contains("post process failed: command"), "{}", s.log());
}

#[test]
fn post_process_filter_skips_unmatched_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("post.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = Server::start_with(&[
        ("DLREPO_POST_PROCESS_CMD", script.to_str().unwrap()),
        ("DLREPO_POST_PROCESS_FILTER", r".*\.deb$"),
    ]);
    s.put("/branches/b/t/j/f/file.txt", "foo\n");
    s.req("PATCH", "/branches/b/t/j/f/").send().expect(200);
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/t/j/f/file.txt")).unwrap(),
        "foo\n"
    );
    assert!(!s.path("branches/b/t/j/f/.dirty").exists());
}

#[test]
fn x_sendfile_through_the_example_nginx_configuration() {
    let nginx = Path::new("/usr/sbin/nginx");
    assert!(
        nginx.exists(),
        "nginx is needed for this test (apt-get install nginx-light)"
    );
    let s = Server::start_with(&[("DLREPO_X_SENDFILE_HEADER", "X-Accel-Redirect")]);
    s.put("/branches/b/t/j/f/a.txt", "served by nginx");
    let root = std::fs::canonicalize(&s.root).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/etc/nginx/dlrepo.conf")).unwrap();
    let server_block = example
        .replace(
            "server unix:/run/dlrepo.sock;",
            &format!("server 127.0.0.1:{};", s.port),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("/var/lib/dlrepo/", &format!("{}/", root.display()));
    let conf = format!(
        "daemon off;\nmaster_process off;\nerror_log stderr;\npid {0}/nginx.pid;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {0};\n  proxy_temp_path {0};\n{server_block}\n}}\n",
        tmp.path().display()
    );
    std::fs::write(tmp.path().join("nginx.conf"), conf).unwrap();
    let mut child = std::process::Command::new(nginx)
        .arg("-p")
        .arg(tmp.path())
        .arg("-c")
        .arg(tmp.path().join("nginx.conf"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port("nginx", port);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut c,
        b"GET /branches/b/t/j/f/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut std::io::BufReader::new(c), "GET");
    let _ = child.kill();
    let _ = child.wait();
    r.expect(200);
    assert_eq!(r.text(), "served by nginx");
    assert_eq!(r.header("digest"), Some(sha256_digest(b"served by nginx").as_str()));
}

#[test]
fn concurrent_metadata_patches_of_one_job_keep_every_key() {
    let s = Server::start();
    product_job(&s, "job1", "1.0");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let port = s.port;
            std::thread::spawn(move || {
                let body = format!(r#"{{"job": {{"k{i}": "v{i}"}}}}"#);
                let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                std::io::Write::write_all(
                    &mut c,
                    format!(
                        "PATCH /branches/main/tag1/job1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .unwrap();
                read_response(&mut std::io::BufReader::new(c), "PATCH").status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("branches/main/tag1/job1/.metadata")).unwrap()).unwrap();
    for i in 0..8 {
        assert_eq!(m[format!("k{i}")], format!("v{i}"), "{m}");
    }
    assert!(s.path("products/foobar/x86/1.0/1.0/fmt").exists());
}

/// A delete of a job waits for the uploads already linking into it, and
/// uploads that arrive meanwhile wait for the delete, then create the job
/// anew: nothing links into a folder being removed, and no index keeps an
/// entry for a removed file.
#[test]
fn a_job_delete_and_uploads_into_the_job_take_turns() {
    let h = LinkHold::start();
    let s = &h.server;
    s.put("/branches/b/t/j/f/old", "old");
    h.engage();
    std::thread::scope(|sc| {
        let held = sc.spawn(|| s.put_file("/branches/b/t/j/f/held", b"held"));
        h.wait_paused();
        let delete = sc.spawn(|| s.delete("/branches/b/t/j/"));
        assert!(s.wait_log("waiting for uploads still linking", 1));
        // Arrives while the delete waits: it must wait for the delete too.
        let late = sc.spawn(|| s.put_file("/branches/b/t/j/f/late", b"late"));
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!delete.is_finished(), "the delete did not wait for the linking upload");
        assert!(!late.is_finished(), "an upload went ahead during the delete");
        h.release();
        held.join().unwrap().expect(201);
        delete.join().unwrap().expect(200);
        late.join().unwrap().expect(201);
    });
    // Only the upload that came after the delete is left.
    assert_eq!(
        s.get("/branches/b/t/j/f/").json()["artifact_format"]["files"],
        json!(["late"])
    );
    s.flush();
    let digests = std::fs::read_to_string(s.path("branches/b/t/j/f/.digests")).unwrap();
    assert_eq!(digests, format!("{{\"late\": \"{}\"}}", sha256_digest(b"late")));
    assert!(s.path("branches/b/t/j/.stamp").exists() && s.path("branches/b/t/.stamp").exists());
}
