//! Test-only pause points, compiled into debug builds only.
//!
//! With `DLREPO_TEST_GC_PAUSE_DIR=<dir>` set, the orphan GC stops right
//! after its `statx` of any file whose name is listed in `<dir>/target`:
//! it writes `<dir>/paused` and waits until `<dir>/resume` exists (then
//! removes both). Tests use it to run requests at the most delicate moment
//! of a GC decision. Release builds contain none of this.

use std::path::Path;

#[cfg(debug_assertions)]
pub async fn gc_paused(path: &Path) {
    let Some(dir) = std::env::var_os("DLREPO_TEST_GC_PAUSE_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let Ok(target) = std::fs::read_to_string(dir.join("target")) else {
        return;
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !target.lines().any(|l| l.trim() == name) {
        return;
    }
    let _ = std::fs::write(dir.join("paused"), path.as_os_str().as_encoded_bytes());
    while !dir.join("resume").exists() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let _ = std::fs::remove_file(dir.join("resume"));
    let _ = std::fs::remove_file(dir.join("paused"));
}

#[cfg(not(debug_assertions))]
pub async fn gc_paused(_path: &Path) {}

/// With `DLREPO_TEST_CLEANUP_HOLD=<file>` set (debug builds only), every
/// cleanup run waits at its start while that file exists, so tests can
/// pile up requests behind a run in progress.
#[cfg(debug_assertions)]
pub async fn run_started() {
    let Some(f) = std::env::var_os("DLREPO_TEST_CLEANUP_HOLD") else {
        return;
    };
    while Path::new(&f).exists() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[cfg(not(debug_assertions))]
pub async fn run_started() {}

/// With `DLREPO_TEST_GC_RING_UNLINKS` set (debug builds only), the GC
/// unlinks on the ring from the start, as it does after a plain unlink
/// waited for the disk, so tests cover that path too.
#[cfg(debug_assertions)]
pub fn ring_unlinks() -> bool {
    std::env::var_os("DLREPO_TEST_GC_RING_UNLINKS").is_some()
}

#[cfg(not(debug_assertions))]
pub fn ring_unlinks() -> bool {
    false
}
