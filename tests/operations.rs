//! The operator's endpoints: `/health` (200 while the root takes writes,
//! 503 when it is full, no credentials needed) and `/cleanup` (the status
//! for readers of `/`, a full run on `POST` for whoever may delete under
//! `/branches/`).

mod common;

use common::*;
use std::time::Duration;

#[test]
fn health_answers_ok_with_what_a_balancer_and_an_operator_want() {
    let s = Server::start();
    let r = s.get("/health");
    r.expect(200);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["root_writable"], true);
    assert!(v["uptime_seconds"].as_u64().is_some());
    assert!(v["free_bytes"].as_u64().unwrap() > 0);
    assert!(v["cleanup_running"].is_boolean());
    s.req("HEAD", "/health").send().expect(200);
    let r = s.req("PUT", "/health").body(b"x").send();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    // Only the exact name: an artifact path never collides with it.
    s.get("/health/").expect(404);
}

#[test]
fn health_turns_503_when_the_root_is_full_and_200_again_once_there_is_room() {
    let Some(fs) = Tmpfs::mount("8m") else { return };
    let root = fs.dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let s = Server::start_at(&root, &[]);
    s.get("/health").expect(200);
    let filler = fs.fill();
    let r = s.get("/health");
    assert_eq!(r.status, 503, "{}", r.text());
    let v = r.json();
    assert_eq!(v["root_writable"], false);
    assert_eq!(v["status"], "unavailable");
    assert!(v["root_error"].as_str().unwrap().contains("space"), "{v}");
    std::fs::remove_file(filler).unwrap();
    s.get("/health").expect(200);
}

const AUTH: &str = "admin:a:admins\nreader:r:readers\nuser:u:users\n";

fn with_auth() -> (Server, tempfile::TempDir) {
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("auth"), AUTH).unwrap();
    let acls = etc.path().join("acls");
    std::fs::create_dir_all(&acls).unwrap();
    std::fs::write(acls.join("admins"), "rw /**\n").unwrap();
    std::fs::write(acls.join("readers"), "r /**\n").unwrap();
    std::fs::write(acls.join("users"), "rw /~$user/**\n").unwrap();
    let s = Server::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", etc.path().join("auth").to_str().unwrap()),
        ("DLREPO_ACLS_DIR", acls.to_str().unwrap()),
    ]);
    (s, etc)
}

fn basic(login: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{pw}"))
    )
}

#[test]
fn health_needs_no_credentials_and_cleanup_follows_the_acls() {
    let (s, _etc) = with_auth();
    s.get("/health").expect(200);
    s.get("/cleanup").expect(401);
    let as_ = |who: (&str, &str), method: &str| {
        s.req(method, "/cleanup")
            .header("Authorization", &basic(who.0, who.1))
            .send()
    };
    as_(("user", "u"), "GET").expect(401);
    let r = as_(("reader", "r"), "GET");
    r.expect(200);
    let v = r.json();
    assert!(v["running"].is_boolean() && v["totals"]["runs"].is_u64(), "{v}");
    // A run is for administrators.
    as_(("reader", "r"), "POST").expect(401);
    as_(("user", "u"), "POST").expect(401);
    s.req("POST", "/cleanup").send().expect(401);
    let r = as_(("admin", "a"), "POST");
    assert_eq!(r.status, 202, "{}", r.text());
}

#[test]
fn post_cleanup_runs_a_full_cleanup_as_sigusr1_does() {
    let s = Server::start();
    // The startup run first.
    wait_until("the startup cleanup", || {
        s.get("/cleanup").json()["totals"]["runs"] == 1
    });
    let before = s.get("/cleanup").json();
    assert_eq!(before["last_run"]["trigger"], "startup");
    let r = s.req("POST", "/cleanup").send();
    assert_eq!(r.status, 202);
    assert!(r.json()["totals"].is_object());
    assert!(poll(Duration::from_secs(20), || {
        let v = s.get("/cleanup").json();
        v["totals"]["runs"] == 2 && v["last_run"]["trigger"] == "HTTP" && v["last_run"]["kind"] == "full"
    }));
    // The same figures as the file on the host (written just after).
    let file = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(s.path(".dlrepo-rs/cleanup.json")).unwrap_or_default())
            .unwrap_or_default()
    };
    assert!(poll(Duration::from_secs(10), || file()["totals"]
        == s.get("/cleanup").json()["totals"]));
    let r = s.req("DELETE", "/cleanup").send();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,POST"));
}

