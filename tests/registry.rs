//! The container registry with real clients (skopeo, the docker CLI where
//! present) and at the protocol level: sessions, chunks, refusals, expiry,
//! the GC, authentication, and a root shared with dlrepo 0.44.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------- images

/// A layer: an uncompressed tar holding one file.
fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, content).unwrap();
    b.into_inner().unwrap()
}

fn config(layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// An OCI image layout in `dir`, its image tagged `v1`. Returns the
/// layers' digests.
fn oci_layout(dir: &Path, layers: &[&[u8]]) -> Vec<String> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        std::fs::write(blobs.join(sha256_hex(data)), data).unwrap();
        json!({"digest": sha256_digest(data), "size": data.len()})
    };
    let cfg = config(layers);
    let mut c = put(&cfg);
    c["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let ls: Vec<Value> = layers
        .iter()
        .map(|l| {
            let mut d = put(l);
            d["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
            d
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": c, "layers": ls,
    }))
    .unwrap();
    let m = put(&manifest);
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m["digest"], "size": m["size"],
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    layers.iter().map(|l| sha256_digest(l)).collect()
}

/// A `docker save` tarball of one image.
fn docker_archive(path: &Path, layers: &[&[u8]]) {
    let cfg = config(layers);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    let cfg_name = format!("{}.json", sha256_hex(&cfg));
    add(&cfg_name, &cfg);
    let mut names = Vec::new();
    for l in layers {
        let n = format!("{}/layer.tar", sha256_hex(l));
        add(&n, l);
        names.push(n);
    }
    let manifest = json!([{"Config": cfg_name, "RepoTags": ["img:v1"], "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
}

#[track_caller]
fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is needed for this test: apt-get install skopeo (.ci/run installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn reg(s: &Server) -> String {
    format!("127.0.0.1:{}", s.port)
}

/// The layer blobs of an OCI layout, by digest.
fn layout_blobs(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

// ------------------------------------------------------------- real clients

#[test]
fn skopeo_pushes_inspects_lists_and_pulls_images_layer_for_layer() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let l1 = layer("hello.txt", b"hello from a layer\n");
    let l2 = layer("big.bin", &big);
    let src = tmp.path().join("src");
    oci_layout(&src, &[&l1, &l2]);
    let dst = format!("docker://{}/main/app:v1.0", reg(&s));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &dst,
    ]);
    // skopeo compresses uncompressed layers on the way: the pushed digests
    // are those of the manifest it stored.
    let stored = s.get("/v2/main/app/manifests/v1.0").json();
    let digests: Vec<String> = stored["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(digests.len(), 2);
    // Stored as the job's container format, as links to global blobs.
    let container = s.path("branches/main/v1.0/app/container");
    for d in &digests {
        let hex = d.trim_start_matches("sha256:");
        let linked = container.join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
        assert!(linked.is_file(), "{d}");
        assert_eq!(nlink(&linked), 2);
    }
    let inspect: Value = serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &dst])).unwrap();
    assert_eq!(inspect["Layers"], json!(digests));
    assert_eq!(inspect["Architecture"], "amd64");
    let tags: Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/main/app", reg(&s)),
    ]))
    .unwrap();
    assert_eq!(tags["Tags"], json!(["latest", "v1.0"]));

    // From a docker-archive tarball into another job, and a second tag.
    let archive = tmp.path().join("img.tar");
    docker_archive(&archive, &[&l1]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{}/main/tool:v2.0", reg(&s)),
    ]);
    let m = s.get("/v2/main/tool/manifests/latest");
    m.expect(200);
    assert_eq!(
        m.header("content-type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    assert_eq!(m.header("docker-content-digest"), Some(sha256_digest(&m.body).as_str()));

    // Back to an OCI layout: the same layers, byte for byte, and the
    // config as it was pushed.
    let back = tmp.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dst,
        &format!("oci:{}:v1", back.display()),
    ]);
    let (a, b) = (layout_blobs(&src), layout_blobs(&back));
    for d in &digests {
        let hex = d.trim_start_matches("sha256:");
        assert_eq!(s.get(&format!("/v2/main/app/blobs/{d}")).body, b[hex], "layer {d}");
    }
    let cfg = stored["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    assert_eq!(a[&cfg], b[&cfg], "config");
    let catalog = s.get("/v2/_catalog").json();
    let mut repos: Vec<String> = catalog["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    repos.sort();
    assert_eq!(repos, ["main/app", "main/tool"]);
}

fn auth_server() -> (Server, tempfile::TempDir) {
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("auth"), "ci:s3cret:builders\n").unwrap();
    std::fs::create_dir_all(etc.path().join("acls")).unwrap();
    std::fs::write(etc.path().join("acls/builders"), "rw /**\n").unwrap();
    let s = Server::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", etc.path().join("auth").to_str().unwrap()),
        ("DLREPO_ACLS_DIR", etc.path().join("acls").to_str().unwrap()),
    ]);
    (s, etc)
}

