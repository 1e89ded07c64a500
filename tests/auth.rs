//! Authentication and ACLs through the real binary: the auth file, proxy
//! headers and LDAP (against a throwaway slapd), every access letter, for
//! base and user repositories.

mod common;

use base64::Engine as _;
use common::*;
use std::path::Path;

const USERS_ACL: &str = "r /  # root page
r /branches/
r /branches/pub/**  !/branches/pub/secret**
rw /~$user/**
ra /branches/dev/*/job-?/**
r ~/products/.*
r /v2/
r /v2/pub/**
";
const DEV_ACL: &str = "rw /branches/dev/**\nx /branches/**\nrwz /products/**\n";
const ANON_ACL: &str = "r /branches/\nr /branches/pub/**\nrw /branches/anon/**\n";
const LETTERS_ACL: &str = "r /branches/main/test_r_tag**
ra /branches/main/test_ra_tag**
rd /branches/main/test_rd_tag**
ru /branches/main/test_ru_tag**
rw /branches/main/test_rw_tag**
a /branches/main/test_a_tag**
";
const AUTH_FILE: &str = "alice:pw:dev users\nbob:b:o:b:users\ncarl:c:nogroup-has-no-acl\ndave::users\nplop:plop:letters\nfoo:baz:readers\nErin:pw:users\n";

fn write_acls(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("users"), USERS_ACL).unwrap();
    std::fs::write(dir.join("dev"), DEV_ACL).unwrap();
    std::fs::write(dir.join("ANONYMOUS"), ANON_ACL).unwrap();
    std::fs::write(dir.join("letters"), LETTERS_ACL).unwrap();
    std::fs::write(dir.join("readers"), "ro /**\n").unwrap();
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

struct Setup {
    s: Server,
    _etc: tempfile::TempDir,
    acls: std::path::PathBuf,
    auth_file: std::path::PathBuf,
}

fn start(extra: &[(&str, &str)]) -> Setup {
    let etc = tempfile::tempdir().unwrap();
    let acls = etc.path().join("acls");
    write_acls(&acls);
    let auth_file = etc.path().join("auth");
    std::fs::write(&auth_file, AUTH_FILE).unwrap();
    let mut env: Vec<(&str, &str)> = vec![
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_ACLS_DIR", acls.to_str().unwrap()),
        ("DLREPO_AUTH_FILE", auth_file.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    let s = Server::start_with(&env);
    Setup {
        s,
        _etc: etc,
        acls,
        auth_file,
    }
}

fn as_user(s: &Server, who: Option<(&str, &str)>, method: &str, path: &str) -> Response {
    let mut r = s.req(method, path);
    if let Some((u, p)) = who {
        r = r.header("Authorization", &basic(u, p));
    }
    if method == "PUT" {
        r = r.header("Digest", &sha256_digest(b"x")).body(b"x");
    }
    if method == "POST" || method == "PATCH" {
        r = r.json("{}");
    }
    r.send()
}

fn seed(s: &Server) {
    // Fill the tree directly: uploads would need the very rights under test.
    for b in ["pub/t1", "pub/secret1", "anon/t", "dev/t/job-1", "private/t"] {
        std::fs::create_dir_all(s.path(&format!("branches/{b}"))).unwrap();
    }
}

#[track_caller]
fn unauthorized(r: &Response) {
    r.expect_error(401, "Unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="dlrepo", charset="utf-8""#)
    );
}

#[test]
fn the_specification_table_with_the_auth_file() {
    let Setup { s, _etc: _keep, .. } = start(&[]);
    seed(&s);
    let alice = Some(("alice", "pw"));
    let bob = Some(("bob", "b:o:b"));
    as_user(&s, None, "GET", "/branches/").expect(200);
    unauthorized(&as_user(&s, None, "GET", "/"));
    unauthorized(&as_user(&s, None, "GET", "/not-found"));
    unauthorized(&as_user(&s, None, "GET", "/%FF"));
    as_user(&s, Some(("foo", "baz")), "GET", "/%FF").expect(404);
    unauthorized(&as_user(&s, None, "PUT", "/branches/anon/t/j/f/x"));
    // An unknown method is a parse error, answered before authentication.
    as_user(&s, None, "BREW", "/").expect(400);
    let v2 = as_user(&s, None, "GET", "/v2/");
    v2.expect(401);
    assert_eq!(
        v2.text(),
        r#"{"errors": [{"code": "UNAUTHORIZED", "message": "Authentication is required."}]}"#
    );
    assert_eq!(v2.header("docker-distribution-api-version"), Some("registry/2.0"));
    assert!(v2.header("www-authenticate").is_some());
    // Public for reads only (the route itself is not implemented yet).
    assert_ne!(as_user(&s, None, "GET", "/static/logo.svg").status, 401);
    unauthorized(&as_user(&s, None, "POST", "/static/logo.svg"));
    let garbage = s.req("GET", "/branches/").header("Authorization", "Garbage").send();
    garbage.expect(200);
    unauthorized(&as_user(&s, Some(("alice", "bad")), "GET", "/branches/"));
    unauthorized(&as_user(&s, Some(("carl", "c")), "GET", "/branches/"));
    unauthorized(&as_user(&s, Some(("dave", "")), "GET", "/branches/"));
    as_user(&s, bob, "GET", "/branches/pub/t1/").expect(200);
    unauthorized(&as_user(&s, bob, "GET", "/branches/pub/secret1/"));
    as_user(&s, None, "GET", "/branches/pub/secret1/").expect(200);
    unauthorized(&as_user(&s, bob, "GET", "/branches/pub"));
    unauthorized(&as_user(&s, bob, "GET", "/branches/anon/"));
    as_user(&s, bob, "PUT", "/branches/dev/t/job-1/f/x").expect(201);
    unauthorized(&as_user(&s, bob, "PUT", "/branches/dev/t/job-12/f/x"));
    unauthorized(&as_user(&s, bob, "DELETE", "/branches/dev/t/job-1/"));
    as_user(&s, bob, "PUT", "/~bob/branches/b/t/j/f/x").expect(201);
    as_user(&s, bob, "PUT", "/%7Ebob/branches/b/t/j/f/y").expect(201);
    unauthorized(&as_user(&s, bob, "PUT", "/~alice/branches/b/t/j/f/x"));
    unauthorized(&as_user(&s, bob, "PUT", "/~BOB/branches/b/t/j/f/x"));
    as_user(&s, bob, "GET", "/products/").expect(200);
    unauthorized(&as_user(&s, bob, "GET", "/productsXYZ"));
    as_user(&s, bob, "GET", "/v2/_catalog").expect(401);
    as_user(&s, alice, "DELETE", "/branches/dev/t/").expect(200);
    unauthorized(&as_user(&s, alice, "PATCH", "/products/"));
    // An authenticated reader gets 404 where anonymous got 401.
    as_user(&s, Some(("foo", "baz")), "GET", "/nope").expect(404);
    unauthorized(&as_user(&s, alice, "GET", "/nope"));
    // Listings show only what the caller may read.
    let names = |r: Response| -> Vec<String> {
        r.json()["branches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(as_user(&s, bob, "GET", "/branches/")), ["pub"]);
    assert_eq!(names(as_user(&s, None, "GET", "/branches/")), ["anon", "pub"]);
    let tags = as_user(&s, bob, "GET", "/branches/pub/").json();
    let tags: Vec<&str> = tags["branch"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["t1"]);
    assert!(
        s.log().contains("bob@127.0.0.1 - 200 GET /branches/pub/"),
        "{}",
        s.log()
    );
    assert!(
        s.log().contains("ANONYMOUS@127.0.0.1 - 200 GET /branches/ "),
        "{}",
        s.log()
    );
    assert!(!s.log().contains("b:o:b"), "a password reached the log");
}

#[test]
fn every_access_letter_granted_and_refused() {
    let Setup { s, _etc: _keep, .. } = start(&[]);
    let plop = Some(("plop", "plop"));
    for letters in ["r", "ra", "rd", "ru", "rw", "a"] {
        let tag = format!("test_{letters}_tag");
        std::fs::create_dir_all(s.path(&format!("branches/main/{tag}/job/format"))).unwrap();
        let can = |c: char| letters.contains('r') && (letters.contains(c) || letters.contains('w'));
        let put = as_user(&s, plop, "PUT", &format!("/branches/main/{tag}/job/format/file.txt"));
        assert_eq!(put.status, if can('a') { 201 } else { 401 }, "{letters}: PUT");
        let post = s
            .req("POST", &format!("/branches/main/{tag}/"))
            .header("Authorization", &basic("plop", "plop"))
            .json(r#"{"tag": {"stable": true}}"#)
            .send();
        assert_eq!(post.status, if can('u') { 200 } else { 401 }, "{letters}: POST");
        let get = as_user(&s, plop, "GET", &format!("/branches/main/{tag}/"));
        assert_eq!(
            get.status,
            if letters.contains('r') { 200 } else { 401 },
            "{letters}: GET"
        );
        let del = as_user(&s, plop, "DELETE", &format!("/branches/main/{tag}/job"));
        assert_eq!(del.status, if can('d') { 200 } else { 401 }, "{letters}: DELETE");
    }
}

#[test]
fn sighup_reloads_acls_and_users_and_ignored_passwords() {
    let Setup {
        s,
        acls,
        auth_file,
        _etc: _keep,
    } = start(&[]);
    unauthorized(&as_user(&s, Some(("zoe", "z")), "GET", "/branches/"));
    std::fs::write(&auth_file, format!("{AUTH_FILE}zoe:z:newgroup\n")).unwrap();
    std::fs::write(acls.join("newgroup"), "r /**\n").unwrap();
    unauthorized(&as_user(&s, Some(("zoe", "z")), "GET", "/branches/"));
    s.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(s.wait_log("SIGHUP: reloaded", 1));
    as_user(&s, Some(("zoe", "z")), "GET", "/branches/").expect(200);
    drop(s);

    let Setup { s, _etc: _keep, .. } = start(&[("DLREPO_IGNORE_PASSWORDS", "1")]);
    as_user(&s, Some(("alice", "whatever")), "GET", "/branches/").expect(200);
    as_user(&s, Some(("alice", "")), "GET", "/branches/").expect(200);
    unauthorized(&as_user(&s, Some(("nobody", "x")), "GET", "/branches/"));
    assert!(s.log().contains("CRITICAL: PASSWORD AUTHENTICATION BYPASSED!"));
}

#[test]
fn missing_acl_directory_refuses_everything_but_static() {
    let s = Server::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_ACLS_DIR", "/nonexistent/acls"),
        ("DLREPO_AUTH_FILE", "/nonexistent/auth"),
    ]);
    unauthorized(&as_user(&s, None, "GET", "/branches/"));
    assert!(s.log().contains("ERROR: DLREPO_ACLS_DIR: /nonexistent/acls"));
    assert!(s.log().contains("ERROR: DLREPO_AUTH_FILE: /nonexistent/auth"));
}

#[test]
fn proxy_header_mode() {
    let Setup { s, _etc: _keep, .. } = start(&[
        ("DLREPO_AUTH_HTTP_LOGIN_HEADER", "X-DlrEpo-LoGin"),
        ("DLREPO_AUTH_HTTP_GROUPS_HEADER", "X-DlrEpo-GrOuPs"),
    ]);
    seed(&s);
    let get = |headers: &[(&str, &str)], path: &str| {
        let mut r = s.req("GET", path);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    get(
        &[("x-dlrepo-login", "bob"), ("X-Dlrepo-groups", "users")],
        "/branches/pub/t1/",
    )
    .expect(200);
    // The parts of the groups list are not trimmed: " dev" is no group.
    get(
        &[("x-dlrepo-login", "alice"), ("x-dlrepo-groups", "users, dev")],
        "/branches/dev/",
    )
    .expect(401);
    get(
        &[("x-dlrepo-login", "alice"), ("x-dlrepo-groups", "users,dev")],
        "/branches/dev/",
    )
    .expect(200);
    // Basic credentials are ignored in this mode; no login means anonymous.
    let r = s
        .req("GET", "/branches/dev/")
        .header("Authorization", &basic("alice", "pw"))
        .send();
    unauthorized(&r);
    get(&[("x-dlrepo-groups", "dev")], "/branches/").expect(200);
    unauthorized(&get(&[("x-dlrepo-login", "bob")], "/branches/"));
    // A client's own copy of an identity header before the proxy's: which
    // one the proxy set cannot be told, so the request is refused.
    get(
        &[
            ("x-dlrepo-login", "bob"),
            ("X-Dlrepo-Groups", "dev"),
            ("x-dlrepo-groups", "users"),
        ],
        "/branches/dev/",
    )
    .expect_error(400, "X-DlrEpo-GrOuPs is given more than once");
    get(
        &[
            ("x-dlrepo-login", "alice"),
            ("x-dlrepo-login", "bob"),
            ("x-dlrepo-groups", "users"),
        ],
        "/branches/pub/t1/",
    )
    .expect_error(400, "X-DlrEpo-LoGin is given more than once");
}

/// A login with capitals writes to its own repository, whose folder is
/// lowercased, by either spelling; another spelling is someone else's.
#[test]
fn mixed_case_logins_write_to_their_own_repository() {
    let Setup { s, _etc: _keep, .. } = start(&[]);
    let erin = Some(("Erin", "pw"));
    as_user(&s, erin, "PUT", "/~Erin/branches/b/t/j/f/a").expect(201);
    as_user(&s, erin, "PUT", "/~erin/branches/b/t/j/f/b").expect(201);
    assert!(s.path("users/erin/branches/b/t/j/f/a").exists());
    assert!(s.path("users/erin/branches/b/t/j/f/b").exists());
    unauthorized(&as_user(&s, erin, "PUT", "/~ERIN/branches/b/t/j/f/c"));
    unauthorized(&as_user(&s, erin, "PUT", "/~bob/branches/b/t/j/f/c"));
    // The case of the login still matters for others.
    unauthorized(&as_user(&s, Some(("bob", "b:o:b")), "PUT", "/~Erin/branches/b/t/j/f/c"));
}

// ------------------------------------------------------------------ LDAP

struct Slapd {
    child: std::process::Child,
    port: u16,
    tls_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_slapd() -> std::path::PathBuf {
    let p = std::path::PathBuf::from("/usr/sbin/slapd");
    assert!(
        p.exists(),
        "slapd is needed for the LDAP tests: apt-get install slapd ldap-utils"
    );
    p
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed for the LDAP TLS test: apt-get install openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA (`<name>.pem`) in `dir`; with `server`, also a server
/// certificate for 127.0.0.1 it signed (`server.pem`, `server.key`).
fn make_ca(dir: &std::path::Path, name: &str, server: bool) {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut args = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=dlrepo test CA",
        "-keyout",
        &key,
        "-out",
        &pem,
    ];
    args.extend(ec);
    openssl(dir, &args);
    if server {
        let mut args = vec![
            "req",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ];
        args.extend(ec);
        openssl(dir, &args);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &pem,
                "-CAkey",
                &key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
    }
}

/// A throwaway directory: dc=example,dc=org with users alice (groups dev,
/// users) and bob (users), on a loopback port.
fn start_slapd() -> Slapd {
    start_slapd_with(false)
}

/// With `tls`: also serves `ldaps://` on `Slapd::tls_port` and StartTLS on
/// the plain port, with a certificate from `<dir>/ca.pem`.
fn start_slapd_with(tls: bool) -> Slapd {
    let slapd = find_slapd();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let conf = dir.path().join("slapd.conf");
    let tls_conf = if tls {
        make_ca(dir.path(), "ca", true);
        let d = dir.path().display();
        format!("TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n")
    } else {
        String::new()
    };
    std::fs::write(
        &conf,
        format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {0}/slapd.pid\n{2}\
             database mdb\nmaxsize 10485760\nsuffix \"dc=example,dc=org\"\nrootdn \"cn=admin,dc=example,dc=org\"\nrootpw secret\n\
             directory {1}\naccess to * by * read\n",
            dir.path().display(),
            db.display(),
            tls_conf
        ),
    )
    .unwrap();
    let ldif = dir.path().join("data.ldif");
    std::fs::write(
        &ldif,
        "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n\n\
         dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: uid=alice,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: alice\ncn: Alice\nsn: A\nuserPassword: pw\n\n\
         dn: uid=bob,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\nsn: B\nuserPassword: b:o:b\n\n\
         dn: cn=dev,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: dev\nmember: uid=alice,ou=people,dc=example,dc=org\n\n\
         dn: cn=users,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: users\nmember: uid=alice,ou=people,dc=example,dc=org\nmember: uid=bob,ou=people,dc=example,dc=org\n",
    )
    .unwrap();
    // Load the data offline, then serve it.
    let st = std::process::Command::new("/usr/sbin/slapadd")
        .arg("-f")
        .arg(&conf)
        .arg("-l")
        .arg(&ldif)
        .output()
        .unwrap();
    assert!(st.status.success(), "slapadd: {}", String::from_utf8_lossy(&st.stderr));
    let port = free_port();
    let tls_port = free_port();
    let mut urls = format!("ldap://127.0.0.1:{port}/");
    if tls {
        urls.push_str(&format!(" ldaps://127.0.0.1:{tls_port}/"));
    }
    let child = std::process::Command::new(slapd)
        .arg("-f")
        .arg(&conf)
        .arg("-h")
        .arg(urls)
        .arg("-d")
        .arg("0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port("slapd", port);
    Slapd {
        child,
        port,
        tls_port,
        dir,
    }
}

/// StartTLS (the default with `ldap://`) and `ldaps://` against a slapd
/// with a certificate from a private CA: trusted through `SSL_CERT_FILE`,
/// logins work; with another CA trusted instead, they are refused.
#[test]
fn ldap_over_starttls_and_ldaps_checks_the_certificate() {
    let ldap = start_slapd_with(true);
    let certs = ldap.dir.path();
    let other = tempfile::tempdir().unwrap();
    make_ca(other.path(), "other", false);
    let trusted = certs.join("ca.pem");
    let untrusted = other.path().join("other.pem");
    for (url, ca, ok) in [
        (format!("ldap://127.0.0.1:{}", ldap.port), &trusted, true),
        (format!("ldaps://127.0.0.1:{}", ldap.tls_port), &trusted, true),
        (format!("ldap://127.0.0.1:{}", ldap.port), &untrusted, false),
        (format!("ldaps://127.0.0.1:{}", ldap.tls_port), &untrusted, false),
    ] {
        let Setup { s, _etc: _keep, .. } = start(&[
            ("DLREPO_LDAP_URL", &url),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
            ("DLREPO_LDAP_BASE_DN", "dc=example,dc=org"),
            ("DLREPO_LDAP_USER_FILTER", "(&(objectClass=inetOrgPerson)(uid={login}))"),
            (
                "DLREPO_LDAP_GROUPS_FILTER",
                "(&(objectClass=groupOfNames)(member={dn}))",
            ),
        ]);
        seed(&s);
        let r = as_user(&s, Some(("bob", "b:o:b")), "GET", "/branches/pub/t1/");
        if ok {
            r.expect(200);
        } else {
            unauthorized(&r);
        }
    }
}

#[test]
fn ldap_groups_access_and_injection() {
    let ldap = start_slapd();
    let url = format!("ldap://127.0.0.1:{}", ldap.port);
    let Setup { s, _etc: _keep, .. } = start(&[
        ("DLREPO_LDAP_URL", &url),
        ("DLREPO_LDAP_START_TLS", "0"),
        ("DLREPO_LDAP_BASE_DN", "dc=example,dc=org"),
        ("DLREPO_LDAP_USER_FILTER", "(&(objectClass=inetOrgPerson)(uid={login}))"),
        (
            "DLREPO_LDAP_GROUPS_FILTER",
            "(&(objectClass=groupOfNames)(member={dn}))",
        ),
        ("DLREPO_LDAP_MAX_CONNECTIONS", "2"),
    ]);
    seed(&s);
    let alice = Some(("alice", "pw"));
    let bob = Some(("bob", "b:o:b"));
    as_user(&s, alice, "DELETE", "/branches/dev/t/").expect(200);
    as_user(&s, bob, "GET", "/branches/pub/t1/").expect(200);
    unauthorized(&as_user(&s, bob, "GET", "/branches/pub/secret1/"));
    unauthorized(&as_user(&s, Some(("alice", "wrong")), "GET", "/branches/"));
    unauthorized(&as_user(&s, Some(("nobody", "x")), "GET", "/branches/"));
    unauthorized(&as_user(&s, Some(("alice", "")), "GET", "/branches/"));
    // A login that would match every user if it were not escaped.
    unauthorized(&as_user(&s, Some(("*", "pw")), "GET", "/branches/"));
    unauthorized(&as_user(&s, Some(("*)(uid=*", "pw")), "GET", "/branches/"));
    unauthorized(&as_user(&s, Some(("al*", "pw")), "GET", "/branches/"));
    // Concurrent logins queue on the connection limit and all succeed.
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let port = s.port;
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                let who = if i % 2 == 0 { basic("alice", "pw") } else { basic("bob", "b:o:b") };
                std::io::Write::write_all(
                    &mut c,
                    format!("GET /branches/pub/t1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {who}\r\n\r\n").as_bytes(),
                )
                .unwrap();
                read_response(&mut std::io::BufReader::new(c), "GET").status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert!(!s.log().contains("b:o:b"), "a password reached the log");
}

#[test]
fn exclusions_cannot_be_bypassed_by_case_or_empty_segments() {
    let Setup {
        s, acls, _etc: _keep, ..
    } = start(&[]);
    std::fs::write(
        acls.join("users"),
        "rw /branches/** !/branches/prod/** !/branches/b/t/j/f/secret/*\n",
    )
    .unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(s.wait_log("SIGHUP: reloaded", 1));
    std::fs::create_dir_all(s.path("branches/prod/t")).unwrap();
    let bob = Some(("bob", "b:o:b"));
    unauthorized(&as_user(&s, bob, "DELETE", "/branches/PROD/"));
    unauthorized(&as_user(&s, bob, "PUT", "/branches/PROD/t/j/f/x"));
    unauthorized(&as_user(&s, bob, "PUT", "/branches/b/t/j/f/secret//x"));
    unauthorized(&as_user(&s, bob, "PUT", "/branches/B/T/J/F/secret/x"));
    as_user(&s, bob, "PUT", "/branches/Dev/t/j/f/x").expect(201);
    assert!(s.path("branches/prod/t").exists());
}
