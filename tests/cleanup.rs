//! The background cleanup through the real binary: GC race freedom (with the
//! debug-only pause point), slow uploads, coalescing, retention policies,
//! quota refresh, the status file, and a stress test.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn blob_path(s: &Server, data: &[u8]) -> PathBuf {
    let hex = sha256_hex(data);
    s.path(&format!(".blobs/sha256/{}/{hex}", &hex[..2]))
}

fn status(s: &Server) -> serde_json::Value {
    std::fs::read(s.path(".dlrepo-rs/cleanup.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn runs(s: &Server) -> u64 {
    status(s)["totals"]["runs"].as_u64().unwrap_or(0)
}

fn set_mtime(p: &Path, secs_ago: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

fn start_paused_gc() -> (Server, tempfile::TempDir) {
    let ctl = tempfile::tempdir().unwrap();
    let dir = ctl.path().to_str().unwrap().to_string();
    let s = Server::start_with(&[("DLREPO_ORPHAN_BLOB_LIFETIME", "0"), ("DLREPO_TEST_GC_PAUSE_DIR", &dir)]);
    wait_until("the startup cleanup", || runs(&s) >= 1);
    (s, ctl)
}

#[test]
fn gc_spares_a_blob_relinked_between_its_statx_and_its_unlink() {
    let (s, ctl) = start_paused_gc();
    let data = b"precious content";
    s.put_file("/branches/b/t/j1/f/a", data).expect(201);
    let blob = blob_path(&s, data);
    let ctl = GcPause::new(ctl.path(), &blob);
    // The delete orphans the blob and schedules a GC, which stops right
    // after its statx has seen one link.
    s.delete("/branches/b/t/j1/").expect(200);
    ctl.wait_paused();
    assert_eq!(nlink(&blob), 1);
    let d = sha256_digest(data);
    s.req("HEAD", "/branches/b/t/j2/f/a")
        .header("Digest", &d)
        .send()
        .expect(200);
    s.req("PUT", "/branches/b/t/j2/f/a")
        .header("Digest", &d)
        .header("X-Dlrepo-Link", &d)
        .send()
        .expect(201);
    ctl.resume();
    wait_until("the GC run to end", || runs(&s) >= 2);
    assert!(blob.exists(), "the GC deleted a blob that was just linked");
    assert_eq!(nlink(&blob), 2);
    assert_eq!(s.get("/branches/b/t/j2/f/a").body, data);
    assert_eq!(status(&s)["last_run"]["blobs_removed"], 0);
}

#[test]
fn gc_removes_an_untouched_orphan_and_later_requests_see_it_gone() {
    let (s, ctl) = start_paused_gc();
    let data = b"unwanted content";
    s.put_file("/branches/b/t/j1/f/a", data).expect(201);
    let blob = blob_path(&s, data);
    let ctl = GcPause::new(ctl.path(), &blob);
    s.delete("/branches/b/t/j1/").expect(200);
    ctl.wait_paused();
    ctl.resume();
    wait_until("the GC run to end", || runs(&s) >= 2);
    assert!(!blob.exists());
    let d = sha256_digest(data);
    s.req("HEAD", "/branches/b/t/j2/f/a")
        .header("Digest", &d)
        .send()
        .expect(404);
    s.req("PUT", "/branches/b/t/j2/f/a")
        .header("Digest", &d)
        .header("X-Dlrepo-Link", &d)
        .send()
        .expect(404);
    // A fresh upload of the same content renames a new blob into place.
    s.put_file("/branches/b/t/j2/f/a", data).expect(201);
    assert_eq!(nlink(&blob), 2);
    let st = status(&s);
    assert_eq!(st["last_run"]["blobs_removed"], 1);
    assert_eq!(st["last_run"]["kind"], "orphans-only");
    assert_eq!(st["last_run"]["trigger"], "delete");
    assert_eq!(st["last_run"]["bytes_reclaimed"], data.len() as u64);
}

#[test]
fn a_slow_upload_survives_gc_runs_longer_than_the_lifetime() {
    let s = Server::start_with(&[("DLREPO_ORPHAN_BLOB_LIFETIME", "1")]);
    wait_until("the startup cleanup", || runs(&s) >= 1);
    s.put_file("/branches/b/t/other/f/x", b"other").expect(201);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut c = s.connect();
    write!(
        c,
        "PUT /branches/b/t/slow/f/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nDigest: {}\r\nContent-Length: {}\r\n\r\n",
        sha256_digest(&data),
        data.len()
    )
    .unwrap();
    c.write_all(&data[..100_000]).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The staging file is now older than the lifetime: collect while it waits.
    s.signal(Signal::SIGUSR1);
    s.delete("/branches/b/t/other/").expect(200);
    wait_until("two GC runs during the upload", || runs(&s) >= 3);
    std::thread::sleep(Duration::from_millis(1200));
    s.signal(Signal::SIGUSR1);
    wait_until("a third GC run", || runs(&s) >= 4);
    c.write_all(&data[100_000..]).unwrap();
    read_response(&mut std::io::BufReader::new(c), "PUT").expect(201);
    assert_eq!(s.get("/branches/b/t/slow/f/big.bin").body, data);
}

#[test]
fn requests_during_a_run_collapse_into_one_full_follow_up() {
    let mut hold = CleanupHold::new();
    let s = Server::start_with(&[hold.env()]);
    for j in ["j1", "j2", "j3"] {
        s.put_file(&format!("/branches/b/t/{j}/f/a"), j.as_bytes()).expect(201);
    }
    // The startup run is held at its start; pile requests up behind it.
    // Signals are handled asynchronously, and two pending ones may merge:
    // each is seen arriving before the next is sent.
    s.delete("/branches/b/t/j1/").expect(200);
    s.signal(Signal::SIGUSR1);
    assert!(s.wait_log("requested by SIGUSR1", 1));
    s.delete("/branches/b/t/j2/").expect(200);
    s.signal(Signal::SIGUSR1);
    assert!(s.wait_log("requested by SIGUSR1", 2));
    s.delete("/branches/b/t/j3/").expect(200);
    assert_eq!(runs(&s), 0);
    hold.release();
    wait_until("two runs", || runs(&s) >= 2);
    std::thread::sleep(Duration::from_millis(500));
    let st = status(&s);
    assert_eq!(st["totals"]["runs"], 2, "exactly one follow-up run: {st}");
    assert_eq!(st["last_run"]["kind"], "full");
    assert_eq!(st["last_run"]["trigger"], "follow-up");
    assert_eq!(st["running"], false);
}

#[test]
fn deletes_alone_collapse_into_one_orphans_only_follow_up() {
    let mut hold = CleanupHold::new();
    let s = Server::start_with(&[hold.env()]);
    for j in ["j1", "j2"] {
        s.put_file(&format!("/branches/b/t/{j}/f/a"), j.as_bytes()).expect(201);
        s.delete(&format!("/branches/b/t/{j}/")).expect(200);
    }
    hold.release();
    wait_until("two runs", || runs(&s) >= 2);
    std::thread::sleep(Duration::from_millis(300));
    let st = status(&s);
    assert_eq!(st["totals"]["runs"], 2, "{st}");
    assert_eq!(st["last_run"]["kind"], "orphans-only");
}

#[test]
fn uploads_folder_is_cleaned_even_without_a_blobs_folder() {
    let s = Server::start_on(
        |root| {
            std::fs::create_dir_all(root.join(".uploads")).unwrap();
            std::fs::write(root.join(".uploads/0123456789abcdef0123456789abcdef"), "stale").unwrap();
            std::fs::write(root.join(".uploads/fresh"), "fresh").unwrap();
            set_mtime(&root.join(".uploads/0123456789abcdef0123456789abcdef"), 3600);
        },
        &[],
    );
    wait_until("the startup cleanup", || runs(&s) >= 1);
    assert!(!s.path(".uploads/0123456789abcdef0123456789abcdef").exists());
    assert!(s.path(".uploads/fresh").exists(), "young files stay");
    assert!(s.log().contains("Deleted 1 orphan blobs (5.0 bytes)"), "{}", s.log());
    assert_eq!(status(&s)["last_run"]["trigger"], "startup");
}

fn make_tag(root: &Path, branch: &str, tag: &str, age: u64) {
    let dir = root.join(format!("branches/{branch}/{tag}/job/fmt"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("file"), tag).unwrap();
    let stamp = root.join(format!("branches/{branch}/{tag}/.stamp"));
    std::fs::write(&stamp, "").unwrap();
    set_mtime(&stamp, age);
}

#[test]
fn retention_policies_keep_the_newest_and_never_touch_locked_tags() {
    let mut hold = CleanupHold::new();
    let s = Server::start_on(
        |root| {
            for (i, t) in ["t1", "t2", "t3", "t4", "t5"].iter().enumerate() {
                make_tag(root, "main", t, 100 - i as u64 * 10);
            }
            std::fs::write(root.join("branches/main/t1/.locked"), "").unwrap();
            std::fs::write(root.join("branches/main/t2/.stable"), "").unwrap();
            std::fs::write(
                root.join("branches/main/.cleanup_policy"),
                r#"{"max_daily_tags": 2, "max_released_tags": 1}"#,
            )
            .unwrap();
            for (i, t) in ["r1", "r2"].iter().enumerate() {
                make_tag(root, "rel", t, 100 - i as u64 * 10);
                std::fs::write(root.join(format!("branches/rel/{t}/.released")), "").unwrap();
            }
            // 0.44 stores booleans as they came: true counts as 1.
            std::fs::write(
                root.join("branches/rel/.cleanup_policy"),
                r#"{"max_released_tags": true}"#,
            )
            .unwrap();
            for (i, t) in ["u1", "u2", "u3"].iter().enumerate() {
                make_tag(&root.join("users/alice"), "ub", t, 100 - i as u64 * 10);
            }
            std::fs::write(
                root.join("users/alice/branches/ub/.cleanup_policy"),
                r#"{"max_daily_tags": 1}"#,
            )
            .unwrap();
            std::fs::create_dir_all(root.join(".blobs/sha256/00")).unwrap();
            let orphan = root.join(".blobs/sha256/00/00aa");
            std::fs::write(&orphan, "old orphan").unwrap();
            set_mtime(&orphan, 3600);
        },
        &[hold.env()],
    );
    hold.release();
    wait_until("the startup cleanup", || runs(&s) >= 1);
    let tags = |b: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(s.path(&format!("branches/{b}")))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        tags("main"),
        ["t1", "t4", "t5"],
        "locked t1 kept and not counted; stable gives no protection"
    );
    assert_eq!(
        tags("rel"),
        ["r2"],
        "released tags follow max_released_tags even without publishing"
    );
    let users: Vec<_> = std::fs::read_dir(s.path("users/alice/branches/ub"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        users.iter().filter(|e| e.path().is_dir()).count(),
        3,
        "user branches are not cleaned"
    );
    assert!(!s.path(".blobs/sha256/00/00aa").exists(), "the run went on to the GC");
    let st = status(&s);
    assert_eq!(st["last_run"]["tags_deleted"], 3);
    assert_eq!(st["last_run"]["kind"], "full");
    assert!(st["last_run"]["error"].is_null(), "{st}");
    assert!(s.log().contains("Deleting daily tag main/t3 ..."));
    assert!(s.log().contains("Deleted 3 tags"));
}

#[test]
fn quota_refresh_counts_every_file_and_survives_dangling_links() {
    let s = Server::start_with(&[]);
    wait_until("the startup cleanup", || runs(&s) >= 1);
    s.put_file("/~bob/branches/b/t/j/f/a", b"1234567").expect(201);
    s.put_file("/~bob/branches/b/t/j/g/b", b"abc").expect(201);
    let products = s.path("users/bob/products/p/v/pb/1.0");
    std::fs::create_dir_all(&products).unwrap();
    std::os::unix::fs::symlink("../../../../../branches/b/t/j/nope", products.join("gone")).unwrap();
    std::os::unix::fs::symlink("../../../../../branches/b/t/j/f", products.join("f")).unwrap();
    std::fs::write(s.path("users/bob/.disk_usage"), "999999").unwrap();
    let before = runs(&s);
    s.signal(Signal::SIGUSR1);
    wait_until("the SIGUSR1 cleanup", || runs(&s) > before);
    // Every regular file counts, dotfiles included, .disk_usage itself too.
    let mut expected = 0;
    fn walk(d: &Path, total: &mut u64) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                walk(&e.path(), total);
            } else if m.is_file() {
                *total += m.len();
            }
        }
    }
    walk(&s.path("users/bob"), &mut expected);
    let written: u64 = std::fs::read_to_string(s.path("users/bob/.disk_usage"))
        .unwrap()
        .parse()
        .unwrap();
    // .disk_usage was counted with its old length (6 bytes) before being rewritten.
    let new_len = written.to_string().len() as u64;
    assert_eq!(written, expected - new_len + 6, "usage {written}, files {expected}");
    assert!(status(&s)["last_run"]["error"].is_null());
    assert_eq!(status(&s)["last_run"]["trigger"], "SIGUSR1");
}

#[test]
fn stress_concurrent_uploads_links_and_deletes_under_repeated_gc() {
    stress_under_repeated_gc(&[]);
}

/// The same with the GC's unlinks on the ring, its way once a plain
/// unlink has waited for the disk.
#[test]
fn stress_under_repeated_gc_with_ring_unlinks() {
    stress_under_repeated_gc(&[("DLREPO_TEST_GC_RING_UNLINKS", "1")]);
}

fn stress_under_repeated_gc(env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("DLREPO_ORPHAN_BLOB_LIFETIME", "0"));
    let s = Server::start_with(&env);
    let contents: Vec<Vec<u8>> = (0..4)
        .map(|i| format!("shared content number {i}").into_bytes())
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        let pid = s.pid();
        let stop = &stop;
        sc.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGUSR1);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let s = &s;
                let contents = &contents;
                sc.spawn(move || {
                    for i in 0..60 {
                        let data = &contents[(w + i) % contents.len()];
                        let d = sha256_digest(data);
                        let path = format!("/branches/b/t/w{w}i{i}/f/file");
                        if i % 2 == 0 {
                            s.put_file(&path, data).expect(201);
                        } else {
                            let r = s
                                .req("PUT", &path)
                                .header("Digest", &d)
                                .header("X-Dlrepo-Link", &d)
                                .send();
                            match r.status {
                                201 => {}
                                // Collected meanwhile: upload it again.
                                404 => {
                                    s.put_file(&path, data).expect(201);
                                }
                                st => panic!("link-only PUT: {st} {}", r.text()),
                            }
                        }
                        if i % 3 == 2 {
                            s.delete(&format!("/branches/b/t/w{w}i{}/", i - 1)).expect(200);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // Let the last runs finish.
    let n = runs(&s);
    s.signal(Signal::SIGUSR1);
    wait_until("a last run", || runs(&s) > n && status(&s)["running"] == false);
    // Every surviving artifact has the right bytes and still shares its blob.
    let mut checked = 0;
    for e in std::fs::read_dir(s.path("branches/b/t")).unwrap().flatten() {
        let job = e.file_name().to_string_lossy().into_owned();
        if job.starts_with('.') {
            continue;
        }
        let file = e.path().join("f/file");
        let body = std::fs::read(&file).unwrap();
        assert!(contents.contains(&body), "{job}: unexpected bytes");
        let blob = blob_path(&s, &body);
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        assert!(blob.exists(), "{job}: its blob was collected while linked");
        assert_eq!(ino(&file), ino(&blob), "{job}: artifact is not a link to its blob");
        assert_eq!(s.get(&format!("/branches/b/t/{job}/f/file")).body, body);
        checked += 1;
    }
    assert!(checked > 100, "only {checked} artifacts survived");
    // Every blob hashes to its name.
    for shard in std::fs::read_dir(s.path(".blobs/sha256")).unwrap().flatten() {
        for b in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let bytes = std::fs::read(b.path()).unwrap();
            assert_eq!(sha256_hex(&bytes), b.file_name().to_string_lossy(), "corrupt blob");
        }
    }
    // With every artifact deleted, the next run leaves no blob behind.
    s.delete("/branches/b/t/").expect(200);
    let n = runs(&s);
    s.signal(Signal::SIGUSR1);
    wait_until("a run after the delete", || {
        runs(&s) > n && status(&s)["running"] == false
    });
    for shard in std::fs::read_dir(s.path(".blobs/sha256")).unwrap().flatten() {
        let left: Vec<_> = std::fs::read_dir(shard.path()).unwrap().flatten().collect();
        assert!(left.is_empty(), "orphans left in {}", shard.path().display());
    }
    assert!(!s.log().contains("panicked"));
}
