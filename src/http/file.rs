//! File responses (docs/spec/http-api.md §2.7–2.8): length, type, validators,
//! conditional requests, single byte ranges, and X-Sendfile.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::{Ctx, HttpError, HttpResult, Req};
use crate::body::{Body, FileBody};
use crate::io;

const DIGEST: header::HeaderName = header::HeaderName::from_static("digest");

/// Files up to this size are read in one go before answering.
const SMALL_FILE: u64 = 64 * 1024;
/// Read size for file downloads.
const DOWNLOAD_CHUNK: usize = 512 * 1024;

/// Serves a file. `digest` goes into a `Digest` header on every answer.
/// `sendfile`: whether `DLREPO_X_SENDFILE_HEADER` may answer instead
/// (never for static assets); it is decided before opening anything.
pub async fn serve(
    ctx: &Rc<Ctx>,
    req: &Req,
    path: &Path,
    digest: Option<&str>,
    sendfile: bool,
) -> HttpResult<Response<Body>> {
    if let (true, Some(hname)) = (sendfile, &ctx.cfg.x_sendfile_header) {
        return sendfile_answer(hname, path, digest);
    }
    let file = io::open_read(path).await?;
    let stx = io::fstat(&file)?;
    respond_file(ctx, req, path, file, stx, digest).await
}

/// Serves a file the caller already opened and stat'ed.
pub async fn serve_open(
    ctx: &Rc<Ctx>,
    req: &Req,
    path: &Path,
    file: io::File,
    stx: io::Stat,
    digest: Option<&str>,
) -> HttpResult<Response<Body>> {
    // A HEAD has no body for the proxy to send: it is answered here.
    if let (Some(hname), false) = (&ctx.cfg.x_sendfile_header, *req.method() == Method::HEAD) {
        return sendfile_answer(hname, path, digest);
    }
    respond_file(ctx, req, path, file, stx, digest).await
}

/// The file response proper: validators, conditionals, ranges, the body.
async fn respond_file(
    ctx: &Rc<Ctx>,
    req: &Req,
    path: &Path,
    file: io::File,
    stx: io::Stat,
    digest: Option<&str>,
) -> HttpResult<Response<Body>> {
    let size = stx.size;
    let mtime_ns = stx.mtime_ns();
    // Formatted on the stack: the header value is the only copy made.
    let mut etag_buf = [0u8; 64];
    let etag = {
        use std::io::Write;
        let mut w = std::io::Cursor::new(&mut etag_buf[..]);
        let _ = write!(w, "\"{:x}-{:x}\"", mtime_ns.max(0), size);
        let n = w.position() as usize;
        std::str::from_utf8(&etag_buf[..n]).unwrap_or_default()
    };
    let mtime = UNIX_EPOCH + Duration::from_secs(stx.mtime_sec.max(0) as u64);

    let mut resp = Response::new(Body::empty());
    // Room for every header of a file answer, so the map is allocated once.
    *resp.headers_mut() = header::HeaderMap::with_capacity(8);
    let h = resp.headers_mut();
    if let Some(d) = digest.and_then(|d| HeaderValue::from_str(d).ok()) {
        h.insert(DIGEST, d);
    }
    h.insert(header::ETAG, hv(etag));
    h.insert(header::LAST_MODIFIED, last_modified(mtime));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    // Preconditions first (412), then cache validators (304).
    if let Some(im) = req.header(header::IF_MATCH) {
        if im.trim() != "*" && !im.split(',').any(|t| t.trim() == etag) {
            return Ok(status_only(resp, StatusCode::PRECONDITION_FAILED));
        }
    }
    if let Some(since) = req
        .header(header::IF_UNMODIFIED_SINCE)
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        if mtime > since {
            return Ok(status_only(resp, StatusCode::PRECONDITION_FAILED));
        }
    }
    if let Some(inm) = req.header(header::IF_NONE_MATCH) {
        if inm.trim() == "*" || inm.split(',').any(|t| t.trim().trim_start_matches("W/") == etag) {
            return Ok(status_only(resp, StatusCode::NOT_MODIFIED));
        }
    } else if let Some(since) = req
        .header(header::IF_MODIFIED_SINCE)
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        if mtime <= since {
            return Ok(status_only(resp, StatusCode::NOT_MODIFIED));
        }
    }

    let ctype = guess_type(path);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    let mut start = 0;
    let mut len = size;
    let range_applies = match req.header(header::IF_RANGE) {
        None => true,
        // Like the original, only a date form of If-Range is honoured.
        Some(v) => httpdate::parse_http_date(v).map(|d| mtime <= d).unwrap_or(true),
    };
    if let (Some(range), true) = (req.header(header::RANGE), range_applies) {
        match parse_range(range, size) {
            RangeSpec::Ignore => {}
            RangeSpec::Unsatisfiable => {
                let mut r = status_only(resp, StatusCode::RANGE_NOT_SATISFIABLE);
                r.headers_mut()
                    .insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}")));
                return Ok(r);
            }
            RangeSpec::Range(a, b) => {
                start = a;
                len = b - a + 1;
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                resp.headers_mut()
                    .insert(header::CONTENT_RANGE, hv(&format!("bytes {a}-{b}/{size}")));
            }
        }
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if *req.method() == Method::HEAD || len == 0 {
        return Ok(resp);
    }
    if len <= SMALL_FILE {
        // One read, answered in one piece: no streaming machinery.
        let buf = io::read_at(&file, stx.dev, len as usize, start).await?;
        *resp.body_mut() = Body::from_bytes(buf);
        return Ok(resp);
    }
    // Large reads keep the ring busy with few operations; DLREPO_CHUNK_SIZE
    // is the floor.
    let chunk = ctx.cfg.chunk_size.max(DOWNLOAD_CHUNK);
    *resp.body_mut() = Body::File(FileBody::new(file, start, len, chunk));
    Ok(resp)
}