#[test]
fn clients_log_in_with_basic_credentials() {
    let (s, _etc) = auth_server();
    let v2 = s.get("/v2/");
    v2.expect(401);
    assert_eq!(v2.header("content-type"), Some("application/json"));
    assert!(v2.header("www-authenticate").unwrap_or("").starts_with("Basic realm="));
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    oci_layout(&src, &[&layer("a", b"a")]);
    let dst = format!("docker://{}/main/app:v1", reg(&s));
    let refused = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--dest-creds", "ci:wrong"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(&dst)
        .output()
        .expect("skopeo");
    assert!(!refused.status.success());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "ci:s3cret",
        &format!("oci:{}:v1", src.display()),
        &dst,
    ]);
    skopeo(&["inspect", "--tls-verify=false", "--creds", "ci:s3cret", &dst]);

    // The docker CLI logs in on its own (no daemon needed), where present.
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("docker CLI not found: its part is not checked");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let docker = |args: &[&str]| {
        Command::new("docker")
            .env("DOCKER_CONFIG", home.path())
            .args(args)
            .output()
            .expect("docker")
    };
    assert!(!docker(&["login", &reg(&s), "-u", "ci", "-p", "wrong"]).status.success());
    let ok = docker(&["login", &reg(&s), "-u", "ci", "-p", "s3cret"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let inspect = docker(&["manifest", "inspect", "--insecure", &format!("{}/main/app:v1", reg(&s))]);
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let m: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
}

#[test]
fn a_tls_hello_on_the_plain_port_is_answered_at_once() {
    let s = Server::start();
    let mut c = s.connect();
    // The start of a TLS ClientHello.
    use std::io::{Read, Write};
    c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
        .unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let started = std::time::Instant::now();
    let _ = c.read_to_end(&mut buf);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the connection hung"
    );
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}

// ----------------------------------------------------------- the protocol

fn post(s: &Server, name: &str) -> String {
    let r = s.req("POST", &format!("/v2/{name}/blobs/uploads/")).send();
    r.expect(202);
    assert_eq!(r.header("docker-distribution-api-version"), Some("registry/2.0"));
    assert_eq!(r.header("range"), Some("0-0"));
    r.header("location").unwrap().to_string()
}

#[track_caller]
fn registry_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["errors"][0]["code"], code, "{}", r.text());
}

