//! Response bytes leave in batches, once per turn of the event loop.
//!
//! hyper writes each response as soon as it is ready. On a busy server that
//! means one `send` per request, spread over the turn, and each one may have
//! to wake the client's thread on another core, which is the most expensive
//! part of a small response. Here small writes are kept in the connection's
//! buffer and a flusher task sends every waiting buffer back to back after
//! the connections that were ready this turn have run: the client is woken
//! once for many responses. Large writes (file bodies) go straight to the
//! socket without a copy, after anything still buffered. Placeholders of a
//! spliced file (`crate::body`) are sent from their pipe.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use tokio::io::Interest;

use crate::body::{is_placeholder, SpliceTarget};
use crate::io::splice;

/// Writes at least this long skip the buffer.
const DIRECT: usize = 16 * 1024;
/// Buffered bytes above which a writer waits for the socket.
const LIMIT: usize = 64 * 1024;

/// One connection's side of the batch.
struct Out {
    fd: RawFd,
    buf: RefCell<Vec<u8>>,
    /// In the flusher's list for the coming batch.
    queued: Cell<bool>,
    /// The connection is gone: its descriptor must not be touched.
    closed: Cell<bool>,
    /// A send error, given to the connection at its next write or flush.
    err: RefCell<Option<io::Error>>,
    /// The connection task, woken when the flusher could not send
    /// everything, or when it waits for the batch (`waiting`).
    waker: RefCell<Option<Waker>>,
    waiting: Cell<bool>,
}

#[derive(Default)]
struct Flusher {
    list: RefCell<Vec<Rc<Out>>>,
    waker: RefCell<Option<Waker>>,
    running: Cell<bool>,
}

thread_local! {
    static FLUSHER: Rc<Flusher> = Rc::new(Flusher::default());
}

fn enqueue(out: &Rc<Out>) {
    if out.queued.replace(true) {
        return;
    }
    FLUSHER.with(|f| {
        f.list.borrow_mut().push(out.clone());
        if !f.running.replace(true) {
            let f = f.clone();
            tokio_uring::spawn(std::future::poll_fn(move |cx| f.poll(cx)));
        } else if let Some(w) = f.waker.borrow_mut().take() {
            w.wake();
        }
    });
}

impl Flusher {
    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let list = std::mem::take(&mut *self.list.borrow_mut());
        for out in list {
            out.queued.set(false);
            if out.closed.get() {
                continue;
            }
            out.send_now();
            // All sent: the connection need not run again for it. Otherwise
            // it waits for the socket itself, or learns of the error.
            if out.waiting.replace(false) || !out.buf.borrow().is_empty() || out.err.borrow().is_some() {
                if let Some(w) = out.waker.borrow_mut().take() {
                    w.wake();
                }
            }
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Out {
    /// Sends what the socket takes without waiting. What it refuses stays
    /// buffered; the connection then waits for the socket itself.
    fn send_now(&self) {
        let mut buf = self.buf.borrow_mut();
        let mut sent = 0;
        while sent < buf.len() {
            let rest = &buf[sent..];
            // SAFETY: `rest` is valid for its length; the descriptor is open
            // (`closed` is set before the connection's socket is dropped).
            let n = unsafe {
                libc::send(
                    self.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                sent += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => break,
                _ => {
                    *self.err.borrow_mut() = Some(e);
                    buf.clear();
                    return;
                }
            }
        }
        buf.drain(..sent);
        // An idle keep-alive connection keeps no large buffer.
        if buf.is_empty() && buf.capacity() > DIRECT {
            *buf = Vec::new();
        }
    }
}

/// What the writer needs of a socket besides hyper's traits: waiting
/// until it takes data and a write of our own (the pipe's splice).
pub trait Socket: AsRawFd + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_write_with(&self, f: impl FnOnce() -> io::Result<usize>) -> io::Result<usize>;
}

impl Socket for tokio::net::TcpStream {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_write_ready(self, cx)
    }
    fn try_write_with(&self, f: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
        self.try_io(Interest::WRITABLE, f)
    }
}

impl Socket for tokio::net::UnixStream {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::UnixStream::poll_write_ready(self, cx)
    }
    fn try_write_with(&self, f: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
        self.try_io(Interest::WRITABLE, f)
    }
}

