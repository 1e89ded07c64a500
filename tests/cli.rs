//! `dlrepo-cli` (ours) against this server and the original 0.44 server,
//! side by side with the original Python script: the same CI workflow, and
//! for each command the same stdout, stderr and exit code. Then what ours
//! adds: serving itself at `/cli` with the server's URL built in, resumed
//! downloads with the digest checked, retries of transient failures.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::*;

#[derive(Debug, PartialEq)]
struct Out {
    stdout: String,
    stderr: String,
    code: i32,
}

struct Clients {
    url: String,
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Clients {
    fn new(port: u16) -> Clients {
        Clients {
            url: format!("http://127.0.0.1:{port}"),
            home: tempfile::tempdir().unwrap(),
            env: vec![("DLREPO_USER".into(), "ci".into())],
        }
    }

    fn with_env(mut self, k: &str, v: &str) -> Clients {
        self.env.push((k.into(), v.into()));
        self
    }

    fn run(&self, mut cmd: Command, args: &[&str]) -> Out {
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("DLREPO_URL", &self.url)
            .stdin(std::process::Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let o = cmd.output().expect("run a client");
        Out {
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
            code: o.status.code().unwrap_or(-1),
        }
    }

    fn ours(&self, args: &[&str]) -> Out {
        self.run(Command::new(env!("CARGO_BIN_EXE_dlrepo-cli")), args)
    }

    fn python(&self, args: &[&str]) -> Out {
        let py = original_python();
        let mut c = Command::new(&py);
        c.arg(py.with_file_name("dlrepo-cli"));
        self.run(c, args)
    }

    /// Runs the original script, then ours, and wants the same outputs.
    fn same(&self, args: &[&str]) -> Out {
        let theirs = self.python(args);
        let ours = self.ours(args);
        assert_eq!(
            ours, theirs,
            "dlrepo-cli {args:?}: ours (left) and the original's differ"
        );
        ours
    }
}

/// A tree with nested folders, a space in a name, two files of the same
/// content and a 50 MB file; `seed` changes every byte but no size.
fn make_tree(dir: &Path, seed: u8) {
    let w = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    let text = |s: &str| s.bytes().map(|b| b ^ seed).collect::<Vec<u8>>();
    w("README", &text("top level file\n"));
    w("sub/a b.txt", &text("spaces in the name\n"));
    w("sub/dup-1.txt", &text("same content twice\n"));
    w("sub/deeper/dup-2.txt", &text("same content twice\n"));
    w("sub/deeper/.hidden", &text("hidden files go too\n"));
    let mut big = vec![0u8; 50 * 1000 * 1000];
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    w("sub/deeper/big.bin", &big);
}

fn same_files(a: &Path, b: &Path) {
    let list = |d: &Path| -> Vec<std::path::PathBuf> {
        let mut v = Vec::new();
        let mut stack = vec![d.to_path_buf()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap().path();
                if e.is_dir() {
                    stack.push(e);
                } else {
                    v.push(e.strip_prefix(d).unwrap().to_path_buf());
                }
            }
        }
        v.sort();
        v
    };
    // Both clients send a space as `+`, which the server keeps (docs/spec/cli.md §1).
    let plus = |p: &std::path::PathBuf| std::path::PathBuf::from(p.to_string_lossy().replace(' ', "+"));
    let (la, lb) = (list(a), list(b));
    assert_eq!(la, lb.iter().map(plus).collect::<Vec<_>>());
    for (fa, fb) in la.iter().zip(&lb) {
        assert!(
            std::fs::read(a.join(fa)).unwrap() == std::fs::read(b.join(fb)).unwrap(),
            "{fa:?} differs"
        );
    }
}

fn workflow(server: &Server) {
    let c = Clients::new(server.port);
    let tmp = tempfile::tempdir().unwrap();
    let (tree_py, tree_rs) = (tmp.path().join("py"), tmp.path().join("rs"));
    make_tree(&tree_py, 0);
    make_tree(&tree_rs, 0x55);

    // Same names and sizes, different bytes: the progress lines must match
    // line for line (one file at a time, as the original sends them).
    let up_py = c.python(&["upload", "main", "v1.0", "py", "fmt", tree_py.to_str().unwrap()]);
    let up_rs = c.ours(&[
        "upload",
        "--jobs",
        "1",
        "main",
        "v1.0",
        "rs",
        "fmt",
        tree_rs.to_str().unwrap(),
    ]);
    assert_eq!(up_py.code, 0, "{up_py:?}");
    assert_eq!(up_rs.stderr, up_py.stderr);
    assert_eq!(up_rs.stdout.replace("/rs/", "/py/"), up_py.stdout);
    assert!(up_py.stderr.contains("dup-1.txt (deduplicated)") || up_py.stderr.contains("dup-2.txt (deduplicated)"));
    assert_eq!(
        up_rs.stdout,
        format!("Browse/Download: {}/~ci/branches/main/v1.0/rs/fmt/\n", c.url)
    );
    // Several at once: the same files reach the server, the same last line.
    let up = c.ours(&[
        "upload",
        "--jobs",
        "4",
        "main",
        "v1.0",
        "rs4",
        "fmt",
        tree_rs.to_str().unwrap(),
    ]);
    assert_eq!(up.code, 0, "{up:?}");
    assert_eq!(up.stderr.lines().count(), up_rs.stderr.lines().count());
    // A single file upload, and one into a second format.
    let one = tree_rs.join("README");
    c.same(&["upload", "main", "v1.0", "rs", "docs", one.to_str().unwrap()]);

    // Listings and their JSON.
    c.same(&["branches"]);
    c.same(&["-v", "branches"]);
    c.same(&["-j", "branches"]);
    c.same(&["tags", "main"]);
    c.same(&["tags", "-r", "main"]);
    c.same(&["-j", "tags", "main"]);
    c.same(&["jobs", "main", "v1.0"]);
    c.same(&["get-info", "main", "v1.0", "rs"]);
    c.same(&["-j", "get-info", "main", "v1.0", "rs"]);
    c.same(&["--no-print-url", "get-info", "main", "v1.0", "py"]);
    c.same(&["status", "main", "v1.0"]);
    c.same(&["-j", "status", "main", "v1.0"]);

    // Metadata, filters and the products link.
    let set = c.same(&[
        "set-info",
        "main",
        "v1.0",
        "rs",
        "product=Prod",
        "version=1.0",
        "product_branch=main",
        "product_variant=x86",
        "extra=yes",
    ]);
    assert_eq!(
        set.stdout,
        format!("Browse/Download: {}/~ci/products/prod/x86/main/1.0/\n", c.url)
    );
    c.same(&["set-info", "main", "v1.0", "py", "extra=no", "gone="]);
    c.same(&["jobs", "main", "v1.0", "extra=yes"]);
    c.same(&["jobs", "main", "v1.0", "product=Prod", "extra=no"]);
    c.same(&["get-info", "main", "v1.0", "rs"]);

    // Downloads come back as uploaded.
    let (d_py, d_rs) = (tmp.path().join("get-py"), tmp.path().join("get-rs"));
    let g_py = c.python(&["get", "main", "v1.0", "rs", "fmt", d_py.to_str().unwrap()]);
    let g_rs = c.ours(&[
        "get",
        "--jobs",
        "1",
        "main",
        "v1.0",
        "rs",
        "fmt",
        d_rs.to_str().unwrap(),
    ]);
    assert_eq!(g_rs, g_py);
    same_files(&d_rs, &tree_rs);
    let d4 = tmp.path().join("get-4");
    assert_eq!(
        c.ours(&["get", "main", "v1.0", "py", "fmt", d4.to_str().unwrap()]).code,
        0
    );
    same_files(&d4, &tree_py);

    // Tag flags, descriptions, cleanup policies.
    c.same(&["set-description", "main", "v1.0", "Première livraison"]);
    c.same(&["get-description", "main", "v1.0"]);
    c.same(&["-j", "get-description", "main", "v1.0"]);
    c.same(&["stable", "main", "v1.0"]);
    c.same(&["status", "main", "v1.0"]);
    c.same(&["stable", "-u", "main", "v1.0"]);
    c.same(&["cleanup-policy", "-d", "5", "-r", "2", "main"]);
    c.same(&["cleanup-policy", "main"]);
    c.same(&["-j", "cleanup-policy", "main"]);
    c.same(&["-v", "branches"]);
    c.same(&["release", "main", "v1.0"]);

    // Locks, the internal flag and what a locked job refuses.
    c.same(&["internal", "main", "v1.0", "py"]);
    c.same(&["internal", "-u", "main", "v1.0", "py"]);
    c.same(&["lock", "main", "v1.0", "rs"]);
    c.same(&["internal", "main", "v1.0", "rs"]);
    c.same(&["upload", "main", "v1.0", "rs", "fmt", one.to_str().unwrap()]);
    c.same(&["lock", "-u", "main", "v1.0", "rs"]);
    c.same(&["lock", "main", "v1.0"]);
    c.same(&["status", "main", "v1.0"]);
    c.same(&["delete", "main", "v1.0"]);
    c.same(&["lock", "-u", "main", "v1.0"]);
    // A mixed-case tag: the POST is redirected and nothing is locked.
    c.same(&["lock", "MAIN", "V1.0"]);
    c.same(&["status", "main", "v1.0"]);

    // Errors.
    c.same(&["get-info", "main", "v1.0", "nope"]);
    c.same(&["tags", "nope"]);
    c.same(&["-p", "/", "flush"]);

    // Deletes, down to nothing.
    let del = c.ours(&["delete", "main", "v1.0", "rs", "docs"]);
    assert_eq!((del.code, del.stdout.as_str(), del.stderr.as_str()), (0, "", ""));
    c.same(&["delete", "main", "v1.0", "rs", "docs"]);
    assert_eq!(c.ours(&["delete", "main", "v1.0", "rs4"]).code, 0);
    c.same(&["jobs", "main", "v1.0"]);
    let flush = c.ours(&["flush"]);
    assert_eq!(
        flush.stdout,
        format!("deleting all branches in {}/~ci/\n", c.url),
        "{flush:?}"
    );
    c.same(&["flush"]);
    c.same(&["branches"]);
}

#[test]
fn the_ci_workflow_prints_the_same_as_the_original_client_on_this_server() {
    workflow(&Server::start());
}

#[test]
fn the_ci_workflow_prints_the_same_as_the_original_client_on_the_original_server() {
    workflow(&Server::start_original_on(|_| {}, &[]));
}

#[test]
fn credentials_go_first_and_a_wrong_password_fails_after_one_retry() {
    let etc = tempfile::tempdir().unwrap();
    let auth = etc.path().join("auth");
    std::fs::write(&auth, "alice:pw:users\n").unwrap();
    std::fs::create_dir_all(etc.path().join("acls")).unwrap();
    std::fs::write(etc.path().join("acls/users"), "rw /~$user/**\n").unwrap();
    let s = Server::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", auth.to_str().unwrap()),
        ("DLREPO_ACLS_DIR", etc.path().join("acls").to_str().unwrap()),
    ]);
    let file = etc.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let good = Clients::new(s.port)
        .with_env("DLREPO_USER", "alice")
        .with_env("DLREPO_PASSWORD", "pw");
    let up = good.ours(&["upload", "b", "t", "j", "fmt", file.to_str().unwrap()]);
    assert_eq!(up.code, 0, "{up:?}");
    assert!(
        s.tree().iter().any(|p| p.contains("alice") && p.contains("f.txt")),
        "{:?}",
        s.tree()
    );
    good.same(&["jobs", "b", "t"]);
    let bad = Clients::new(s.port)
        .with_env("DLREPO_USER", "alice")
        .with_env("DLREPO_PASSWORD", "nope");
    let before = s.log().matches(" 401 ").count();
    let out = bad.same(&["tags", "b"]);
    assert_eq!(out.stderr, "error: remote: 401: Unauthorized\n");
    // Each client asked twice: the first try and the one retry.
    assert_eq!(s.log().matches(" 401 ").count() - before, 4, "{}", s.log());
    // The config file's user and password, with the original's precedence.
    let conf = Clients::new(s.port);
    std::fs::create_dir_all(conf.home.path().join(".config")).unwrap();
    std::fs::write(
        conf.home.path().join(".config/dlrepo-cli"),
        "[dlrepo-cli]\nuser = alice\npassword = pw\n",
    )
    .unwrap();
    conf.same(&["jobs", "b", "t"]);
}