/// The `Last-Modified` value of a modification time. The last one is kept:
/// files uploaded together share their second, and the date is formatted
/// once for all of them.
fn last_modified(mtime: SystemTime) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(SystemTime, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((when, v)) = last.as_ref() {
            if *when == mtime {
                return v.clone();
            }
        }
        let v = hv(&httpdate::fmt_http_date(mtime));
        *last = Some((mtime, v.clone()));
        v
    })
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn status_only(mut resp: Response<Body>, status: StatusCode) -> Response<Body> {
    *resp.status_mut() = status;
    resp.headers_mut().remove(header::CONTENT_TYPE);
    if status != StatusCode::NOT_MODIFIED {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    resp
}

/// The X-Sendfile answer: an empty body and the file's canonical path.
fn sendfile_answer(hname: &str, path: &Path, digest: Option<&str>) -> HttpResult<Response<Body>> {
    let real = io::canonicalize(path)?;
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    if let Some(d) = digest.and_then(|d| HeaderValue::from_str(d).ok()) {
        h.insert(DIGEST, d);
    }
    let name = header::HeaderName::from_bytes(hname.as_bytes()).map_err(|_| HttpError::Internal)?;
    let value = HeaderValue::from_bytes(real.as_os_str().as_encoded_bytes()).map_err(|_| HttpError::Internal)?;
    h.insert(name, value);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(""));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Ok(resp)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    Ignore,
    Unsatisfiable,
    Range(u64, u64),
}

/// Parses a single `bytes=` range against a file size.
fn parse_range(v: &str, size: u64) -> RangeSpec {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Unsatisfiable;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Some(n) = byte_pos(b) else {
            return RangeSpec::Unsatisfiable;
        };
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        let n = n.min(size);
        return RangeSpec::Range(size - n, size - 1);
    }
    let Some(start) = byte_pos(a) else {
        return RangeSpec::Unsatisfiable;
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    let end = if b.is_empty() {
        size - 1
    } else {
        match byte_pos(b) {
            Some(e) if e >= start => e.min(size - 1),
            _ => return RangeSpec::Unsatisfiable,
        }
    };
    RangeSpec::Range(start, end)
}

/// A byte position or count: digits only; one too large for a `u64` is
/// past any file's end, so it counts as the largest value.
fn byte_pos(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// Content type from the file name, like Python's `mimetypes`.
pub fn guess_type(path: &Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((_, ext)) = name.rsplit_once('.') else {
        return "application/octet-stream";
    };
    // Known extensions are short: lowercase into a stack buffer, no allocation.
    let mut lower = [0u8; 8];
    if ext.len() > lower.len() {
        return "application/octet-stream";
    }
    lower[..ext.len()].copy_from_slice(ext.as_bytes());
    lower.make_ascii_lowercase();
    let ext = std::str::from_utf8(&lower[..ext.len()]).unwrap_or("");
    match ext {
        "txt" | "log" | "sha256" | "asc" | "md5" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/vnd.microsoft.icon",
        "pdf" => "application/pdf",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "zip" => "application/zip",
        "xz" => "application/x-xz",
        "bz2" => "application/x-bzip2",
        "deb" => "application/vnd.debian.binary-package",
        "rpm" => "application/x-rpm",
        "iso" => "application/x-iso9660-image",
        "sh" => "application/x-sh",
        "py" => "text/x-python",
        "c" | "h" => "text/x-c",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Range(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::Range(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Range(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeSpec::Range(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), RangeSpec::Range(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 100), RangeSpec::Unsatisfiable);
        // Positions past u64 are past the end of any file.
        assert_eq!(
            parse_range("bytes=0-99999999999999999999", 100),
            RangeSpec::Range(0, 99)
        );
        assert_eq!(parse_range("bytes=-99999999999999999999", 100), RangeSpec::Range(0, 99));
        assert_eq!(
            parse_range("bytes=99999999999999999999-", 100),
            RangeSpec::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=+5-9", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=x-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
    }

    #[test]
    fn types() {
        assert_eq!(guess_type(Path::new("a.txt")), "text/plain");
        assert_eq!(guess_type(Path::new("a.tar.gz")), "application/gzip");
        assert_eq!(guess_type(Path::new("README")), "application/octet-stream");
        assert_eq!(guess_type(Path::new("x.svg")), "image/svg+xml");
        assert_eq!(guess_type(Path::new("NOTES.TXT")), "text/plain");
        assert_eq!(guess_type(Path::new("a.verylongextension")), "application/octet-stream");
        assert_eq!(guess_type(Path::new("a.")), "application/octet-stream");
        assert_eq!(guess_type(Path::new(".bashrc")), "application/octet-stream");
    }
}
