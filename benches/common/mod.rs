//! What the benchmarks share: starting a server
//! (pinned to a core when the machine has two), reading its CPU time, and
//! the command-line options.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether servers go to a core of their own (two cores and `taskset`).
/// Decided once, before [`pin_self`] narrows this process to one core
/// (after which the machine would seem to have one).
pub fn pinned() -> bool {
    static PINNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PINNED.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() >= 2)
            .unwrap_or(false)
            && Command::new("taskset").arg("-V").output().is_ok()
    })
}

/// Moves the calling process (the load generator) to CPU `cpu`.
pub fn pin_self(cpu: usize) -> nix::Result<()> {
    pinned();
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}

/// The server's command, on CPU `cpu` when [`pinned`].
pub fn dlrepo_command(cpu: &str) -> Command {
    if pinned() {
        let mut c = Command::new("taskset");
        c.args(["-c", cpu, env!("CARGO_BIN_EXE_dlrepo")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_dlrepo"))
    }
}

/// Starts this server on a fresh `root` and a free port, on CPU `cpu` when
/// [`pinned`], with `env` over the benchmark defaults (no auth, no fsync).
pub fn start_dlrepo(root: &Path, cpu: &str, env: &[(&str, String)]) -> (Child, u16) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = dlrepo_command(cpu);
    cmd.env_clear()
        .env("DLREPO_ROOT_DIR", root)
        .env("DLREPO_LISTEN_ADDRESS", "127.0.0.1")
        .env("DLREPO_LISTEN_PORT", port.to_string())
        .env("DLREPO_AUTH_DISABLED", "1")
        .env("DLREPO_LOG_LEVEL", "WARNING")
        .env("DLREPO_FSYNC", "0")
        .env("DLREPO_TAG_CLEANUP_PERIOD", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dlrepo");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "dlrepo did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// User plus system CPU seconds so far of a process, its threads (io-wq
/// workers are threads of the process) and its direct children (nginx's
/// worker).
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, sys) = cpu_split(pid);
    user + sys
}

/// [`cpu_seconds`] as user and system seconds: the system part is what the
/// server costs even before any of its own code runs.
pub fn cpu_split(pid: u32) -> (f64, f64) {
    // SAFETY: sysconf only reads a constant of the system.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // Fields after the command's closing parenthesis: ppid is the 2nd,
    // utime the 12th, stime the 13th.
    let read = |p: &str| -> Option<(u32, f64, f64)> {
        let st = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let rest: Vec<&str> = st.rsplit_once(')')?.1.split_whitespace().collect();
        let ppid = rest.get(1)?.parse().ok()?;
        let u: f64 = rest.get(11)?.parse().ok()?;
        let s: f64 = rest.get(12)?.parse().ok()?;
        Some((ppid, u / tick, s / tick))
    };
    let (mut user, mut sys) = read(&pid.to_string()).map_or((0.0, 0.0), |(_, u, s)| (u, s));
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.bytes().all(|b| b.is_ascii_digit()) {
            if let Some((ppid, u, s)) = read(&name) {
                if ppid == pid {
                    user += u;
                    sys += s;
                }
            }
        }
    }
    (user, sys)
}

/// The value after `--name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
