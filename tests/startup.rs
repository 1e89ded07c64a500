//! Startup: configuration errors, socket activation, bind failures, signals.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dlrepo")
}

fn base_cmd(root: &std::path::Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("DLREPO_ROOT_DIR", root)
        .env("DLREPO_LOG_OUTPUT", "console")
        .env("DLREPO_AUTH_DISABLED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn invalid_settings_stop_the_server_with_one_line_naming_the_variable() {
    let tmp = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("DLREPO_LISTEN_PORT", "http"),
        ("DLREPO_USER_QUOTA", ""),
        ("DLREPO_ORPHAN_BLOB_LIFETIME", "-1"),
        ("DLREPO_CHUNK_SIZE", "0"),
        ("DLREPO_LOG_LEVEL", "LOUD"),
        ("DLREPO_INTERNAL_FORMAT_FILTER", "(unclosed"),
        ("DLREPO_FSYNC", "maybe"),
    ] {
        let out = base_cmd(tmp.path()).env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{var}: {err}");
        assert!(err.contains(var), "{var}: {err}");
    }
}

#[test]
fn a_port_in_use_is_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = base_cmd(tmp.path())
        .env("DLREPO_LISTEN_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}

fn get_over(mut s: impl Read + Write) -> String {
    s.write_all(b"GET /branches/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Starts the server with `fd` as its descriptor 3 and LISTEN_FDS=1, the
/// way systemd does (a shell sets LISTEN_PID to its own pid, then execs).
fn start_activated(root: &std::path::Path, fd: i32) -> std::process::Child {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg("LISTEN_FDS=1 LISTEN_PID=$$ exec \"$0\"").arg(bin());
    c.env_clear()
        .env("DLREPO_ROOT_DIR", root)
        .env("DLREPO_LOG_OUTPUT", "console")
        .env("DLREPO_AUTH_DISABLED", "1")
        // A port that must not be used: the inherited socket wins.
        .env("DLREPO_LISTEN_PORT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: dup2 is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc_dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.spawn().unwrap()
}

/// Puts `a` at descriptor `b` without close-on-exec. dup2 onto itself would
/// keep the flag, so that case clears it instead.
fn libc_dup2(a: i32, b: i32) -> i32 {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    if a == b {
        return fcntl(a, FcntlArg::F_SETFD(FdFlag::empty())).map(|_| 0).unwrap_or(-1);
    }
    nix::unistd::dup2(a, b).map(|_| 0).unwrap_or(-1)
}

#[test]
fn systemd_socket_activation_tcp_and_unix() {
    let tmp = tempfile::tempdir().unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let mut child = start_activated(tmp.path(), tcp.as_raw_fd());
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let answer = get_over(s);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"branches": []}"#), "{answer}");
    let _ = child.kill();
    let _ = child.wait();

    let sock = tmp.path().join("dlrepo.sock");
    let unix = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut child = start_activated(tmp.path(), unix.as_raw_fd());
    let s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let answer = get_over(s);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_cleanly() {
    let s = common::Server::start();
    let mut c = s.connect();
    let body = b"finishing after SIGTERM";
    write!(
        c,
        "PUT /branches/b/t/j/f/a HTTP/1.1\r\nHost: x\r\nDigest: {}\r\nContent-Length: {}\r\n\r\n",
        common::sha256_digest(body),
        body.len()
    )
    .unwrap();
    c.write_all(&body[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(&body[5..]).unwrap();
    let r = common::read_response(&mut std::io::BufReader::new(c), "PUT");
    r.expect(201);
    // New connections are refused once the server stops accepting.
    common::wait_until("the server to stop accepting", || {
        std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err()
    });
    assert!(s.path("branches/b/t/j/f/a").exists());
}
