//! The HTML pages, parsed: every page kind's content and links, the
//! template override, ACL filtering, a crawl of the whole site, and the
//! browser's 401.

mod common;

use common::*;
use scraper::{Html, Selector};
use std::collections::{BTreeSet, VecDeque};

fn html_of(r: &Response) -> Html {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    Html::parse_document(&r.text())
}

fn browse(s: &Server, path: &str) -> Html {
    html_of(
        &s.req("GET", path)
            .header("Accept", "text/html,application/xhtml+xml")
            .send(),
    )
}

fn sel(css: &str) -> Selector {
    Selector::parse(css).unwrap()
}

/// The texts of the elements `css` selects.
fn texts(h: &Html, css: &str) -> Vec<String> {
    h.select(&sel(css))
        .map(|e| {
            e.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The links (`href`) of the elements `css` selects, resolved against the
/// page's URL, as paths.
fn links(h: &Html, page: &str, css: &str) -> Vec<String> {
    let base = url::Url::parse("http://host").unwrap().join(page).unwrap();
    h.select(&sel(css))
        .filter_map(|e| e.value().attr("href"))
        .map(|href| {
            let u = base.join(href).unwrap();
            match u.host_str() {
                Some("host") => u.path().to_string(),
                _ => u.to_string(),
            }
        })
        .collect()
}

/// Checks the common frame and returns the breadcrumb links.
#[track_caller]
fn frame(h: &Html, page: &str) -> Vec<String> {
    assert_eq!(texts(h, "title"), ["dlrepo"]);
    assert!(h.select(&sel("header img[src='/static/logo.svg']")).next().is_some());
    assert!(h
        .select(&sel("link[rel=stylesheet][href='/static/dlrepo.css']"))
        .next()
        .is_some());
    assert!(h
        .select(&sel("link[rel=icon][href='/static/favicon.svg']"))
        .next()
        .is_some());
    assert!(texts(h, "footer")[0].contains("Powered by dlrepo"));
    links(h, page, "nav.breadcrumbs a")
}

#[test]
fn every_page_shows_its_data_and_links_where_it_should() {
    let s = Server::start_with(&[("DLREPO_INTERNAL_FORMAT_FILTER", "internal-")]);
    demo_site(&s);
    std::fs::write(s.path("branches/main/v1.0/.released"), "").unwrap();
    std::fs::write(
        s.path("branches/main/v1.0/.publish-status"),
        "published to http://mirror\n",
    )
    .unwrap();

    // Home: always HTML, even for a JSON client.
    let home = html_of(&s.req("GET", "/").header("Accept", "application/json").send());
    assert_eq!(frame(&home, "/"), ["/"]);
    assert_eq!(links(&home, "/", "a.tile"), ["/branches/", "/products/"]);
    assert_eq!(links(&home, "/", "ul.names a"), ["/~alice/"]);
    assert_eq!(links(&home, "/", "ul.releases a"), ["/products/demo/server/1.0/1.0.0/"]);
    assert_eq!(texts(&home, "ul.releases a"), ["demo-server-v1.0.0"]);

    // Branches, in semantic order.
    let b = browse(&s, "/branches/");
    assert_eq!(frame(&b, "/branches/"), ["/"]);
    assert_eq!(texts(&b, "ul.names a"), ["feature-1.2", "feature-1.10", "main"]);

    // A branch: the summary, the aliases, the tags with their markers.
    let p = "/branches/main/";
    let br = browse(&s, p);
    assert_eq!(frame(&br, p), ["/", "/branches/"]);
    assert_eq!(texts(&br, "p.summary"), ["1 tag released, 2/10 daily (1 locked)."]);
    assert_eq!(
        links(&br, p, "p.aliases a"),
        [
            "/branches/main/latest/",
            "/branches/main/stable/",
            "/branches/main/oldstable/"
        ]
    );
    assert_eq!(texts(&br, "ul.names a"), ["v1.0", "v1.9", "v1.10"]);
    let first = br.select(&sel("ul.names li")).next().unwrap();
    let mut classes: Vec<&str> = first.value().classes().collect();
    classes.sort();
    assert_eq!(classes, ["locked", "published", "released"]);

    // A tag: the description (escaped), the badges, the jobs.
    let p = "/branches/main/v1.0/";
    let t = browse(&s, p);
    assert_eq!(frame(&t, p), ["/", "/branches/", "/branches/main/"]);
    assert_eq!(texts(&t, "p.description"), ["First release: <b>bold</b> & more"]);
    assert_eq!(
        texts(&t, ".badge"),
        ["released", "stable", "locked", "published to http://mirror"]
    );
    assert_eq!(
        links(&t, p, "ul.names a"),
        ["/branches/main/v1.0/arm64/", "/branches/main/v1.0/x86_64/"]
    );

    // A job: formats with their tar and sha256, the archive, install hints,
    // sorted metadata with Python booleans and the upload time, the product.
    let p = "/branches/main/v1.0/x86_64/";
    let j = browse(&s, p);
    assert_eq!(
        frame(&j, p),
        ["/", "/branches/", "/branches/main/", "/branches/main/v1.0/"]
    );
    assert_eq!(texts(&j, "a.format"), ["deb", "docs", "internal-debug", "logs", "rpm"]);
    let format_links = links(&j, p, "ul.formats a");
    assert!(format_links.contains(&format!("{p}rpm")) && format_links.contains(&format!("{p}rpm.tar")));
    assert!(format_links.contains(&format!("{p}rpm.sha256")));
    assert_eq!(texts(&j, "li.internal .badge"), ["internal format (not for release)"]);
    assert!(links(&j, p, "main p a").contains(&"/branches/main/v1.0/x86_64.tar".to_string()));
    let pre = texts(&j, "pre").join("\n");
    assert!(pre.contains("baseurl=http://127.0.0.1:"), "{pre}");
    assert!(
        pre.contains("/etc/yum.repos.d/x86_64-rpm.repo") && pre.contains("dnf makecache"),
        "{pre}"
    );
    assert!(
        pre.contains("/branches/main/v1.0/x86_64/deb/ /\" > /etc/apt/sources.list.d/x86_64-deb.list"),
        "{pre}"
    );
    let keys = texts(&j, "table.metadata th");
    assert_eq!(keys.last().map(String::as_str), Some("upload_time"));
    let mut sorted = keys[..keys.len() - 1].to_vec();
    sorted.sort();
    assert_eq!(sorted, keys[..keys.len() - 1]);
    let rows: Vec<String> = keys
        .iter()
        .zip(texts(&j, "table.metadata td"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(
        rows.contains(&"locked=True".to_string()) && rows.contains(&"built_by=ci".to_string()),
        "{rows:?}"
    );
    assert!(rows.contains(&"internal=False".to_string()), "{rows:?}");
    assert!(rows.last().unwrap().ends_with(" UTC"), "{rows:?}");
    assert_eq!(
        links(&j, p, "section:last-of-type a"),
        ["/products/demo/server/1.0/1.0.0/"]
    );

    // A format: its index.html when it has one, else the auto-index.
    let docs = s
        .req("GET", "/branches/main/v1.0/x86_64/docs/")
        .header("Accept", "text/html")
        .send();
    assert_eq!(docs.text(), "<html><body>docs home</body></html>");
    let p = "/branches/main/v1.0/x86_64/logs/";
    let f = browse(&s, p);
    assert_eq!(
        frame(&f, p).last().map(String::as_str),
        Some("/branches/main/v1.0/x86_64/")
    );
    assert_eq!(links(&f, p, "li.dir a"), ["/branches/main/v1.0/x86_64/logs/build/"]);
    let p = "/branches/main/v1.0/x86_64/logs/build/";
    let sub = browse(&s, p);
    assert_eq!(
        frame(&sub, p).last().map(String::as_str),
        Some("/branches/main/v1.0/x86_64/logs/")
    );
    assert_eq!(texts(&sub, "li.dir a"), ["sub dir/"]);
    assert_eq!(
        links(&sub, p, "li.file a"),
        [format!("{p}output.log"), format!("{p}output.log.sha256")]
    );
    assert_eq!(texts(&sub, "li.file .size"), ["16.0B"]);
    let p = "/branches/main/v1.0/x86_64/logs/build/sub%20dir/";
    let deeper = browse(&s, p);
    assert_eq!(texts(&deeper, "li.file > a:first-child"), ["ünïcode.txt"]);
    let leaf = links(&deeper, p, "li.file > a:first-child")[0].clone();
    assert_eq!(s.get(&leaf).text(), "unicode");
    // The reserved files are not listed.
    let rpm = browse(&s, "/branches/main/v1.0/x86_64/rpm/");
    assert!(!texts(&rpm, "li a")
        .iter()
        .any(|t| t.starts_with(".digests") || t.starts_with(".dirty")));

    // The products view.
    let pr = browse(&s, "/products/");
    assert_eq!(texts(&pr, "a.tile"), ["demo"]);
    assert_eq!(texts(&browse(&s, "/products/demo/"), "ul.names a"), ["server"]);
    assert_eq!(texts(&browse(&s, "/products/demo/server/"), "ul.names a"), ["1.0"]);
    let pb = browse(&s, "/products/demo/server/1.0/");
    assert_eq!(texts(&pb, "ul.names a"), ["1.0.0"]);
    let p = "/products/demo/server/1.0/1.0.0/";
    let v = browse(&s, p);
    assert_eq!(
        frame(&v, p),
        [
            "/",
            "/products/",
            "/products/demo/",
            "/products/demo/server/",
            "/products/demo/server/1.0/"
        ]
    );
    assert_eq!(texts(&v, "a.format"), ["deb", "docs", "internal-debug", "logs", "rpm"]);
    assert!(links(&v, p, "main p a").contains(&"/products/demo/server/1.0/1.0.0.tar".to_string()));
    assert!(texts(&v, "main p a").contains(&"demo-server-v1.0.0.tar".to_string()));
    assert!(texts(&v, "pre").join("\n").contains("demo-server-v1.0.0-rpm.repo"));
    assert_eq!(links(&v, p, "section:last-of-type a"), ["/branches/main/v1.0/x86_64/"]);

    // A user's home: disk usage, links within the user's repository.
    let p = "/~alice/";
    let u = browse(&s, p);
    assert_eq!(frame(&u, p), ["/"]);
    assert_eq!(links(&u, p, "a.tile"), ["/~alice/branches/", "/~alice/products/"]);
    assert!(texts(&u, "section.usage p")[0].starts_with("~ 12.0 / 10.7G"));
    let p = "/~alice/branches/scratch/t/";
    let ut = browse(&s, p);
    assert_eq!(
        frame(&ut, p),
        ["/", "/~alice/", "/~alice/branches/", "/~alice/branches/scratch/"]
    );
}

#[test]
fn a_user_near_the_quota_sees_it_in_red() {
    let s = Server::start_with(&[("DLREPO_USER_QUOTA", "100")]);
    s.put("/~bob/branches/b/t/j/f/a", &"x".repeat(90));
    let u = browse(&s, "/~bob/");
    assert!(u.select(&sel("section.usage.danger")).next().is_some());
    assert_eq!(texts(&u, "section.usage p"), ["~ 90.0 / 100", "Available ~ 10.0"]);
}

#[test]
fn templates_are_overridden_file_by_file_and_a_broken_one_says_where() {
    let tmp = tempfile::tempdir().unwrap();
    // Extends the built-in one and changes a block.
    std::fs::write(
        tmp.path().join("branches.html"),
        "{% extends \"templates/branches.html\" %}{% block footer %}Our own CI farm, {{ year }}{% endblock %}",
    )
    .unwrap();
    // A 0.44-style template that mutates a list, which minijinja cannot do.
    std::fs::write(
        tmp.path().join("tag.html"),
        "{% extends \"base.html\" %}\n{% block page_content %}\n{% set l = [] %}\n{% do l.append(1) %}\n{% endblock %}\n",
    )
    .unwrap();
    let s = Server::start_with(&[("DLREPO_TEMPLATES_DIR", tmp.path().to_str().unwrap())]);
    demo_site(&s);
    let b = browse(&s, "/branches/");
    assert!(texts(&b, "footer")[0].starts_with("Our own CI farm, 20"));
    assert_eq!(texts(&b, "ul.names a").len(), 3, "the rest is the built-in page");
    let r = s
        .req("GET", "/branches/main/v1.0/")
        .header("Accept", "text/html")
        .send();
    r.expect(500);
    assert!(r.reason.contains("tag.html line 4"), "{}", r.reason);
    assert!(
        r.reason.contains("append") || r.text().contains("append"),
        "{}",
        r.text()
    );
    // Pages that are not overridden are the built-in ones.
    assert_eq!(
        texts(&browse(&s, "/branches/main/"), "ul.names a"),
        ["v1.0", "v1.9", "v1.10"]
    );
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

#[test]
fn pages_show_only_what_the_caller_may_read_and_ask_browsers_to_log_in() {
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("auth"), "admin:a:admins\nguest:g:guests\n").unwrap();
    std::fs::create_dir_all(etc.path().join("acls")).unwrap();
    std::fs::write(etc.path().join("acls/admins"), "rw /**\n").unwrap();
    std::fs::write(
        etc.path().join("acls/guests"),
        "r /\nr /branches/\nr /branches/main/\nr /branches/main/v1.9/**\nr /products/**\n",
    )
    .unwrap();
    let s = Server::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", etc.path().join("auth").to_str().unwrap()),
        ("DLREPO_ACLS_DIR", etc.path().join("acls").to_str().unwrap()),
    ]);
    let admin = basic("admin", "a");
    for (path, data) in [
        ("/branches/main/v1.0/j/f/a", "a"),
        ("/branches/main/v1.9/j/f/a", "b"),
        ("/branches/other/t/j/f/a", "c"),
    ] {
        s.req("PUT", path)
            .header("Authorization", &admin)
            .header("Digest", &sha256_digest(data.as_bytes()))
            .body(data.as_bytes())
            .send()
            .expect(201);
    }
    let guest = |path: &str| {
        html_of(
            &s.req("GET", path)
                .header("Accept", "text/html")
                .header("Authorization", &basic("guest", "g"))
                .send(),
        )
    };
    let home = guest("/");
    assert_eq!(texts(&home, "header .user"), ["Authenticated as guest"]);
    assert_eq!(texts(&guest("/branches/"), "ul.names a"), ["main"]);
    assert_eq!(texts(&guest("/branches/main/"), "ul.names a"), ["v1.9"]);
    // A browser without credentials is asked for them.
    let r = s.req("GET", "/").header("Accept", "text/html").send();
    r.expect(401);
    assert!(r.header("www-authenticate").unwrap_or("").starts_with("Basic realm="));
}

/// Every link of every page, followed from the home page as `wget -r`
/// would: each answers, and none leaves the site or climbs above its root.
#[test]
fn a_crawl_of_the_site_finds_no_broken_link() {
    let s = Server::start();
    demo_site(&s);
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/".to_string()]);
    let mut pages = 0;
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let mut r = s.req("GET", &path).header("Accept", "text/html").send();
        // Links resolve against where the redirects end, as in a browser.
        let mut at = path.clone();
        let mut hops = 0;
        while r.status == 302 && hops < 5 {
            at = r.header("location").unwrap().to_string();
            r = s.req("GET", &at).header("Accept", "text/html").send();
            hops += 1;
        }
        assert_eq!(r.status, 200, "{path}: {} {}", r.status, r.text());
        if r.header("content-type") != Some("text/html; charset=utf-8") {
            continue;
        }
        pages += 1;
        let h = Html::parse_document(&r.text());
        let base = url::Url::parse(&format!("http://127.0.0.1:{}", s.port))
            .unwrap()
            .join(&at)
            .unwrap();
        for e in h.select(&sel("a[href], link[href], img[src]")) {
            let target = e.value().attr("href").or(e.value().attr("src")).unwrap();
            let u = base.join(target).unwrap();
            if u.host_str() != Some("127.0.0.1") {
                assert_eq!(
                    u.as_str(),
                    "https://pypi.org/project/dlrepo/",
                    "an outside link on {path}"
                );
                continue;
            }
            assert_eq!(u.port(), Some(s.port), "{target} on {path}");
            assert!(!target.contains("../") || base.join(target).is_ok());
            queue.push_back(u.path().to_string());
        }
    }
    assert!(pages >= 20, "only {pages} pages: {seen:?}");
}