/// A 5-byte upload, a link-only upload of the same content, a download.
fn upload_link_download(s: &Server) {
    let body = b"hello";
    s.put_file("/branches/b/t/j/f/a.txt", body).expect(201);
    let d = sha256_digest(body);
    s.req("PUT", "/branches/b/t/j/f/copy.txt")
        .header("Digest", &d)
        .header("X-Dlrepo-Link", &d)
        .send()
        .expect(201);
    s.get("/branches/b/t/j/f/a.txt").expect(200);
}

fn access_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with("INFO: [")).collect()
}

#[test]
fn the_access_log_has_one_line_per_request_saying_what_an_upload_did() {
    let s = Server::start_with(&[("DLREPO_ACCESS_LOG", "1"), ("DLREPO_LOG_LEVEL", "INFO")]);
    upload_link_download(&s);
    s.get("/nope").expect(404);
    let log = s.log();
    let lines = access_lines(&log);
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no access line with {needle:?} in\n{log}"))
            .to_string()
    };
    // [time] client user "METHOD path" status in out µs upload
    let stored = find("\"PUT /branches/b/t/j/f/a.txt\"");
    let fields: Vec<&str> = stored.split("\" ").nth(1).unwrap().split(' ').collect();
    assert_eq!(&fields[..3], ["201", "5", "12"], "{stored}"); // "201: Created"
    assert!(
        fields[3].ends_with("us") && fields[3].trim_end_matches("us").parse::<u64>().is_ok(),
        "{stored}"
    );
    assert_eq!(fields[4], "stored");
    assert!(stored.contains("] 127.0.0.1 - \"PUT"), "{stored}");
    let linked = find("\"PUT /branches/b/t/j/f/copy.txt\"");
    assert!(
        linked.contains("\" 201 0 12 ") && linked.ends_with("us linked"),
        "{linked}"
    );
    let got = find("\"GET /branches/b/t/j/f/a.txt\"");
    assert!(got.contains("\" 200 0 5 ") && got.ends_with("us -"), "{got}");
    find("\"GET /nope\" 404 ");
    assert_eq!(lines.len(), 4, "{log}");
    // The original's DEBUG line is not shown at INFO.
    assert!(!log.contains("None@127.0.0.1"));
}

#[test]
fn the_access_log_can_be_turned_off() {
    let s = Server::start_with(&[("DLREPO_ACCESS_LOG", "0"), ("DLREPO_LOG_LEVEL", "INFO")]);
    s.put_file("/branches/b/t/j/f/a.txt", b"x").expect(201);
    s.get("/branches/b/t/j/f/a.txt").expect(200);
    assert!(access_lines(&s.log()).is_empty(), "{}", s.log());
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let s = Server::start_with(&[
        ("DLREPO_ACCESS_LOG", "1"),
        ("DLREPO_LOG_LEVEL", "INFO"),
        ("DLREPO_LOG_FORMAT", "json"),
    ]);
    s.put_file("/branches/b/t/j/f/a.txt", b"hello").expect(201);
    s.get("/branches/b/t/j/f/a.txt").expect(200);
    let log = s.log();
    let objects: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(objects
        .iter()
        .any(|o| o["message"].as_str().is_some_and(|m| m.contains("Running on"))));
    let put = objects
        .iter()
        .find(|o| o["target"] == "access" && o["method"] == "PUT")
        .unwrap_or_else(|| panic!("no access object for the PUT in\n{log}"));
    assert_eq!(put["status"], 201);
    assert_eq!(put["bytes_in"], 5);
    assert_eq!(put["upload"], "stored");
    assert_eq!(put["path"], "/branches/b/t/j/f/a.txt");
    assert!(put["micros"].is_u64());
    let get = objects
        .iter()
        .find(|o| o["target"] == "access" && o["method"] == "GET")
        .unwrap();
    assert_eq!(get["bytes_out"], 5);
}

/// A strict reading of the OpenMetrics text: every sample belongs to a
/// family declared by `# TYPE`, values are numbers, `# EOF` ends it.
fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut families = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "{text}");
    for l in &lines[..lines.len() - 1] {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{l}");
            families.insert(name.to_string());
        } else if l.starts_with("# HELP ") {
        } else {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample {l:?}"));
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
            let name = series.split('{').next().unwrap();
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(families.contains(family), "{name} has no # TYPE: {l}");
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{l}");
                }
            }
            assert!(samples.insert(series.to_string(), v).is_none(), "{series} twice");
        }
    }
    samples
}

