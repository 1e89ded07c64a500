//! Listings, redirects, aliases, downloads and deletes through the real binary.

mod common;

use common::*;
use serde_json::json;

#[test]
fn branch_tag_job_format_listings_have_the_exact_shapes() {
    let s = Server::start();
    s.put("/branches/main/tag1/job1/fmt/dir/File.txt", "a");
    s.put("/branches/main/tag1/job1/fmt2/x", "b");
    s.put("/branches/main/tag2/job1/fmt/y", "c");
    std::fs::write(s.path("branches/main/tag1/.locked"), "").unwrap();
    std::fs::write(s.path("branches/main/tag1/.stable"), "").unwrap();
    std::fs::write(s.path("branches/main/tag2/.released"), "").unwrap();
    std::fs::write(s.path("branches/main/tag1/.description"), "Hello W\u{f6}rld\n").unwrap();
    std::fs::write(s.path("branches/main/tag1/.publish-status"), "published to http://x\n").unwrap();
    std::fs::write(
        s.path("branches/main/.cleanup_policy"),
        r#"{"max_daily_tags": 3, "extra": true}"#,
    )
    .unwrap();
    std::fs::write(
        s.path("branches/main/tag1/job1/.metadata"),
        "{\n  \"product\": \"foobar\",\n  \"Caps\": \"upper\"\n}",
    )
    .unwrap();
    std::fs::create_dir_all(s.path("branches/main/.hidden")).unwrap();
    std::fs::write(s.path("branches/notadir"), "").unwrap();

    let r = s.get("/branches/");
    r.expect(200);
    assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    assert!(r.header("server").is_some_and(|v| v.starts_with("dlrepo/")));
    assert!(r.header("date").is_some());
    assert_eq!(
        r.text(),
        r#"{"branches": [{"name": "main", "daily_tags": 1, "released_tags": 1, "locked_tags": 1, "stable_tags": 1, "max_daily_tags": 3, "extra": true, "max_released_tags": 0}]}"#
    );

    let mut b = s.get("/branches/Main/").json();
    strip_timestamps(&mut b);
    assert_eq!(
        b,
        json!({"branch": {"name": "Main", "cleanup_policy": {"max_daily_tags": 3, "extra": true, "max_released_tags": 0},
            "tags": [
                {"name": "tag1", "timestamp": "T", "released": false, "locked": true, "stable": true,
                 "publish_status": "published to http://x", "description": "Hello W\u{f6}rld"},
                {"name": "tag2", "timestamp": "T", "released": true, "locked": false, "stable": false,
                 "publish_status": null, "description": null}]}})
    );
    let b = s.get("/branches/main/").text();
    assert!(b.contains(r#""description": "Hello W\u00f6rld""#), "{b}");
    let released = s.get("/branches/main/?released=1").json();
    assert_eq!(released["branch"]["tags"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.get("/branches/main/?released=").json()["branch"]["tags"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let t = s.get("/branches/main/tag1/");
    assert_eq!(
        t.text(),
        r#"{"tag": {"name": "tag1", "released": false, "locked": true, "stable": true, "publish_status": "published to http://x", "description": "Hello W\u00f6rld", "jobs": [{"product": "foobar", "Caps": "upper", "locked": false, "name": "job1", "released": false}]}}"#
    );
    assert_eq!(
        s.get("/branches/main/tag1/?locked=False").json()["tag"]["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.get("/branches/main/tag1/?locked=false").json()["tag"]["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        s.get("/branches/main/tag1/?product=foobar&Caps=upper").json()["tag"]["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.get("/branches/main/tag1/?nope=x").json()["tag"]["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let mut j = s.get("/branches/main/tag1/job1/").json();
    strip_timestamps(&mut j);
    assert_eq!(
        j,
        json!({"job": {"product": "foobar", "Caps": "upper", "locked": false, "name": "job1", "released": false,
            "internal": false, "timestamp": "T", "digest": "", "artifact_formats": ["fmt", "fmt2"]}})
    );
    let jt = s.get("/branches/main/tag1/job1/").text();
    let keys: Vec<&str> = [
        "product",
        "Caps",
        "locked",
        "name",
        "released",
        "internal",
        "timestamp",
        "digest",
        "artifact_formats",
    ]
    .to_vec();
    let mut last = 0;
    for k in keys {
        let pos = jt
            .find(&format!("\"{k}\""))
            .unwrap_or_else(|| panic!("{k} missing in {jt}"));
        assert!(pos >= last, "key order: {jt}");
        last = pos;
    }

    assert_eq!(
        s.get("/branches/main/tag1/job1/fmt/").text(),
        r#"{"artifact_format": {"name": "fmt", "internal": false, "dirty": true, "files": ["dir/File.txt"]}}"#
    );
}

#[test]
fn timestamps_are_python_floats_or_integer_zero() {
    let s = Server::start();
    s.put("/branches/b/t/j/f/a", "a");
    std::fs::remove_file(s.path("branches/b/t/.stamp")).unwrap();
    let t = s.get("/branches/b/").text();
    assert!(t.contains(r#""timestamp": 0,"#), "{t}");
    let f = std::fs::File::options()
        .write(true)
        .open(s.path("branches/b/t/j/.stamp"))
        .unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(946684800))
        .unwrap();
    let j = s.get("/branches/b/t/j/").text();
    assert!(j.contains(r#""timestamp": 946684800.0,"#), "{j}");
}

#[test]
fn empty_and_missing_listings() {
    let s = Server::start();
    assert_eq!(s.get("/branches/").text(), r#"{"branches": []}"#);
    assert_eq!(s.get("/~nobody/branches/").text(), r#"{"branches": []}"#);
    s.get("/branches/nope/").expect_error(404, "Not Found");
    s.get("/branches/nope").expect(404);
    s.get("/branches/nope/t/").expect(404);
    s.get("/branches/nope/t/j/").expect(404);
    s.get("/branches/nope/t/j/f/").expect(404);
    s.get("/branches/nope/t/j/f/a").expect(404);
}

#[test]
fn canonical_redirects() {
    let s = Server::start();
    s.put("/branches/main/tag1/job1/fmt/a.txt", "a");
    s.get("/branches").expect_redirect("/branches/");
    s.get("/branches/main").expect_redirect("/branches/main/");
    // Branch: no lowercase redirect, the name echoes the URL.
    assert_eq!(s.get("/branches/MAIN/").json()["branch"]["name"], "MAIN");
    s.get("/branches/Main/Tag1").expect_redirect("/branches/main/tag1/");
    s.req("DELETE", "/branches/main/TAG1/")
        .send()
        .expect_redirect("/branches/main/tag1/");
    s.get("/branches/main/tag1/Job1")
        .expect_redirect("/branches/main/tag1/job1/");
    s.get("/branches/main/tag1/job1/FMT/")
        .expect_redirect("/branches/main/tag1/job1/fmt/");
    s.get("/branches/main/TAG1/job1/fmt/a.txt")
        .expect_redirect("/branches/main/tag1/job1/fmt/a.txt");
    s.req("HEAD", "/branches/main/tag1/job1/Fmt/a.txt").send().expect(302);
    // Existence is checked before the redirect.
    s.get("/branches/main/nope").expect(404);
    // A missing slash on a format: while it is dirty, GET goes to the
    // folder like any folder URL, and the HEAD probe says "not finalised".
    s.get("/branches/main/tag1/job1/fmt")
        .expect_redirect("/branches/main/tag1/job1/fmt/");
    s.req("HEAD", "/branches/main/tag1/job1/fmt").send().expect(404);
    s.req("PATCH", "/branches/main/tag1/job1/fmt/").send().expect(200);
    let r = s.get("/branches/main/tag1/job1/fmt");
    r.expect_redirect("/branches/main/tag1/job1/fmt/a.txt");
    assert_eq!(r.header("content-disposition"), Some("attachment; filename=a.txt"));
    s.put("/branches/main/tag1/job1/fmt/b.txt", "b");
    s.req("PATCH", "/branches/main/tag1/job1/fmt/").send().expect(200);
    s.get("/branches/main/tag1/job1/Fmt")
        .expect_redirect("/branches/main/tag1/job1/fmt/");
}

#[test]
fn aliases_resolve_by_stamp_order_and_refuse_writes() {
    let s = Server::start();
    for (i, t) in ["t1", "t2", "t3"].iter().enumerate() {
        s.put(&format!("/branches/b/{t}/j/f/a"), "a");
        let f = std::fs::File::options()
            .write(true)
            .open(s.path(&format!("branches/b/{t}/.stamp")))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64))
            .unwrap();
    }
    std::fs::write(s.path("branches/b/t1/.stable"), "").unwrap();
    std::fs::write(s.path("branches/b/t2/.stable"), "").unwrap();
    s.get("/branches/b/latest/").expect_redirect("/branches/b/t3/");
    s.get("/branches/b/stable/").expect_redirect("/branches/b/t2/");
    s.get("/branches/b/oldstable/").expect_redirect("/branches/b/t1/");
    s.get("/branches/b/latest/j/").expect_redirect("/branches/b/t3/j/");
    s.get("/branches/b/Latest/j/f/a")
        .expect_redirect("/branches/b/t3/j/f/a");
    s.req("DELETE", "/branches/b/latest/").send().expect(405);
    assert_eq!(
        s.req("POST", "/branches/b/latest/").json("{}").send().header("allow"),
        Some("GET,HEAD")
    );
    let r = s.req("DELETE", "/branches/b/latest/j/").send();
    r.expect(405);
    assert_eq!(r.header("allow"), Some("GET"));
    let r = s.put_file("/branches/b/latest/j/f/x", b"x");
    r.expect(405);
    assert_eq!(r.header("allow"), Some("GET"));
    s.req("PATCH", "/branches/b/stable/j/f/").send().expect(405);
    std::fs::remove_file(s.path("branches/b/t1/.stable")).unwrap();
    s.get("/branches/b/oldstable/").expect(404);
    s.get("/branches/nope/latest/").expect(404);
}

#[test]
fn method_not_allowed_lists_the_methods() {
    let s = Server::start();
    s.put("/branches/b/t/j/f/a", "a");
    let r = s.req("HEAD", "/branches/").send();
    r.expect(405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(
        s.req("PUT", "/branches/b/").send().header("allow"),
        Some("DELETE,GET,POST")
    );
    assert_eq!(
        s.req("OPTIONS", "/branches/b/t/j/f/").send().header("allow"),
        Some("DELETE,GET,HEAD,PATCH")
    );
    assert_eq!(
        s.req("DELETE", "/branches/b/t/j/f/a").send().header("allow"),
        Some("GET,HEAD,PUT")
    );
    s.req("DELETE", "/branches/b/t/j/f/a")
        .send()
        .expect_error(405, "Method Not Allowed");
    s.req("BREW", "/branches/").send().expect(400);
}

#[test]
fn downloads_support_ranges_and_conditionals() {
    let s = Server::start();
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    s.put_file("/branches/b/t/j/f/data.bin", &data).expect(201);
    let full = s.get("/branches/b/t/j/f/data.bin");
    full.expect(200);
    assert_eq!(full.body, data);
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("content-type"), Some("application/octet-stream"));
    let etag = full.header("etag").unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.contains('-') && etag.ends_with("-3e8\""),
        "{etag}"
    );
    let lm = full.header("last-modified").unwrap().to_string();

    let r = s
        .req("GET", "/branches/b/t/j/f/data.bin")
        .header("Range", "bytes=10-19")
        .send();
    r.expect(206);
    assert_eq!(r.body, &data[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(r.header("digest"), Some(sha256_digest(&data).as_str()));
    let r = s
        .req("GET", "/branches/b/t/j/f/data.bin")
        .header("Range", "bytes=-5")
        .send();
    assert_eq!(r.body, &data[995..]);
    let r = s
        .req("GET", "/branches/b/t/j/f/data.bin")
        .header("Range", "bytes=990-")
        .send();
    assert_eq!(r.body, &data[990..]);
    let r = s
        .req("GET", "/branches/b/t/j/f/data.bin")
        .header("Range", "bytes=2000-")
        .send();
    r.expect(416);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));
    s.req("GET", "/branches/b/t/j/f/data.bin")
        .header("Range", "bytes=0-1,5-6")
        .send()
        .expect(416);

    let r = s
        .req("GET", "/branches/b/t/j/f/data.bin")
        .header("If-None-Match", &etag)
        .send();
    r.expect(304);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    s.req("GET", "/branches/b/t/j/f/data.bin")
        .header("If-Modified-Since", &lm)
        .send()
        .expect(304);
    s.req("GET", "/branches/b/t/j/f/data.bin")
        .header("If-Match", "\"nope\"")
        .send()
        .expect(412);
    s.req("GET", "/branches/b/t/j/f/data.bin")
        .header("If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .expect(412);

    // HEAD answers the headers GET does, without the body.
    let h = s.req("HEAD", "/branches/b/t/j/f/data.bin").send();
    h.expect(200);
    assert_eq!(h.header("content-length"), Some("1000"));
    assert_eq!(h.header("digest"), Some(sha256_digest(&data).as_str()));
    let g = s.get("/branches/b/t/j/f/data.bin");
    for name in [
        "content-type",
        "etag",
        "last-modified",
        "accept-ranges",
        "digest",
        "content-length",
    ] {
        assert!(g.header(name).is_some(), "GET lacks {name}");
        assert_eq!(h.header(name), g.header(name), "{name}");
    }

    s.put_file("/branches/b/t/j/f/page.txt", b"text").expect(201);
    assert_eq!(
        s.get("/branches/b/t/j/f/page.txt").header("content-type"),
        Some("text/plain")
    );
    let sha = s.get("/branches/b/t/j/f/page.txt.sha256");
    sha.expect(200);
    assert_eq!(sha.text(), format!("{}  page.txt\n", sha256_hex(b"text")));
    s.put_file("/branches/b/t/j/f/dir/sub.txt", b"sub").expect(201);
    assert_eq!(
        s.get("/branches/b/t/j/f/dir/sub.txt.sha256").text(),
        format!("{}  sub.txt\n", sha256_hex(b"sub"))
    );
    s.get("/branches/b/t/j/f/dir").expect(404);
}

#[test]
fn files_missing_from_digests_and_dotfiles() {
    let s = Server::start();
    s.put("/branches/b/t/j/f/a", "a");
    std::fs::write(s.path("branches/b/t/j/f/extra"), "extra").unwrap();
    let r = s.get("/branches/b/t/j/f/extra");
    r.expect(200);
    assert!(r.header("digest").is_none());
    let h = s.req("HEAD", "/branches/b/t/j/f/extra").send();
    h.expect(200);
    assert!(h.header("digest").is_none());
    s.put("/branches/b/t/j/f/.hidden", "h");
    s.put("/branches/b/t/j/f/sub/.digests", "d");
    assert_eq!(s.get("/branches/b/t/j/f/.hidden").text(), "h");
    s.get("/branches/b/t/j/f/.digests").expect_error(400, ".digests");
    s.get("/branches/b/t/j/f/.dirty").expect_error(400, ".dirty");
}

#[test]
fn x_sendfile_answers_with_the_canonical_path() {
    let s = Server::start_with(&[("DLREPO_X_SENDFILE_HEADER", "X-Accel-Redirect")]);
    s.put("/branches/b/t/j/f/a.txt", "content");
    let r = s.get("/branches/b/t/j/f/a.txt");
    r.expect(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("content-type"), Some(""));
    assert_eq!(r.header("digest"), Some(sha256_digest(b"content").as_str()));
    let expect = std::fs::canonicalize(s.path("branches/b/t/j/f/a.txt")).unwrap();
    assert_eq!(r.header("x-accel-redirect"), Some(expect.to_str().unwrap()));
}

#[test]
fn deletes_follow_the_lock_and_release_rules() {
    let s = Server::start();
    s.put("/branches/b/t1/j/f/a", "a");
    s.put("/branches/b/t1/j/g/a", "b");
    s.put("/branches/b/t2/j/f/a", "c");
    s.put("/branches/b/t3/j/f/a", "d");
    // Format.
    s.delete("/branches/b/t1/j/g/").expect(200);
    assert!(!s.path("branches/b/t1/j/g").exists());
    s.delete("/branches/b/t1/j/g/").expect(404);
    // A locked job refuses format deletion but can itself be deleted.
    std::fs::write(s.path("branches/b/t1/j/.locked"), "").unwrap();
    s.delete("/branches/b/t1/j/f/")
        .expect_error(400, "Cannot delete format: job is locked");
    s.delete("/branches/b/t1/j/").expect(200);
    s.delete("/branches/b/t1/j/").expect(404);
    // Tags.
    std::fs::write(s.path("branches/b/t2/.locked"), "").unwrap();
    s.delete("/branches/b/t2/").expect_error(400, "Tag t2 is locked");
    std::fs::write(s.path("branches/b/t3/.released"), "").unwrap();
    s.delete("/branches/b/t3/")
        .expect_error(400, "Tag t3 is released, unrelease it first");
    s.delete("/branches/b/").expect_error(400, "Tag t2 is locked");
    std::fs::remove_file(s.path("branches/b/t2/.locked")).unwrap();
    s.delete("/branches/b/")
        .expect_error(400, "Tag t3 is released, unrelease it first");
    assert!(
        s.path("branches/b/t2/j/f/a").exists(),
        "a refused branch delete deletes nothing"
    );
    std::fs::remove_file(s.path("branches/b/t3/.released")).unwrap();
    s.delete("/branches/b/t1/").expect(200);
    s.delete("/branches/b/").expect(200);
    assert!(!s.path("branches/b").exists());
    s.delete("/branches/b/").expect(404);
    // Blobs stay until the GC finds them old enough.
    assert!(s.path(".blobs").exists());
}

#[test]
fn tag_flags_and_description() {
    let s = Server::start();
    s.put("/branches/b/t/j/f/a", "a");
    s.req("POST", "/branches/b/t/")
        .json(r#"{"tag": {"locked": true, "stable": true, "description": "  Hello W\u00f6rld  "}}"#)
        .send()
        .expect(200);
    assert!(s.path("branches/b/t/.locked").exists());
    assert!(s.path("branches/b/t/.stable").exists());
    assert_eq!(
        std::fs::read(s.path("branches/b/t/.description")).unwrap(),
        b"Hello W\xc3\xb6rld\n"
    );
    s.req("POST", "/branches/b/t/")
        .json(r#"{"tag": {"locked": false, "description": ""}}"#)
        .send()
        .expect(200);
    assert!(!s.path("branches/b/t/.locked").exists());
    assert!(!s.path("branches/b/t/.description").exists());
    s.req("POST", "/branches/b/t/")
        .json(r#"{"tag": {"released": true}}"#)
        .send()
        .expect_error(421, "DLREPO_PUBLISH_URL is undefined");
    s.req("POST", "/branches/b/t/")
        .json(r#"{"tag": {"locked": "yes"}}"#)
        .send()
        .expect_error(400, "invalid parameters");
    s.req("POST", "/branches/b/t/")
        .json(r#"{"tag": 5}"#)
        .send()
        .expect_error(400, "invalid parameters");
    s.req("POST", "/branches/b/t/")
        .json(r#"[1]"#)
        .send()
        .expect_error(400, "invalid parameters");
    let r = s.req("POST", "/branches/b/t/").json(r#"{"tag": "#).send();
    r.expect(400);
    assert!(r.reason.starts_with("invalid JSON data: "), "{}", r.reason);
}

#[test]
fn branch_cleanup_policy_post() {
    let s = Server::start();
    s.put("/branches/b/t/j/f/a", "a");
    s.req("POST", "/branches/b/")
        .json(r#"{"branch": {"max_daily_tags": 3}}"#)
        .send()
        .expect(200);
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/.cleanup_policy")).unwrap(),
        r#"{"max_daily_tags": 3, "max_released_tags": 0}"#
    );
    s.req("POST", "/branches/b/")
        .json(r#"{"branch": {"max_released_tags": 2}}"#)
        .send()
        .expect(200);
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/.cleanup_policy")).unwrap(),
        r#"{"max_daily_tags": 3, "max_released_tags": 2}"#
    );
    for bad in [
        r#"{"branch": {"max_daily_tags": -1}}"#,
        r#"{"branch": {"max_daily_tags": true}}"#,
        r#"{"branch": {"max_daily_tags": "3"}}"#,
        r#"{"branch": {"max_daily_tags": 1.5}}"#,
        r#"{"branch": 3}"#,
        r#"{"nope": {}}"#,
        r#"[]"#,
    ] {
        s.req("POST", "/branches/b/")
            .json(bad)
            .send()
            .expect_error(400, "invalid parameters");
    }
    let big = format!(r#"{{"branch": {{"x": "{}"}}}}"#, "a".repeat(1_100_000));
    let r = s.req("POST", "/branches/b/").json(&big).send();
    r.expect(413);
    assert_eq!(r.text(), "Maximum request body size 1048576 exceeded.");
}

#[test]
fn static_assets_and_the_cli_script() {
    let tmp = tempfile::tempdir().unwrap();
    let static_dir = tmp.path().join("static");
    std::fs::create_dir_all(&static_dir).unwrap();
    std::fs::write(static_dir.join("foobar.svg"), "<svg/>").unwrap();
    std::fs::write(static_dir.join("dlrepo.css"), "body{}").unwrap();
    let cli = tmp.path().join("dlrepo-cli");
    std::fs::write(&cli, "#!/usr/bin/env python3\nURL = 'http://127.0.0.1:1337'\n").unwrap();
    let s = Server::start_with(&[
        ("DLREPO_STATIC_DIR", static_dir.to_str().unwrap()),
        ("DLREPO_CLI_PATH", cli.to_str().unwrap()),
        ("DLREPO_PUBLIC_URL", "https://dlrepo.example.com"),
        ("DLREPO_X_SENDFILE_HEADER", "X-Accel-Redirect"),
    ]);
    let r = s.get("/static/logo.svg");
    r.expect(200);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert!(r.text().contains("<svg"));
    let r = s.get("/static/foobar.svg");
    r.expect(200);
    assert_eq!(r.text(), "<svg/>");
    assert!(
        r.header("x-accel-redirect").is_none(),
        "static files never use X-Sendfile"
    );
    assert_eq!(
        s.get("/static/dlrepo.css").text(),
        "body{}",
        "the static dir overrides built-in assets"
    );
    let h = s.req("HEAD", "/static/logo.svg").send();
    h.expect(200);
    assert!(h.header("content-length").is_some());
    s.get("/static/nope.svg").expect(404);
    s.get("/static/..").expect(404);
    s.get("/static/a/b").expect(404);
    assert_eq!(
        s.req("POST", "/static/logo.svg").send().header("allow"),
        Some("GET,HEAD")
    );
    let c = s.get("/cli");
    c.expect(200);
    assert_eq!(c.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(c.text(), "#!/usr/bin/env python3\nURL = 'https://dlrepo.example.com'\n");
    s.req("HEAD", "/cli").send().expect(200);
    s.req("HEAD", "/").send().expect(405);
    // A user home exists once the user repository does.
    s.get("/~nobody/").expect(404);
    s.put_file("/~Bob/branches/b/t/j/f/a", b"a").expect(201);
    s.get("/~Bob").expect_redirect("/~Bob/");
}

#[test]
fn cli_without_a_client_answers_404_saying_how_to_configure_it() {
    let s = Server::start_with(&[("DLREPO_CLI_PATH", "/nonexistent/dlrepo-cli")]);
    s.get("/cli").expect_error(
        404,
        "No dlrepo-cli to serve here: set DLREPO_CLI_PATH to the client's file",
    );
}
