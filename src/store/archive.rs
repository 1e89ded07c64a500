//! Tar archives of formats, jobs and product versions (docs/spec/http-api.md §7.18),
//! produced as a stream with constant memory.
//!
//! A producer task reads each member through the ring a chunk at a time and
//! sends the bytes into a small bounded channel that the HTTP body drains,
//! so a 10 GiB job costs a few chunks of memory and the socket's pace sets
//! the disk's. Headers are POSIX.1-2001 pax: an extended header (`x`) before
//! every member carries the fractional mtime, and the path when it is not
//! ASCII or too long for ustar; the `tar` crate encodes the ustar headers.

use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::pyjson::float_repr;
use crate::io;

const BLOCK: usize = 512;
/// The tar record: archives are padded to a multiple of it.
const RECORD: u64 = 10240;
/// Chunks buffered between the producer and the socket.
const CHANNEL_CHUNKS: usize = 4;

/// One file of an archive.
#[derive(Debug, Clone)]
pub struct Member {
    /// Name inside the archive, without the prefix (`fmt/dir/file`).
    pub key: String,
    pub path: PathBuf,
    /// The digest string recorded in `.digests`.
    pub digest: String,
}

/// Starts producing the archive; the receiver yields its bytes.
pub fn spawn(
    mut members: Vec<Member>,
    prefix: String,
    fallback_mtime: f64,
    chunk: usize,
) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    members.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    tokio_uring::spawn(async move {
        if let Err(e) = produce(&tx, members, &prefix, fallback_mtime, chunk.max(BLOCK)).await {
            // The client already has a 200: all we can do is cut the stream.
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

async fn produce(
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
    members: Vec<Member>,
    prefix: &str,
    fallback_mtime: f64,
    chunk: usize,
) -> std::io::Result<()> {
    let gone = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away");
    let mut total: u64 = 0;
    let mut sums = String::new();
    for m in &members {
        if let Some(hex) = m.digest.strip_prefix("sha256:") {
            sums.push_str(&format!("{hex}  {}\n", m.key));
        }
        let st = match io::lstat(&m.path).await {
            Ok(st) if st.is_file() => st,
            // Listed in .digests but not a file any more: leave it out.
            _ => continue,
        };
        let mtime = if st.mtime_sec == 0 && st.mtime_nsec == 0 {
            fallback_mtime
        } else {
            st.mtime_f64()
        };
        let head = member_header(&format!("{prefix}/{}", m.key), st.size, st.mode & 0o7777, mtime)?;
        total += head.len() as u64;
        tx.send(Ok(Bytes::from(head))).await.map_err(|_| gone())?;
        let file = io::open_read(&m.path).await?;
        let mut sent = 0u64;
        while sent < st.size {
            let n = (chunk as u64).min(st.size - sent) as usize;
            let (res, mut buf) = file.read_at(vec![0u8; n], sent).await;
            let got = res?;
            if got == 0 {
                // The file shrank while we read it: keep the archive well formed.
                buf.clear();
                buf.resize(n, 0);
            } else {
                buf.truncate(got);
            }
            sent += buf.len() as u64;
            tx.send(Ok(Bytes::from(buf))).await.map_err(|_| gone())?;
        }
        total += sent;
        let pad = padding(sent);
        if pad > 0 {
            total += pad as u64;
            tx.send(Ok(Bytes::from(vec![0u8; pad]))).await.map_err(|_| gone())?;
        }
    }
    if !sums.is_empty() {
        let mut head = member_header(
            &format!("{prefix}/SHA256SUMS.txt"),
            sums.len() as u64,
            0o644,
            fallback_mtime,
        )?;
        head.extend_from_slice(sums.as_bytes());
        head.resize(head.len() + padding(sums.len() as u64), 0);
        total += head.len() as u64;
        tx.send(Ok(Bytes::from(head))).await.map_err(|_| gone())?;
    }
    // Two zero blocks, then zeros up to a whole record.
    let mut end = (2 * BLOCK) as u64;
    let rest = (total + end) % RECORD;
    if rest != 0 {
        end += RECORD - rest;
    }
    tx.send(Ok(Bytes::from(vec![0u8; end as usize])))
        .await
        .map_err(|_| gone())?;
    Ok(())
}

fn padding(size: u64) -> usize {
    let r = (size % BLOCK as u64) as usize;
    if r == 0 {
        0
    } else {
        BLOCK - r
    }
}

/// A pax extended header followed by the member's ustar header.
fn member_header(name: &str, size: u64, mode: u32, mtime: f64) -> std::io::Result<Vec<u8>> {
    let mut records = pax_record("mtime", &float_repr(mtime));
    let mut ustar = tar::Header::new_ustar();
    let fits = name.is_ascii() && ustar.set_path(name).is_ok();
    if !fits {
        records.push_str(&pax_record("path", name));
        // A readable stand-in for readers that ignore pax.
        let short: String = name
            .chars()
            .filter(|c| c.is_ascii())
            .rev()
            .take(99)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        ustar
            .set_path(short.trim_start_matches('/'))
            .or_else(|_| ustar.set_path("file"))?;
    }
    let mut out = Vec::with_capacity(3 * BLOCK + records.len());
    let mut x = tar::Header::new_ustar();
    x.set_path("././@PaxHeader")?;
    x.set_entry_type(tar::EntryType::XHeader);
    x.set_size(records.len() as u64);
    x.set_mode(0o644);
    x.set_mtime(mtime.max(0.0) as u64);
    x.set_uid(0);
    x.set_gid(0);
    x.set_cksum();
    out.extend_from_slice(x.as_bytes());
    out.extend_from_slice(records.as_bytes());
    out.resize(out.len() + padding(records.len() as u64), 0);

    ustar.set_entry_type(tar::EntryType::Regular);
    ustar.set_size(size);
    ustar.set_mode(mode);
    ustar.set_mtime(mtime.max(0.0) as u64);
    ustar.set_uid(0);
    ustar.set_gid(0);
    ustar.set_username("")?;
    ustar.set_groupname("")?;
    ustar.set_cksum();
    out.extend_from_slice(ustar.as_bytes());
    Ok(out)
}

/// `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len = format!("{len}").len() + body.len();
    }
    format!("{len}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(pax_record("path", "a"), "9 path=a\n");
        let long = "x".repeat(95);
        let r = pax_record("path", &long);
        assert_eq!(
            r.split(' ')
                .next()
                .expect("test value")
                .parse::<usize>()
                .expect("test value"),
            r.len()
        );
    }

    #[test]
    fn headers_are_whole_blocks() {
        let h = member_header("prefix/f\u{fc}r/file", 3, 0o644, 1.5).expect("test value");
        assert_eq!(h.len() % BLOCK, 0);
        let h = member_header(&format!("p/{}", "d/".repeat(80)), 3, 0o644, 1.5).expect("test value");
        assert_eq!(h.len() % BLOCK, 0);
    }
}
