//! The message body type hyper sends: a buffer, a file streamed through the
//! ring, a file spliced to the socket, or bytes another task produces.
//! Server answers and the publish client's requests use it alike.
//!
//! A spliced file never passes its bytes through hyper. The body moves a
//! chunk of the file into a pipe and gives hyper a *placeholder* of the same
//! length: a slice of one shared zeroed region that nothing else points
//! into. hyper frames and queues it like any data (its vectored write
//! strategy never copies a body chunk), and the connection's writer
//! (`http::batch`), seeing a slice of that region, sends that many bytes
//! from the pipe instead. Each connection writes one answer at a time, in
//! order, so the pipe's bytes and the placeholders line up.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::io::{splice, File};

type ReadFuture = Pin<Box<dyn Future<Output = (std::io::Result<usize>, Vec<u8>)>>>;

pub enum Body {
    Full(Option<Bytes>),
    File(FileBody),
    /// A file moved to the socket through a pipe.
    Splice(SpliceBody),
    /// Bytes produced by another task (archives), without a known length.
    Channel(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>),
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }
    pub fn from_bytes(b: impl Into<Bytes>) -> Body {
        let b: Bytes = b.into();
        if b.is_empty() {
            Body::Full(None)
        } else {
            Body::Full(Some(b))
        }
    }
}

/// Streams `len` bytes of a file from `pos`, keeping up to two ring reads
/// ahead of hyper so the disk and the socket work at the same time.
pub struct FileBody {
    file: Rc<File>,
    /// Next offset to request from the ring.
    next: u64,
    /// Bytes not yet requested.
    unrequested: u64,
    /// Bytes not yet handed to hyper.
    remaining: u64,
    chunk: usize,
    reads: VecDeque<ReadFuture>,
}

/// Reads in flight per download.
const READ_AHEAD: usize = 2;

impl FileBody {
    /// The first reads start when hyper first asks for data, right after
    /// it has written the head, unless the connection splices the file
    /// instead ([`SpliceTarget::adopt`]).
    pub fn new(file: File, pos: u64, len: u64, chunk: usize) -> FileBody {
        FileBody {
            file: Rc::new(file),
            next: pos,
            unrequested: len,
            remaining: len,
            chunk: chunk.max(4096),
            reads: VecDeque::new(),
        }
    }

    fn fill(&mut self) {
        while self.reads.len() < READ_AHEAD && self.unrequested > 0 {
            let n = (self.chunk as u64).min(self.unrequested) as usize;
            let file = self.file.clone();
            let pos = self.next;
            self.next += n as u64;
            self.unrequested -= n as u64;
            // Spawned so the read is submitted now, not when hyper next polls.
            // The buffer is not zeroed: the ring fills its whole capacity.
            let task = tokio_uring::spawn(async move { file.read_exact_at(Vec::with_capacity(n), pos).await });
            self.reads.push_back(Box::pin(async move {
                match task.await {
                    Ok((res, buf)) => (res.map(|()| buf.len()), buf),
                    Err(e) => (Err(std::io::Error::other(e.to_string())), Vec::new()),
                }
            }));
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Channel(rx) => rx.poll_recv(cx).map(|r| r.map(|r| r.map(Frame::data))),
            Body::Splice(s) => s.poll_chunk(cx),
            Body::File(f) => {
                f.fill();
                let Some(fut) = f.reads.front_mut() else {
                    return Poll::Ready(None);
                };
                let (res, buf) = match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                f.reads.pop_front();
                match res {
                    Err(e) => {
                        // Includes a file that shrank under us (UnexpectedEof):
                        // hyper then aborts the short response.
                        f.reads.clear();
                        f.unrequested = 0;
                        Poll::Ready(Some(Err(e)))
                    }
                    Ok(n) => {
                        f.remaining -= n as u64;
                        f.fill();
                        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::File(f) => f.remaining == 0,
            Body::Splice(s) => s.remaining == 0,
            Body::Channel(rx) => rx.is_closed() && rx.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map(|b| b.len() as u64).unwrap_or(0)),
            Body::File(f) => SizeHint::with_exact(f.remaining),
            Body::Splice(s) => SizeHint::with_exact(s.remaining),
            Body::Channel(_) => SizeHint::default(),
        }
    }
}

/// Files at least this long are spliced when the connection can.
pub const SPLICE_MIN: u64 = 1 << 20;
/// The pipe asked for; the placeholder region is as long.
const PIPE_SIZE: usize = 1 << 20;

/// The region placeholders are cut from. Zeroed memory that is never
/// written stays unbacked: it costs address space, not RAM.
fn region() -> &'static [u8] {
    static REGION: OnceLock<&'static [u8]> = OnceLock::new();
    REGION.get_or_init(|| vec![0u8; PIPE_SIZE].leak())
}

/// Whether `data` stands for bytes waiting in the connection's pipe.
pub fn is_placeholder(data: &[u8]) -> bool {
    let r = region().as_ptr_range();
    !data.is_empty() && r.contains(&data.as_ptr())
}

/// The connection's side of splicing: the pipe whose bytes the
/// placeholders stand for.
#[derive(Default)]
pub struct SpliceTarget {
    pipe: RefCell<Option<Rc<OwnedFd>>>,
}

impl SpliceTarget {
    /// The read end of the pipe of the answer being sent.
    pub fn pipe(&self) -> Option<Rc<OwnedFd>> {
        self.pipe.borrow().clone()
    }

