//! Publishing released tags to mirrors, with several instances of this
//! server: what arrives, what is not sent twice, unreleasing, mirrors that
//! are down, refuse, answer garbage or stall, a restart in the middle, and
//! the released-tags retention policy.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A source server publishing to `targets`, with the auth file `tmp/auth`.
fn source(tmp: &Path, targets: &[&Server], extra: Env) -> Server {
    let auth = tmp.join("auth");
    std::fs::write(&auth, "publisher:secret").unwrap();
    let urls: Vec<String> = targets.iter().map(|t| format!("http://127.0.0.1:{}", t.port)).collect();
    source_to(tmp, &urls.join(","), extra)
}

fn source_to(tmp: &Path, urls: &str, extra: Env) -> Server {
    let auth = tmp.join("auth");
    if !auth.exists() {
        std::fs::write(&auth, "publisher:secret").unwrap();
    }
    let auth = auth.to_str().unwrap().to_string();
    let mut env: Vec<(&str, &str)> = vec![
        ("DLREPO_PUBLISH_URL", urls),
        ("DLREPO_PUBLISH_AUTH", &auth),
        ("DLREPO_PUBLISH_MAX_REQUESTS", "4"),
        ("DLREPO_PUBLISH_TIMEOUT", "10"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env)
}

/// Two locked jobs sharing content, an internal locked job, an unlocked
/// job, with metadata, a nested path and a non-ASCII name.
fn populate(s: &Server, tag: &str) {
    let t = format!("/branches/b/{tag}");
    for (job, files) in [
        (
            "job1",
            vec![
                ("fmt/a.txt", "alpha"),
                ("fmt/dir/b é.txt", "beta"),
                ("doc/c.txt", "gamma"),
            ],
        ),
        ("job2", vec![("fmt/a.txt", "alpha"), ("fmt/z.txt", "zeta")]),
        ("internal", vec![("fmt/secret.txt", "internal only")]),
        ("unlocked", vec![("fmt/u.txt", "not locked")]),
    ] {
        for (path, data) in &files {
            let url = format!("{t}/{job}/{}", path.replace(' ', "%20").replace('é', "%C3%A9"));
            s.put(&url, data);
        }
        let formats: std::collections::BTreeSet<&str> =
            files.iter().map(|(p, _)| p.split('/').next().unwrap()).collect();
        for f in formats {
            s.req("PATCH", &format!("{t}/{job}/{f}/")).send().expect(200);
        }
        s.req("PATCH", &format!("{t}/{job}/"))
            .json(&format!(r#"{{"job": {{"arch": "X86_64", "job": "{job}"}}}}"#))
            .send()
            .expect(200);
        if job == "internal" {
            s.req("PUT", &format!("{t}/{job}/"))
                .json(r#"{"job": {"internal": true}}"#)
                .send()
                .expect(200);
        }
        if job != "unlocked" {
            s.lock_job(&format!("{t}/{job}/")).expect(200);
        }
    }
}

fn status(s: &Server, tag: &str) -> Value {
    s.get(&format!("/branches/b/{tag}/")).json()["tag"]["publish_status"].clone()
}

#[track_caller]
fn wait_status(s: &Server, tag: &str, what: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = poll(std::time::Duration::from_secs(30), || {
        last = status(s, tag).as_str().unwrap_or("null").to_string();
        what(&last)
    });
    assert!(ok, "publish status stayed {last:?}\n{}", s.log());
    last
}

fn release(s: &Server, tag: &str, on: bool) {
    s.req("POST", &format!("/branches/b/{tag}/"))
        .json(&format!(r#"{{"tag": {{"released": {on}}}}}"#))
        .send()
        .expect(200);
}

/// What a mirror must hold after a publish: the same digests and bytes,
/// the same job digest and metadata, locked; no internal or unlocked job.
#[track_caller]
fn check_mirror(src: &Server, dst: &Server, tag: &str) {
    let t = format!("/branches/b/{tag}");
    for (job, formats) in [("job1", &["fmt", "doc"][..]), ("job2", &["fmt"][..])] {
        for f in formats {
            let url = format!("{t}/{job}/{f}.sha256");
            let (a, b) = (src.get(&url), dst.get(&url));
            b.expect(200);
            assert_eq!(a.body, b.body, "{url}");
        }
        let (a, b) = (
            src.get(&format!("{t}/{job}/")).json(),
            dst.get(&format!("{t}/{job}/")).json(),
        );
        assert_eq!(b["job"]["locked"], true, "{job} locked on the mirror");
        assert_eq!(a["job"]["digest"], b["job"]["digest"], "{job} digest");
        assert_eq!(b["job"]["arch"], "x86_64");
        assert!(src.path(&format!("branches/b/{tag}/{job}/.released")).exists());
    }
    assert_eq!(dst.get(&format!("{t}/job1/fmt/dir/b%20%C3%A9.txt")).text(), "beta");
    dst.get(&format!("{t}/internal/")).expect(404);
    dst.get(&format!("{t}/unlocked/")).expect(404);
    assert!(!src.path(&format!("branches/b/{tag}/internal/.released")).exists());
}

#[test]
fn a_release_copies_the_locked_jobs_to_every_mirror_and_links_what_they_have() {
    let tmp = tempfile::tempdir().unwrap();
    let m1 = Server::start();
    let m2 = Server::start();
    // The first mirror already has one of the blobs, under another name.
    m1.put("/branches/other/t/j/f/x", "gamma");
    let src = source(tmp.path(), &[&m1, &m2], &[]);
    populate(&src, "t");
    release(&src, "t", true);
    let urls = format!("http://127.0.0.1:{},http://127.0.0.1:{}", m1.port, m2.port);
    assert_eq!(
        wait_status(&src, "t", |s| s.starts_with("published") || s.starts_with("error")),
        format!("published to {urls}")
    );
    assert!(src.path("branches/b/t/.released").exists());
    check_mirror(&src, &m1, "t");
    check_mirror(&src, &m2, "t");
    assert_eq!(src.get("/branches/b/t/").json()["tag"]["released"], true);
    // Bytes went out once per mirror and content: the blob m1 had, and the
    // file job2 shares with job1, were linked without a body.
    let log = src.log();
    let m1_origin = format!("on http://127.0.0.1:{}", m1.port);
    let linked = |path: &str, origin: &str| {
        log.lines()
            .any(|l| l.contains("publish: linked") && l.contains(path) && l.contains(origin))
    };
    assert!(linked("/branches/b/t/job1/doc/c.txt", &m1_origin), "{log}");
    assert!(linked("/branches/b/t/job2/fmt/a.txt", &m1_origin), "{log}");
    let sent = log.lines().filter(|l| l.contains("publish: sending")).count();
    // alpha, beta, gamma (m2 only) and zeta: 3 to m1, 4 to m2.
    assert_eq!(sent, 7, "{log}");

    // Unreleasing removes the tag from the mirrors and the flags here.
    release(&src, "t", false);
    wait_status(&src, "t", |s| s == "null");
    for m in [&m1, &m2] {
        m.get("/branches/b/t/").expect(404);
    }
    assert!(!src.path("branches/b/t/.released").exists());
    assert!(!src.path("branches/b/t/job1/.released").exists());
    // Released again: everything is sent again, since the mirrors lost it.
    release(&src, "t", true);
    assert!(wait_status(&src, "t", |s| !s.contains("progress")
        && !s.starts_with("uploading")
        && s != "queued"
        && s != "null")
    .starts_with("published"));
    check_mirror(&src, &m1, "t");
}

#[test]
fn a_mirror_down_during_the_publish_is_retried_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Server::start();
    let port = m.port.to_string();
    m.stop();
    let src = source_to(tmp.path(), &format!("http://127.0.0.1:{port}"), &[]);
    populate(&src, "t");
    release(&src, "t", true);
    wait_status(&src, "t", |s| s.starts_with("retrying"));
    // The mirror comes back on its port.
    let back = Server::start_with(&[("DLREPO_LISTEN_PORT", &port)]);
    assert_eq!(
        wait_status(&src, "t", |s| s.starts_with("published") || s.starts_with("error")),
        format!("published to http://127.0.0.1:{port}")
    );
    check_mirror(&src, &back, "t");
}

#[test]
fn a_failing_mirror_does_not_stop_the_others_and_the_status_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let good = Server::start();
    let down = free_port();
    let src = source_to(
        tmp.path(),
        &format!("http://127.0.0.1:{down},http://127.0.0.1:{}", good.port),
        &[("DLREPO_PUBLISH_RETRIES", "1")],
    );
    populate(&src, "t");
    release(&src, "t", true);
    let st = wait_status(&src, "t", |s| s.starts_with("error"));
    assert!(
        st.contains(&format!("http://127.0.0.1:{down}")) && st.contains("cannot connect"),
        "{st}"
    );
    check_mirror(&src, &good, "t");
    // Not released here until every mirror has it.
    assert!(!src.path("branches/b/t/.released").exists());
}

/// A mirror that answers every connection with `reply` (or nothing at all).
fn fake_mirror(reply: Option<&'static [u8]>) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            let mut c = c;
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            match reply {
                Some(r) => {
                    let _ = c.write_all(r);
                }
                // Stalls: keeps the connection open, says nothing.
                None => held.push(c),
            }
        }
    });
    port
}

#[test]
fn bad_mirrors_end_in_a_clear_status_without_a_stuck_task() {
    let tmp = tempfile::tempdir().unwrap();
    // Wrong credentials: 401, not retried.
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("auth"), "publisher:right:users\n").unwrap();
    std::fs::create_dir_all(etc.path().join("acls")).unwrap();
    std::fs::write(etc.path().join("acls/users"), "rw /**\n").unwrap();
    let guarded = Server::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", etc.path().join("auth").to_str().unwrap()),
        ("DLREPO_ACLS_DIR", etc.path().join("acls").to_str().unwrap()),
    ]);
    let garbage = fake_mirror(Some(b"this is not HTTP\r\n\r\n"));
    let stall = fake_mirror(None);
    for (url, expect) in [
        (
            format!("http://127.0.0.1:{}", guarded.port),
            "401 Unauthorized (check the credentials",
        ),
        (format!("http://127.0.0.1:{garbage}"), "http://127.0.0.1"),
        (format!("http://127.0.0.1:{stall}"), "no answer within 1 s"),
        ("ftp://example.invalid".to_string(), "invalid publish URL"),
    ] {
        let tag = format!("t{}", url.len());
        let src = source_to(
            tmp.path(),
            &url,
            &[("DLREPO_PUBLISH_RETRIES", "0"), ("DLREPO_PUBLISH_TIMEOUT", "1")],
        );
        populate(&src, &tag);
        release(&src, &tag, true);
        let st = wait_status(&src, &tag, |s| s.starts_with("error") || s.starts_with("published"));
        assert!(st.starts_with("error: ") && st.contains(expect), "{url}: {st}");
        assert!(!src.log().contains("panicked"));
        // The tag is not stuck: a new request runs at once.
        release(&src, &tag, false);
        wait_status(&src, &tag, |s| s.starts_with("error") || s == "null");
    }
}

