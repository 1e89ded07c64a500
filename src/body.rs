//! The message body type hyper sends: a buffer, a file streamed through the
//! ring, or bytes another task produces. Server answers and the publish
//! client's requests use it alike.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::io::File;

type ReadFuture = Pin<Box<dyn Future<Output = (std::io::Result<usize>, Vec<u8>)>>>;

pub enum Body {
    Full(Option<Bytes>),
    File(FileBody),
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
    pub fn new(file: File, pos: u64, len: u64, chunk: usize) -> FileBody {
        let mut fb = FileBody {
            file: Rc::new(file),
            next: pos,
            unrequested: len,
            remaining: len,
            chunk: chunk.max(4096),
            reads: VecDeque::new(),
        };
        fb.fill();
        fb
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
            Body::File(f) => {
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
            Body::Channel(rx) => rx.is_closed() && rx.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map(|b| b.len() as u64).unwrap_or(0)),
            Body::File(f) => SizeHint::with_exact(f.remaining),
            Body::Channel(_) => SizeHint::default(),
        }
    }
}