#[test]
fn sessions_take_chunks_in_order_and_report_their_offset() {
    let s = Server::start();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
    let loc = post(&s, "b/j");
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "0-59999")
        .body(&data[..60_000])
        .send();
    r.expect(202);
    assert_eq!(r.header("range"), Some("0-59999"));
    // A gap: 416, with where the upload stands.
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "70000-99999")
        .body(&data[70_000..])
        .send();
    registry_error(&r, 416, "BLOB_UPLOAD_INVALID");
    assert_eq!(r.header("range"), Some("0-59999"));
    // The same chunk twice is a gap too; a length that disagrees is refused.
    s.req("PATCH", &loc)
        .header("Content-Range", "0-59999")
        .body(&data[..60_000])
        .send()
        .expect(416);
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "60000-60009")
        .body(b"12345")
        .send();
    registry_error(&r, 400, "BLOB_UPLOAD_INVALID");
    let g = s.get(&loc);
    g.expect(204);
    assert_eq!(g.header("range"), Some("0-59999"));
    // The rest without a range (chunked), the end with the digest.
    s.req("PATCH", &loc)
        .body(&data[60_000..90_000])
        .chunked()
        .send()
        .expect(202);
    let r = s
        .req("PUT", &format!("{loc}?digest={}", sha256_digest(&data)))
        .body(&data[90_000..])
        .chunked()
        .send();
    r.expect(201);
    assert_eq!(r.header("docker-content-digest"), Some(sha256_digest(&data).as_str()));
    assert_eq!(s.staging_files(), 0);
    let blob = s.get(&format!("/v2/any/name/blobs/{}", sha256_digest(&data)));
    blob.expect(200);
    assert_eq!(blob.body, data);
    let h = s.req("HEAD", &format!("/v2/b/j/blobs/{}", sha256_digest(&data))).send();
    h.expect(200);
    assert_eq!(h.header("content-length"), Some("100000"));
    assert!(h.header("content-type").is_none());
    // A finished session is gone.
    registry_error(&s.get(&loc), 404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn refused_sessions_leave_nothing_behind() {
    let s = Server::start_with(&[("DLREPO_UPLOAD_SESSION_TIMEOUT", "1")]);
    // A wrong digest: the data goes.
    let loc = post(&s, "b/j");
    s.req("PATCH", &loc).body(b"some data").send().expect(202);
    let r = s
        .req("PUT", &format!("{loc}?digest={}", sha256_digest(b"other")))
        .send();
    registry_error(&r, 400, "BLOB_UPLOAD_INVALID");
    assert_eq!(s.staging_files(), 0);
    // No digest at all: the same.
    let loc = post(&s, "b/j");
    registry_error(&s.req("PUT", &loc).send(), 400, "BLOB_UPLOAD_INVALID");
    assert_eq!(s.staging_files(), 0);
    // Cancelled.
    let loc = post(&s, "b/j");
    s.req("DELETE", &loc).send().expect(204);
    assert_eq!(s.staging_files(), 0);
    registry_error(&s.req("DELETE", &loc).send(), 404, "BLOB_UPLOAD_UNKNOWN");
    registry_error(&s.get("/v2/b/j/blobs/uploads/nope"), 404, "BLOB_UPLOAD_UNKNOWN");
    // Abandoned: it expires, and its staging file goes.
    let loc = post(&s, "b/j");
    s.req("PATCH", &loc).body(b"abandoned").send().expect(202);
    assert_eq!(s.staging_files(), 1);
    wait_until("the session to expire", || s.staging_files() == 0);
    registry_error(&s.get(&loc), 404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn manifests_are_checked_stored_byte_for_byte_and_served_as_stored() {
    let s = Server::start();
    let put_blob = |data: &[u8]| {
        let loc = post(&s, "b/j");
        s.req("PUT", &format!("{loc}?digest={}", sha256_digest(data)))
            .body(data)
            .send()
            .expect(201);
    };
    let cfg = br#"{"architecture": "amd64"}"#;
    let l = layer("x", b"x");
    put_blob(cfg);
    put_blob(&l);
    // The client's sizes are replaced by the true ones.
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(cfg), "size": 1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(&l)}],
        "annotations": {"note": "caf\u{e9}"},
    });
    let r = s
        .req("PUT", "/v2/b/j/manifests/t1")
        .body(manifest.to_string().as_bytes())
        .send();
    r.expect(201);
    let digest = r.header("docker-content-digest").unwrap().to_string();
    assert_eq!(r.header("location"), Some("/v2/b/j/manifests/t1"));
    let got = s.get("/v2/b/j/manifests/t1");
    got.expect(200);
    assert_eq!(
        sha256_digest(&got.body),
        digest,
        "the digest is that of the bytes served"
    );
    assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
    let stored: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(stored["config"]["size"], cfg.len());
    assert_eq!(stored["layers"][0]["size"], l.len());
    assert!(
        got.text().contains(r#""note": "caf\u00e9""#),
        "Python's JSON: {}",
        got.text()
    );
    let by_digest = s.get(&format!("/v2/b/j/manifests/{digest}"));
    assert_eq!(by_digest.body, got.body);
    let head = s.req("HEAD", "/v2/b/j/manifests/latest").send();
    head.expect(200);
    assert_eq!(
        head.header("content-length").map(str::to_string),
        Some(got.body.len().to_string())
    );
    // The job's digest takes the image's manifest.
    s.lock_job("/branches/b/t1/j/").expect(200);

    // Refusals, and the image stays as it was.
    let list = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []});
    registry_error(
        &s.req("PUT", "/v2/b/j/manifests/t1")
            .body(list.to_string().as_bytes())
            .send(),
        400,
        "UNSUPPORTED",
    );
    let mut missing = manifest.clone();
    missing["layers"][0]["digest"] = json!(sha256_digest(b"never uploaded"));
    registry_error(
        &s.req("PUT", "/v2/b/j/manifests/t1")
            .body(missing.to_string().as_bytes())
            .send(),
        404,
        "BLOB_UNKNOWN",
    );
    registry_error(
        &s.req("PUT", "/v2/b/j/manifests/t1").body(b"{not json").send(),
        400,
        "MANIFEST_INVALID",
    );
    registry_error(
        &s.req("PUT", "/v2/b/j/manifests/latest").body(b"{}").send(),
        400,
        "UNSUPPORTED",
    );
    registry_error(
        &s.req("PUT", &format!("/v2/b/j/manifests/{digest}")).body(b"{}").send(),
        400,
        "UNSUPPORTED",
    );
    assert_eq!(s.get("/v2/b/j/manifests/t1").body, got.body);
    // Product images are read-only; unknown things say so.
    let r = s.req("PUT", "/v2/p/v/pb/manifests/1.0").body(b"{}").send();
    r.expect(405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    registry_error(&s.get("/v2/b/j/manifests/nope"), 404, "MANIFEST_UNKNOWN");
    registry_error(&s.get("/v2/b/j/manifests/sha256:zz"), 400, "MANIFEST_INVALID");
    registry_error(&s.get("/v2/b/j/blobs/sha256:zz"), 404, "BLOB_UNKNOWN");
    assert_eq!(
        s.get("/v2/nope/none/tags/list").json(),
        json!({"name": "nope/none", "tags": []})
    );
    // Monolithic upload and mount answer 201 at once.
    let data = b"monolithic";
    let r = s
        .req(
            "POST",
            &format!("/v2/b/j/blobs/uploads/?digest={}", sha256_digest(data)),
        )
        .body(data)
        .send();
    r.expect(201);
    assert_eq!(
        r.header("location").map(str::to_string),
        Some(format!("/v2/b/j/blobs/{}", sha256_digest(data)))
    );
    let r = s
        .req(
            "POST",
            &format!("/v2/other/job/blobs/uploads/?mount={}&from=b/j", sha256_digest(data)),
        )
        .send();
    r.expect(201);
    assert_eq!(s.staging_files(), 0);
}