#[test]
fn a_restart_in_the_middle_resumes_the_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Server::start();
    // The filter command holds the run while the marker exists.
    let marker = tmp.path().join("hold");
    let started = tmp.path().join("started");
    std::fs::write(&marker, "").unwrap();
    let filter = tmp.path().join("filter");
    std::fs::write(
        &filter,
        format!(
            "#!/bin/sh\ntouch '{}'\nwhile [ -e '{}' ]; do sleep 0.05; done\nexit 0\n",
            started.display(),
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&filter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut src = source(
        tmp.path(),
        &[&m],
        &[("DLREPO_PUBLISH_FILTER_CMD", filter.to_str().unwrap())],
    );
    populate(&src, "t");
    release(&src, "t", true);
    wait_until("the publish to start", || started.exists());
    src.kill();
    std::fs::remove_file(&marker).unwrap();
    let urls = format!("http://127.0.0.1:{}", m.port);
    let auth: PathBuf = tmp.path().join("auth");
    let restarted = Server::restart_copy(
        &src,
        &[
            ("DLREPO_PUBLISH_URL", &urls),
            ("DLREPO_PUBLISH_AUTH", auth.to_str().unwrap()),
        ],
    );
    assert_eq!(
        wait_status(&restarted, "t", |s| s.starts_with("published")
            || s.starts_with("error")),
        format!("published to {urls}")
    );
    check_mirror(&restarted, &m, "t");
    assert!(restarted.log().contains("resuming the publish"));
    // Done: nothing is left to resume.
    assert_eq!(
        std::fs::read_dir(restarted.path(".dlrepo-rs/publish")).unwrap().count(),
        0
    );
}

#[test]
fn the_released_tags_policy_unpublishes_before_it_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Server::start();
    let src = source(tmp.path(), &[&m], &[]);
    for tag in ["old", "new"] {
        populate(&src, tag);
        release(&src, tag, true);
        wait_status(&src, tag, |s| s.starts_with("published"));
        // Distinct creation times.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stamp = src.path("branches/b/old/.stamp");
    let f = std::fs::File::options().write(true).open(&stamp).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    src.req("POST", "/branches/b/")
        .json(r#"{"branch": {"max_released_tags": 1}}"#)
        .send()
        .expect(200);
    src.signal(nix::sys::signal::Signal::SIGUSR1);
    wait_until("the old tag to go", || !src.path("branches/b/old").exists());
    m.get("/branches/b/old/").expect(404);
    m.get("/branches/b/new/").expect(200);
    assert_eq!(
        src.get("/branches/b/").json()["branch"]["tags"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let _ = json!(null);
}
