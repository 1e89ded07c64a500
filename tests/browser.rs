//! The pages in a real browser: headless Chromium driven through
//! chromedriver (Debian's `chromium` and `chromium-driver`, which `.ci/run`
//! installs), at a phone's width and a desktop's. Each page must render
//! (a title, a screenshot that is not blank), log no console error, and fit
//! the width without a horizontal scroll bar. Screenshots are kept under
//! `target/tmp/screenshots/`.

mod common;

use common::*;
use fantoccini::wd::WebDriverCompatibleCommand;
use std::process::{Child, Command, Stdio};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The browser's console log since the last call (chromedriver's legacy
/// log endpoint, which it keeps for exactly this).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(r#"{"type": "browser"}"#.into()))
    }
}

/// Whether a PNG holds more than a handful of colours.
fn is_blank(png_bytes: &[u8]) -> bool {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let px = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    colours.len() < 8
}

#[tokio::test]
async fn pages_render_in_chromium_at_phone_and_desktop_widths() {
    let s = Server::start();
    demo_site(&s);
    // Long names must wrap, not widen the page.
    let long = "a-very-long-tag-name-that-a-ci-pipeline-made-up-".repeat(3);
    s.put(&format!("/branches/main/{long}/job/logs/x.txt"), "x");
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Driver)
        .expect("chromedriver is needed: apt-get install chromium chromium-driver (.ci/run installs them)");
    wait_for_port("chromedriver", port);
    let profile = tempfile::tempdir().unwrap();
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", format!("--user-data-dir={}", profile.path().display()),
            ],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    }))
    .unwrap();
    let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let pages = [
        ("home", "/".to_string()),
        ("branch", "/branches/main/".to_string()),
        ("tag", "/branches/main/v1.0/".to_string()),
        ("job", "/branches/main/v1.0/x86_64/".to_string()),
        ("format", "/branches/main/v1.0/x86_64/logs/build/".to_string()),
        ("version", "/products/demo/server/1.0/1.0.0/".to_string()),
        ("long-names", format!("/branches/main/{long}/")),
    ];
    for (width, height) in [(390, 844), (1280, 900)] {
        client.set_window_size(width, height).await.unwrap();
        for (name, path) in &pages {
            client
                .goto(&format!("http://127.0.0.1:{}{path}", s.port))
                .await
                .unwrap();
            assert_eq!(client.title().await.unwrap(), "dlrepo", "{path}");
            let png = client.screenshot().await.unwrap();
            std::fs::write(shots.join(format!("{name}-{width}.png")), &png).unwrap();
            assert!(!is_blank(&png), "{path} at {width} px looks blank");
            let fits = client
                .execute(
                    "return document.documentElement.scrollWidth <= window.innerWidth + 1",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(fits, serde_json::json!(true), "{path} scrolls sideways at {width} px");
            let log = client.issue_cmd(BrowserLog).await.unwrap();
            let errors: Vec<&serde_json::Value> = log
                .as_array()
                .map(|a| a.iter().filter(|e| e["level"] == "SEVERE").collect())
                .unwrap_or_default();
            assert!(errors.is_empty(), "{path} at {width} px: {errors:?}");
        }
    }
    client.close().await.unwrap();
    drop(driver);
}