#[test]
fn metrics_count_uploads_and_downloads_by_the_right_amounts() {
    let s = Server::start();
    let scrape = || {
        let r = s.get("/metrics");
        r.expect(200);
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"));
        parse_metrics(&r.text())
    };
    let before = scrape();
    let v = |m: &std::collections::HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    upload_link_download(&s);
    s.get("/branches/nope/").expect(404);
    let after = scrape();
    let delta = |k: &str| v(&after, k) - v(&before, k);
    assert_eq!(
        delta(r#"dlrepo_http_requests_total{method="PUT",route="artifact",status="2xx"}"#),
        2.0
    );
    assert_eq!(
        delta(r#"dlrepo_http_requests_total{method="GET",route="artifact",status="2xx"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"dlrepo_http_requests_total{method="GET",route="branch",status="4xx"}"#),
        1.0
    );
    // The first scrape counts too, once it has been answered.
    assert_eq!(
        delta(r#"dlrepo_http_requests_total{method="GET",route="operations",status="2xx"}"#),
        1.0
    );
    assert_eq!(delta(r#"dlrepo_uploads_total{result="stored"}"#), 1.0);
    assert_eq!(delta(r#"dlrepo_uploads_total{result="linked"}"#), 1.0);
    assert_eq!(delta("dlrepo_http_request_bytes_total"), 5.0);
    assert_eq!(delta("dlrepo_upload_duration_seconds_count"), 2.0);
    assert_eq!(delta("dlrepo_download_duration_seconds_count"), 1.0);
    assert_eq!(v(&after, r#"dlrepo_download_duration_seconds_bucket{le="+Inf"}"#), 1.0);
    assert!(delta("dlrepo_download_duration_seconds_sum") > 0.0);
    assert!(v(&after, "dlrepo_root_free_bytes") > 0.0);
    assert_eq!(
        v(&after, r#"dlrepo_cleanup_runs_total{kind="full",trigger="startup"}"#),
        1.0,
        "the startup run"
    );
    // The scrape's own connection is open while it is answered.
    assert!(v(&after, "dlrepo_open_connections") >= 1.0);
    assert_eq!(v(&after, "dlrepo_staging_uploads"), 0.0);
    assert!(after.contains_key("dlrepo_digests_journal_backlog"));
}

#[test]
fn metrics_count_the_upload_bodies_being_received() {
    let s = Server::start();
    let staging = || {
        let m = parse_metrics(&s.get("/metrics").text());
        m.get("dlrepo_staging_uploads").copied().unwrap_or(-1.0)
    };
    assert_eq!(staging(), 0.0);
    let c = s.begin_put("/branches/b/t/j/f/big", 100_000, 10_000);
    wait_until("the body to be staged", || staging() == 1.0);
    drop(c);
    wait_until("the staging file to go", || staging() == 0.0);
}

#[test]
fn metrics_follow_the_acls() {
    let (s, _etc) = with_auth();
    s.get("/metrics").expect(401);
    let get = |who: (&str, &str)| {
        s.req("GET", "/metrics")
            .header("Authorization", &basic(who.0, who.1))
            .send()
    };
    get(("user", "u")).expect(401);
    get(("reader", "r")).expect(200);
}

#[test]
fn the_metrics_listener_answers_without_credentials_and_only_metrics_and_health() {
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("auth"), AUTH).unwrap();
    let acls = etc.path().join("acls");
    std::fs::create_dir_all(&acls).unwrap();
    std::fs::write(acls.join("admins"), "rw /**\n").unwrap();
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let s = Server::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", etc.path().join("auth").to_str().unwrap()),
        ("DLREPO_ACLS_DIR", acls.to_str().unwrap()),
        ("DLREPO_METRICS_ADDRESS", &maddr),
    ]);
    wait_for_port("the metrics listener", mport);
    let on_metrics = |method: &str, path: &str| {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", mport)).unwrap();
        use std::io::{Read, Write};
        write!(c, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    let m = on_metrics("GET", "/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.contains("dlrepo_http_requests") && m.trim_end().ends_with("# EOF"),
        "{m}"
    );
    assert!(on_metrics("GET", "/health").starts_with("HTTP/1.1 200"));
    // Nothing else is reachable there, and the main port still asks who calls.
    assert!(on_metrics("GET", "/branches/").starts_with("HTTP/1.1 404"));
    assert!(on_metrics("POST", "/metrics").starts_with("HTTP/1.1 405"));
    s.get("/metrics").expect(401);
}

#[test]
fn a_metrics_address_off_the_loopback_is_refused_at_startup() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dlrepo"))
        .env_clear()
        .env("DLREPO_ROOT_DIR", tmp.path())
        .env("DLREPO_LOG_OUTPUT", "console")
        .env("DLREPO_LISTEN_PORT", free_port().to_string())
        .env("DLREPO_METRICS_ADDRESS", "0.0.0.0:9100")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DLREPO_METRICS_ADDRESS") && err.contains("loopback"),
        "{err}"
    );
}
