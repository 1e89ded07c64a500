//! The original dlrepo 0.44 test suite (pytest + aiohttp), run against this
//! server: its launcher is pointed at our binary instead of `python -m
//! dlrepo`. The suite comes from the PyPI source archive at test time and
//! is not part of this repository.
//!
//! All of its 36 tests run.

mod common;

use std::process::Command;

#[test]
fn the_original_suite_passes_against_this_server() {
    let tests = common::original_test_suite();
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("tests");
    let st = Command::new("cp").arg("-a").arg(&tests).arg(&copy).status().unwrap();
    assert!(st.success());
    let conftest = copy.join("conftest.py");
    let text = std::fs::read_to_string(&conftest).unwrap();
    let launcher = r#"[sys.executable, "-m", "dlrepo"]"#;
    assert!(text.contains(launcher), "the suite's launcher changed");
    let patched = text.replace(launcher, &format!("[{:?}]", env!("CARGO_BIN_EXE_dlrepo")));
    // The original never syncs; its publish test gives a publish of ~100
    // files to two mirrors one second, which this server's durable writes
    // (an fdatasync per file on the mirrors) can exceed on a slow disk.
    // Durability is tested on its own (tests/journal.rs, tests/hardening.rs).
    let console = r#""DLREPO_LOG_OUTPUT": "console","#;
    assert!(patched.contains(console), "the suite's server settings changed");
    // Its /cli tests compare the answer with the script in the working
    // folder, so the servers serve that script (as a site still shipping
    // the original client does) rather than our binary.
    let script = work.path().join("dlrepo-cli");
    std::fs::copy(tests.with_file_name("dlrepo-cli"), &script).unwrap();
    let patched = patched.replace(
        console,
        &format!(
            r#"{console} "DLREPO_FSYNC": "0", "DLREPO_CLI_PATH": {:?},"#,
            script.to_str().unwrap()
        ),
    );
    std::fs::write(&conftest, patched).unwrap();
    let py = common::original_python();
    let out = Command::new(&py)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::DeprecationWarning",
        ])
        .arg(&copy)
        .current_dir(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "original suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("36 passed"), "{stdout}");
}