#[test]
fn the_server_serves_this_client_with_its_public_url_built_in() {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let s = Server::start_with(&[
        ("DLREPO_LISTEN_PORT", &port.to_string()),
        ("DLREPO_PUBLIC_URL", &public),
        ("DLREPO_CLI_PATH", env!("CARGO_BIN_EXE_dlrepo-cli")),
    ]);
    s.put("/branches/served/t/j/fmt/x.txt", "x");
    let r = s.get("/cli");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"dlrepo-cli\"")
    );
    let original = std::fs::read(env!("CARGO_BIN_EXE_dlrepo-cli")).unwrap();
    assert_eq!(r.body.len(), original.len());
    assert_ne!(r.body, original);
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("dlrepo-cli");
    std::fs::write(&exe, &r.body).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // No --url, no DLREPO_URL: the served binary knows where it came from.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(&exe)
        .args(["-p", "/", "branches"])
        .env_clear()
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "served\n", "{out:?}");
    // The unmodified binary still defaults to the built-in address.
    let out = Command::new(env!("CARGO_BIN_EXE_dlrepo-cli"))
        .args(["-p", "/", "branches"])
        .env_clear()
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "served\n");
}

/// A server that answers each connection with the next of `replies`
/// (given the request line and headers), then stops.
/// One scripted answer, from the request's head.
type Reply = Box<dyn Fn(&str) -> Vec<u8> + Send>;