/// hyper's I/O with batched small writes, over a socket `S`.
pub struct BatchIo<S> {
    inner: TokioIo<S>,
    out: Rc<Out>,
    splice: Rc<SpliceTarget>,
}

impl<S: Socket> BatchIo<S> {
    pub fn new(socket: S) -> BatchIo<S> {
        let fd = socket.as_raw_fd();
        BatchIo {
            inner: TokioIo::new(socket),
            splice: Rc::default(),
            out: Rc::new(Out {
                fd,
                buf: RefCell::new(Vec::new()),
                queued: Cell::new(false),
                closed: Cell::new(false),
                err: RefCell::new(None),
                waker: RefCell::new(None),
                waiting: Cell::new(false),
            }),
        }
    }

    /// Where the connection's answers hand over a file to splice.
    pub fn splice_target(&self) -> Rc<SpliceTarget> {
        self.splice.clone()
    }

    /// Sends up to `len` bytes from the pipe the placeholder stands for,
    /// after whatever is still buffered.
    fn poll_splice(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        if !self.out.buf.borrow().is_empty() {
            // The head of the answer, usually: sent now rather than at the
            // end of the turn.
            self.out.send_now();
            if self.poll_drain(cx)?.is_pending() {
                return Poll::Pending;
            }
        }
        let Some(pipe) = self.splice.pipe() else {
            return Poll::Ready(Err(io::Error::other("spliced data without a pipe")));
        };
        let socket = self.inner.inner();
        loop {
            if socket.poll_write_ready(cx)?.is_pending() {
                return Poll::Pending;
            }
            match socket.try_write_with(|| splice::pipe_to_socket(pipe.as_raw_fd(), self.out.fd, len)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S: Socket> BatchIo<S> {
    fn take_err(&self) -> io::Result<()> {
        match self.out.err.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn set_waker(&self, cx: &Context<'_>) {
        let mut w = self.out.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
    }

    /// Writes the buffer to the socket, waiting for it as needed. Only when
    /// the flusher is not about to do it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            self.take_err()?;
            if self.out.buf.borrow().is_empty() {
                return Poll::Ready(Ok(()));
            }
            if self.out.queued.get() {
                self.set_waker(cx);
                self.out.waiting.set(true);
                return Poll::Pending;
            }
            let n = {
                let buf = self.out.buf.borrow();
                match Pin::new(&mut self.inner).poll_write(cx, &buf) {
                    Poll::Ready(r) => r?,
                    Poll::Pending => return Poll::Pending,
                }
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.buf.borrow_mut().drain(..n);
        }
    }
}

impl<S: Socket> Read for BatchIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        // What the flusher could not send waits for the socket here too:
        // hyper reads the next request after a flush it was told is done.
        if !self.out.queued.get() && !self.out.buf.borrow().is_empty() {
            if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: Socket> Write for BatchIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.take_err()?;
        // Bytes before a placeholder are written alone; a placeholder
        // first is sent from the pipe.
        let mut bufs = bufs;
        if let Some(i) = bufs.iter().position(|b| is_placeholder(b)) {
            if bufs[..i].iter().all(|b| b.is_empty()) {
                return this.poll_splice(cx, bufs[i].len());
            }
            bufs = &bufs[..i];
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total >= DIRECT || this.out.buf.borrow().len() + total > LIMIT {
            // Keep the order: what is buffered goes first.
            if this.poll_drain(cx)?.is_pending() {
                return Poll::Pending;
            }
            if total >= DIRECT {
                return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            }
        }
        {
            let mut buf = this.out.buf.borrow_mut();
            for b in bufs {
                buf.extend_from_slice(b);
            }
        }
        if total > 0 {
            this.set_waker(cx);
            enqueue(&this.out);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Done once the bytes are handed to the flusher: it sends them at the
    /// end of this turn, so hyper can go on reading the next request.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.out.queued.get() && self.poll_drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        self.take_err()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.poll_drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> Drop for BatchIo<S> {
    fn drop(&mut self) {
        // A connection that ends on an error (a 400 or 431 hyper wrote just
        // before) may not have flushed: give the socket what it takes now,
        // before the descriptor closes with `inner`.
        if !self.out.buf.borrow().is_empty() && self.out.err.borrow().is_none() {
            self.out.send_now();
        }
        self.out.closed.set(true);
        self.out.buf.borrow_mut().clear();
    }
}
