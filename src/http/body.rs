//! The response body type: a buffer, or a file streamed through the ring.

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

/// Streams `len` bytes of a file from `pos`, one ring read ahead of hyper.
pub struct FileBody {
    file: Rc<File>,
    pos: u64,
    remaining: u64,
    chunk: usize,
    pending: Option<ReadFuture>,
}

impl FileBody {
    pub fn new(file: File, pos: u64, len: u64, chunk: usize) -> FileBody {
        let mut fb = FileBody {
            file: Rc::new(file),
            pos,
            remaining: len,
            chunk: chunk.max(4096),
            pending: None,
        };
        fb.start_read();
        fb
    }

    fn start_read(&mut self) {
        if self.remaining == 0 {
            self.pending = None;
            return;
        }
        let n = (self.chunk as u64).min(self.remaining) as usize;
        let file = self.file.clone();
        let pos = self.pos;
        self.pending = Some(Box::pin(
            async move { file.read_at(vec![0u8; n], pos).await },
        ));
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::File(f) => {
                let Some(fut) = f.pending.as_mut() else {
                    return Poll::Ready(None);
                };
                let (res, mut buf) = match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                match res {
                    Err(e) => {
                        f.pending = None;
                        Poll::Ready(Some(Err(e)))
                    }
                    Ok(0) => {
                        // The file shrank under us: end early; hyper reports the short body.
                        f.pending = None;
                        Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "file shorter than announced",
                        ))))
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        f.pos += n as u64;
                        f.remaining -= n as u64;
                        f.start_read();
                        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::File(f) => f.remaining == 0 && f.pending.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map(|b| b.len() as u64).unwrap_or(0)),
            Body::File(f) => SizeHint::with_exact(f.remaining),
        }
    }
}
