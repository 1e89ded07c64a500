//! How answers leave a connection: in order, complete, and under
//! back-pressure, whatever mix of small (batched) and large (direct) writes
//! they are made of.

mod common;

use common::*;
use std::io::{BufReader, Write};
use std::time::Duration;

fn content(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 31 + i * 7) as u8).collect()
}

#[test]
fn pipelined_requests_get_their_answers_in_order() {
    let s = Server::start();
    let small: Vec<Vec<u8>> = (0..3).map(|i| content(i, 100 + i)).collect();
    let large = content(9, 1 << 20);
    for (i, d) in small.iter().enumerate() {
        s.put_file(&format!("/branches/b/t/j/f/s{i}"), d).expect(201);
    }
    s.put_file("/branches/b/t/j/f/large", &large).expect(201);

    // Small, large, small, a missing file, a HEAD and a small one that
    // closes: every answer whole and in the order asked.
    let order = [
        ("GET", "s0"),
        ("GET", "large"),
        ("GET", "s1"),
        ("GET", "nope"),
        ("HEAD", "s2"),
        ("GET", "s2"),
    ];
    let mut reqs = Vec::new();
    for (k, (m, name)) in order.iter().enumerate() {
        let close = if k + 1 == order.len() {
            "Connection: close\r\n"
        } else {
            ""
        };
        write!(reqs, "{m} /branches/b/t/j/f/{name} HTTP/1.1\r\nHost: x\r\n{close}\r\n").unwrap();
    }
    let mut c = s.connect();
    c.write_all(&reqs).unwrap();
    let mut r = BufReader::new(c);
    let expected: [(u16, &[u8]); 6] = [
        (200, &small[0]),
        (200, &large),
        (200, &small[1]),
        (404, b"404: Not Found"),
        (200, b""),
        (200, &small[2]),
    ];
    for (k, (status, body)) in expected.iter().enumerate() {
        let resp = read_response(&mut r, order[k].0);
        assert_eq!(resp.status, *status, "answer {k}");
        assert!(resp.body == *body, "answer {k}: wrong body ({} bytes)", resp.body.len());
    }
}

#[test]
fn a_client_that_reads_late_still_gets_every_byte() {
    // Far more answer bytes than the socket buffers hold: the server must
    // wait for the client and lose nothing while it waits.
    let s = Server::start();
    let files: Vec<Vec<u8>> = (0..8).map(|i| content(i, 4096 + i)).collect();
    for (i, d) in files.iter().enumerate() {
        s.put_file(&format!("/branches/b/t/j/f/{i}"), d).expect(201);
    }
    const N: usize = 4000;
    let mut reqs = Vec::new();
    for k in 0..N {
        let close = if k + 1 == N { "Connection: close\r\n" } else { "" };
        write!(
            reqs,
            "GET /branches/b/t/j/f/{} HTTP/1.1\r\nHost: x\r\n{close}\r\n",
            k % 8
        )
        .unwrap();
    }
    let c = s.connect();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&reqs).unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let mut r = BufReader::new(c);
    for k in 0..N {
        let resp = read_response(&mut r, "GET");
        assert_eq!(resp.status, 200, "answer {k}");
        assert!(resp.body == files[k % 8], "answer {k}: wrong body");
    }
    writer.join().unwrap();
    s.get("/branches/").expect(200);
}

#[test]
fn many_keep_alive_clients_at_once_each_get_their_own_answers() {
    let s = Server::start();
    let files: Vec<Vec<u8>> = (0..16).map(|i| content(i, 3000 + 97 * i)).collect();
    for (i, d) in files.iter().enumerate() {
        s.put_file(&format!("/branches/b/t/j/f/{i}"), d).expect(201);
    }
    std::thread::scope(|sc| {
        for t in 0..16 {
            let s = &s;
            let files = &files;
            sc.spawn(move || {
                let c = s.connect();
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                for k in 0..200 {
                    let i = (t + k) % 16;
                    write!(w, "GET /branches/b/t/j/f/{i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    let resp = read_response(&mut r, "GET");
                    assert_eq!(resp.status, 200);
                    assert!(resp.body == files[i], "client {t}, request {k}: wrong body");
                }
            });
        }
    });
}

/// A stop lets a download that is under way finish, closes idle
/// keep-alive connections, and then exits.
#[test]
fn a_stop_finishes_the_downloads_under_way() {
    use std::io::Read;
    let mut s = Server::start();
    let data: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    s.put_file("/branches/b/t/j/f/big", &data).expect(201);
    let idle = s.connect();
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"GET /branches/b/t/j/f/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Take the head and a little of the body, then ask the server to stop
    // while most of the body is still to come.
    let mut r = BufReader::with_capacity(4096, c);
    let mut first = [0u8; 64 << 10];
    r.read_exact(&mut first).unwrap();
    s.signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    assert_eq!(all.len() - body_at, data.len(), "the download was cut");
    assert!(all[body_at..] == data[..], "wrong bytes");
    // The idle connection was closed, and the server has exited.
    let mut idle = idle;
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(idle.read(&mut [0u8; 1]).unwrap_or(0), 0, "idle connection left open");
    assert!(s.wait_log("stopped", 1), "the server did not stop");
    s.stop();
}