/// A layer upload paused between its last PATCH and its PUT, and a layer
/// pushed but not yet named by a manifest, both survive GC runs with a
/// zero orphan lifetime.
#[test]
fn sessions_and_pushed_layers_survive_the_gc_until_their_manifest() {
    let s = Server::start_with(&[("DLREPO_ORPHAN_BLOB_LIFETIME", "0")]);
    let runs = |s: &Server| s.log().matches("cleanup (full, SIGUSR1) done").count();
    let gc = |s: &Server| {
        let n = runs(s);
        s.signal(nix::sys::signal::Signal::SIGUSR1);
        wait_until("a cleanup run", || runs(s) > n);
    };
    let data = layer("l", &[5u8; 200_000]);
    let loc = post(&s, "b/j");
    s.req("PATCH", &loc).body(&data).send().expect(202);
    gc(&s);
    assert_eq!(s.staging_files(), 1, "the session's data survived");
    s.req("PUT", &format!("{loc}?digest={}", sha256_digest(&data)))
        .send()
        .expect(201);
    let cfg = b"{}";
    let loc = post(&s, "b/j");
    s.req("PUT", &format!("{loc}?digest={}", sha256_digest(cfg)))
        .body(cfg)
        .send()
        .expect(201);
    gc(&s);
    s.req("HEAD", &format!("/v2/b/j/blobs/{}", sha256_digest(&data)))
        .send()
        .expect(200);
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(&data)}],
    });
    s.req("PUT", "/v2/b/j/manifests/t")
        .body(manifest.to_string().as_bytes())
        .send()
        .expect(201);
    gc(&s);
    assert_eq!(s.get(&format!("/v2/b/j/blobs/{}", sha256_digest(&data))).body, data);
}

// ------------------------------------------------------- dlrepo 0.44

/// Pushes an image with skopeo to `s` as `main/app:v1`; returns its layers.
fn push(s: &Server, tmp: &Path, what: &[u8]) -> Vec<String> {
    let src: PathBuf = tmp.join(format!("src-{}", s.port));
    let l = layer("f", what);
    oci_layout(&src, &[&l]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/main/app:v1", reg(s)),
    ]);
    let m = s.get("/v2/main/app/manifests/v1").json();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn pull_matches(s: &Server, tmp: &Path, digests: &[String]) {
    let back = tmp.join(format!("back-{}", s.port));
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/main/app:v1", reg(s)),
        &format!("oci:{}:v1", back.display()),
    ]);
    let blobs = layout_blobs(&back);
    for d in digests {
        assert!(blobs.contains_key(d.trim_start_matches("sha256:")), "{d}");
    }
}

#[test]
fn images_pushed_to_either_server_are_pulled_from_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let env = [("DLREPO_TAG_CLEANUP_PERIOD", "0")];
    // 0.44 writes, this server reads the same root.
    let orig = Server::start_original_on(|_| {}, &env);
    let digests = push(&orig, tmp.path(), b"pushed to the original");
    let ours = Server::start_on(|root| copy_tree(&orig.root, root), &[]);
    pull_matches(&ours, tmp.path(), &digests);
    let a = orig.get("/v2/main/app/manifests/v1");
    let b = ours.get("/v2/main/app/manifests/v1");
    assert_eq!(a.body, b.body);
    assert_eq!(a.header("docker-content-digest"), b.header("docker-content-digest"));
    // This server writes, 0.44 reads.
    let ours = Server::start();
    let digests = push(&ours, tmp.path(), b"pushed to this server");
    let orig = Server::start_original_on(|root| copy_tree(&ours.root, root), &env);
    pull_matches(&orig, tmp.path(), &digests);
    assert_eq!(
        orig.get("/v2/main/app/tags/list").json(),
        ours.get("/v2/main/app/tags/list").json()
    );
}
