//! Test-only hooks of the store, compiled into debug builds only.
//!
//! With `DLREPO_TEST_LINK_HOLD=<file>` set, an upload that has passed its
//! lock check under the format lock waits there while `<file>` exists,
//! after writing `<file>.paused`. Tests use it to send a lock request at
//! that moment. `DLREPO_TEST_COMMIT_HOLD=<file>` does the same once the
//! upload is linked and indexed, just before its commit line (to kill the
//! server there). With `DLREPO_TEST_JOURNAL_FAIL=<file>` set, appends to
//! the `.digests` journal fail while `<file>` exists, as on a full disk.
//! Release builds contain none of this.

#[cfg(debug_assertions)]
pub async fn link_hold() {
    hold_while("DLREPO_TEST_LINK_HOLD").await
}

#[cfg(debug_assertions)]
pub async fn commit_hold() {
    hold_while("DLREPO_TEST_COMMIT_HOLD").await
}

/// Waits while the file named by `var` exists, with `<file>.paused` written.
#[cfg(debug_assertions)]
async fn hold_while(var: &str) {
    let Some(f) = std::env::var_os(var) else {
        return;
    };
    let hold = std::path::PathBuf::from(f);
    if !hold.exists() {
        return;
    }
    let mut paused = hold.clone().into_os_string();
    paused.push(".paused");
    let _ = std::fs::write(&paused, b"");
    while hold.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let _ = std::fs::remove_file(&paused);
}

#[cfg(not(debug_assertions))]
pub async fn link_hold() {}

#[cfg(not(debug_assertions))]
pub async fn commit_hold() {}

/// Whether a journal append should fail now (`DLREPO_TEST_JOURNAL_FAIL`).
#[cfg(debug_assertions)]
pub fn journal_append_fails() -> bool {
    std::env::var_os("DLREPO_TEST_JOURNAL_FAIL").is_some_and(|f| std::path::Path::new(&f).exists())
}

#[cfg(not(debug_assertions))]
pub fn journal_append_fails() -> bool {
    false
}