    /// Turns a large file answer into a spliced one. Anything else, or a
    /// file when no pipe can be had, is left as it is.
    pub fn adopt(&self, body: &mut Body) {
        let Body::File(f) = body else {
            return;
        };
        if f.remaining < SPLICE_MIN || !f.reads.is_empty() {
            return;
        }
        let p = match splice::pipe(PIPE_SIZE) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("no pipe for a download, sending it by copy: {e}");
                return;
            }
        };
        // Half the pipe per chunk: the next chunk moves in while the
        // socket takes the current one.
        let chunk = (p.capacity / 2).clamp(4096, PIPE_SIZE);
        *self.pipe.borrow_mut() = Some(Rc::new(p.read));
        *body = Body::Splice(SpliceBody {
            file: f.file.clone(),
            next: f.next,
            remaining: f.remaining,
            pipe: Rc::new(p.write),
            chunk,
            moving: None,
        });
    }
}

type MoveTask = tokio::task::JoinHandle<std::io::Result<usize>>;

/// A file sent through a pipe; see the module comment.
pub struct SpliceBody {
    file: Rc<File>,
    /// Next offset to move into the pipe.
    next: u64,
    /// Bytes not yet handed to hyper (as placeholders).
    remaining: u64,
    pipe: Rc<OwnedFd>,
    chunk: usize,
    /// The move into the pipe in progress. One at a time keeps the pipe's
    /// bytes in file order.
    moving: Option<MoveTask>,
}

impl SpliceBody {
    /// Starts moving the next chunk into the pipe. Spawned, so it is
    /// submitted now rather than when hyper next polls.
    /// Bytes not handed to hyper are not yet in the pipe either: each
    /// chunk is handed over as soon as it has moved.
    fn start(&mut self) {
        if self.moving.is_some() || self.remaining == 0 {
            return;
        }
        let n = (self.chunk as u64).min(self.remaining) as u32;
        let (file, pipe, pos) = (self.file.clone(), self.pipe.clone(), self.next);
        self.moving = Some(tokio_uring::spawn(splice::file_to_pipe(file, pos, pipe, n)));
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        self.start();
        let Some(task) = self.moving.as_mut() else {
            return Poll::Ready(None);
        };
        let res = match Pin::new(task).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r.map_err(|e| std::io::Error::other(format!("splice task: {e}"))),
        };
        self.moving = None;
        let n = match res.and_then(|r| r) {
            // A file that shrank under us: hyper aborts the short answer.
            Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => Ok(n),
            Err(e) => Err(e),
        };
        match n {
            Err(e) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
            Ok(n) => {
                self.next += n as u64;
                self.remaining -= n as u64;
                self.start();
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&region()[..n])))))
            }
        }
    }
}