fn scripted(replies: Vec<Reply>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for reply in replies {
            let (mut sock, _) = l.accept().unwrap();
            let mut r = BufReader::new(sock.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let _ = sock.write_all(&reply(&head));
            let _ = sock.flush();
            seen.push(head);
        }
        seen
    });
    (port, h)
}

fn listing() -> Reply {
    Box::new(|_| {
        let body = br#"{"artifact_format": {"files": ["sub/data.bin"]}}"#;
        let mut v = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        v
    })
}

#[test]
fn an_interrupted_download_resumes_and_the_digest_covers_the_whole_file() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = sha256_hex(&data);
    let (d1, d2) = (data.clone(), data.clone());
    let dg = digest.clone();
    let dg2 = digest.clone();
    let (port, seen) = scripted(vec![
        // A transient failure first: retried.
        Box::new(|_| b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
        listing(),
        // Half the file, then the connection drops.
        Box::new(move |_| {
            let mut v = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nDigest: sha256:{dg}\r\nConnection: close\r\n\r\n",
                d1.len()
            )
            .into_bytes();
            v.extend_from_slice(&d1[..100_000]);
            v
        }),
        Box::new(move |head| {
            assert!(
                head.contains("Range: bytes=100000-") || head.contains("range: bytes=100000-"),
                "{head}"
            );
            let mut v = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes 100000-{}/{}\r\nDigest: sha256:{dg2}\r\nConnection: close\r\n\r\n",
                d2.len() - 100_000,
                d2.len() - 1,
                d2.len()
            )
            .into_bytes();
            v.extend_from_slice(&d2[100_000..]);
            v
        }),
    ]);
    let c = Clients::new(port);
    let dir = tempfile::tempdir().unwrap();
    let out = c.ours(&["-p", "/", "get", "b", "t", "j", "f", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read(dir.path().join("sub/data.bin")).unwrap(), data);
    assert_eq!(seen.join().unwrap().len(), 4);
}

