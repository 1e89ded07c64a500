//! User repositories (`/~user/…`) and quota accounting on link.

mod common;

use common::*;

#[test]
fn user_repository_is_created_on_first_write_and_shares_blobs() {
    let s = Server::start();
    s.get("/~Alice/branches/").expect(200);
    s.put_file("/~Alice/branches/b/t/j/f/a.txt", b"1234567").expect(201);
    assert!(s.path("users/alice/branches/b/t/j/f/a.txt").exists());
    assert_eq!(std::fs::read_to_string(s.path("users/alice/.disk_usage")).unwrap(), "7");
    let hex = sha256_hex(b"1234567");
    assert!(s.path(&format!(".blobs/sha256/{}/{hex}", &hex[..2])).exists());
    assert!(!s.path("users/alice/.blobs").exists());
    assert_eq!(s.get("/~alice/branches/b/t/j/f/a.txt").text(), "1234567");
    s.get("/~ALICE/branches/b/t/j/f/a.txt")
        .expect_redirect("/~alice/branches/b/t/j/f/a.txt");
    assert_eq!(s.get("/~alice/branches/").json()["branches"][0]["name"], "b");
    assert_eq!(s.get("/branches/").text(), r#"{"branches": []}"#);
    s.get("/~alice/branches/b/t/").expect(200);
    s.get("/~alice/branches/b/T/").expect_redirect("/~alice/branches/b/t/");
    s.get("/~alice/branches/b/latest/")
        .expect_redirect("/~alice/branches/b/t/");
}

#[test]
fn quota_is_checked_before_linking_and_keeps_old_files() {
    let s = Server::start_with(&[("DLREPO_USER_QUOTA", "20")]);
    s.put_file("/~bob/branches/b/t/j/f/a", b"1234567").expect(201);
    s.put_file("/~bob/branches/b/t/j/f/b", b"abcdefg").expect(201);
    assert_eq!(std::fs::read_to_string(s.path("users/bob/.disk_usage")).unwrap(), "14");
    s.put_file("/~bob/branches/b/t/j/f/c", b"ABCDEFG")
        .expect_error(400, "User bob quota exceeded (14.0/20.0). Please make some ménage.");
    assert!(!s.path("users/bob/branches/b/t/j/f/c").exists());
    // A refused overwrite keeps the old file and its usage.
    s.put_file("/~bob/branches/b/t/j/f/a", &[b'x'; 15]).expect(400);
    assert_eq!(
        std::fs::read(s.path("users/bob/branches/b/t/j/f/a")).unwrap(),
        b"1234567"
    );
    assert_eq!(std::fs::read_to_string(s.path("users/bob/.disk_usage")).unwrap(), "14");
    // An accepted overwrite subtracts the old size first.
    s.put_file("/~bob/branches/b/t/j/f/a", b"123456789012").expect(201);
    assert_eq!(std::fs::read_to_string(s.path("users/bob/.disk_usage")).unwrap(), "19");
    // A refused first upload into a new tag creates nothing.
    s.put_file("/~bob/branches/b/t2/j/f/x", b"toolarge").expect(400);
    assert!(!s.path("users/bob/branches/b/t2").exists(), "{:?}", s.tree());
    // Deleting the job frees everything counted (dotfiles included, clamped at 0).
    s.delete("/~bob/branches/b/t/j/").expect(200);
    assert_eq!(std::fs::read_to_string(s.path("users/bob/.disk_usage")).unwrap(), "0");
    s.put_file("/~bob/branches/b/t/j/f/c", b"ABCDEFG").expect(201);
}

#[test]
fn the_quota_message_is_utf8_in_the_status_line() {
    let s = Server::start_with(&[("DLREPO_USER_QUOTA", "1")]);
    let r = s.put_file("/~carol/branches/b/t/j/f/a", b"12");
    r.expect_error(400, "User carol quota exceeded (0/1.0). Please make some ménage.");
}

#[test]
fn usage_is_loaded_from_disk_after_a_restart() {
    // Hold the startup cleanup, whose quota refresh would recompute the usage.
    let hold = CleanupHold::new();
    let s = Server::start_on(
        |root| {
            std::fs::create_dir_all(root.join("users/dave")).unwrap();
            std::fs::write(root.join("users/dave/.disk_usage"), "95").unwrap();
        },
        &[("DLREPO_USER_QUOTA", "100"), hold.env()],
    );
    s.put_file("/~dave/branches/b/t/j/f/a", b"123456")
        .expect_error(400, "User dave quota exceeded (95.0/100). Please make some ménage.");
    s.put_file("/~dave/branches/b/t/j/f/a", b"12345").expect(201);
    assert_eq!(
        std::fs::read_to_string(s.path("users/dave/.disk_usage")).unwrap(),
        "100"
    );
}