#[test]
fn a_download_that_does_not_match_its_digest_is_removed_with_a_clear_error() {
    let (port, _seen) = scripted(vec![
        listing(),
        Box::new(|_| {
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nDigest: sha256:0000\r\nConnection: close\r\n\r\nabc".to_vec()
        }),
    ]);
    let c = Clients::new(port);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let out = c.ours(&[
        "-p",
        "/",
        "--retries",
        "0",
        "get",
        "b",
        "t",
        "j",
        "f",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .ends_with("error: downloaded data does not match digest: sha256:0000\n"),
        "{out:?}"
    );
    assert!(!target.join("sub/data.bin").exists());
}

#[test]
fn bad_arguments_are_refused_before_anything_is_sent() {
    let c = Clients::new(free_port());
    for args in [
        &["upload", "b", "t", "j", "f", "/nonexistent/file"][..],
        &["set-info", "b", "t", "j", "no-equals"],
        &["cleanup-policy", "-d", "x", "b"],
        &["lock"],
        &["nope"],
    ] {
        let theirs = c.python(args);
        let ours = c.ours(args);
        assert_eq!((ours.code, theirs.code), (2, 2), "{args:?}: {ours:?} {theirs:?}");
        assert!(ours.stderr.contains("error:"), "{ours:?}");
    }
    // Nothing listens there: a plain error, exit 1.
    let out = c.ours(&["--retries", "0", "branches"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: "), "{out:?}");
}

#[test]
fn completions_and_the_manual_page_come_from_the_same_definitions() {
    let c = Clients::new(free_port());
    let bash = c.ours(&["completions", "bash"]);
    assert_eq!(bash.code, 0);
    assert!(bash.stdout.contains("cleanup-policy"));
    let man = c.ours(&["man"]);
    assert!(
        man.stdout.contains(".TH dlrepo-cli"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    let v = c.ours(&["--version"]);
    assert_eq!(v.stdout, format!("dlrepo-cli {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn release_publishes_to_a_mirror_and_status_follows_it_with_either_client() {
    let mirror = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let auth = tmp.path().join("publish.auth");
    std::fs::write(&auth, "publisher:secret").unwrap();
    let src = Server::start_with(&[
        ("DLREPO_PUBLISH_URL", &format!("http://127.0.0.1:{}", mirror.port)),
        ("DLREPO_PUBLISH_AUTH", auth.to_str().unwrap()),
    ]);
    let c = Clients::new(src.port);
    let file = tmp.path().join("pkg.rpm");
    std::fs::write(&file, "package").unwrap();
    for tag in ["v1", "v2"] {
        assert_eq!(
            c.ours(&["-p", "/", "upload", "main", tag, "x86", "rpm", file.to_str().unwrap()])
                .code,
            0
        );
        assert_eq!(c.ours(&["-p", "/", "lock", "main", tag, "x86"]).code, 0);
    }
    // One tag released by each client: same (empty) output, same effect.
    let theirs = c.python(&["-p", "/", "release", "main", "v1"]);
    let ours = c.ours(&["-p", "/", "release", "main", "v2"]);
    assert_eq!(ours, theirs);
    assert_eq!(ours.code, 0, "{ours:?}");
    for tag in ["v1", "v2"] {
        wait_until("the publish", || {
            c.ours(&["-p", "/", "status", "main", tag])
                .stdout
                .contains("publish_status=published")
        });
        c.same(&["-p", "/", "status", "main", tag]);
        mirror.get(&format!("/branches/main/{tag}/x86/rpm/pkg.rpm")).expect(200);
    }
    // Unreleasing goes the same way back.
    assert_eq!(c.ours(&["-p", "/", "release", "-u", "main", "v2"]).code, 0);
    wait_until("the unpublish", || {
        c.ours(&["-p", "/", "status", "main", "v2"])
            .stdout
            .contains("released=False")
            && mirror.get("/branches/main/v2/").status == 404
    });
    c.same(&["-p", "/", "status", "main", "v2"]);
}
