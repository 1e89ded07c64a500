//! Accepting connections and serving HTTP/1.1 on them with hyper.

use std::cell::Cell;
use std::convert::Infallible;
use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, UnixListener};

use super::batch::BatchIo;
use super::{handle, Ctx};

/// Largest request head (request line plus headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Binds `addr:port` (an IP literal or a host name).
    pub async fn bind(addr: &str, port: u16) -> std::io::Result<Listener> {
        let host = if addr.contains(':') && !addr.starts_with('[') {
            format!("[{addr}]")
        } else {
            addr.to_string()
        };
        Ok(Listener::Tcp(TcpListener::bind(format!("{host}:{port}")).await?))
    }

    /// Takes over a listening socket passed by systemd.
    pub fn from_fd(fd: RawFd) -> std::io::Result<Listener> {
        use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};
        let addr: SockaddrStorage = getsockname(fd).map_err(std::io::Error::from)?;
        // SAFETY: systemd hands this descriptor to us; nothing else owns it.
        if addr.family() == Some(AddressFamily::Unix) {
            let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            l.set_nonblocking(true)?;
            Ok(Listener::Unix(UnixListener::from_std(l)?))
        } else {
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            l.set_nonblocking(true)?;
            Ok(Listener::Tcp(TcpListener::from_std(l)?))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| format!("http://{a}")).unwrap_or_default(),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix socket".into()),
        }
    }
}

/// Requests in progress, for graceful shutdown.
#[derive(Clone, Default)]
pub struct InFlight(Rc<Cell<usize>>);

impl InFlight {
    /// Counts into `counter` (shared with the store, which paces background work).
    pub fn new(counter: Rc<Cell<usize>>) -> InFlight {
        InFlight(counter)
    }

    pub fn count(&self) -> usize {
        self.0.get()
    }
}

struct InFlightGuard(Rc<Cell<usize>>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Accepts connections until `stop` resolves.
pub async fn serve(listener: Listener, ctx: Rc<Ctx>, inflight: InFlight, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            r = accept(&listener) => match r {
                Ok(io) => spawn_conn(io, ctx.clone(), inflight.clone()),
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of descriptors or similar: back off briefly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    match l {
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok(Conn::Tcp(s))
        }
        Listener::Unix(l) => Ok(Conn::Unix(l.accept().await?.0)),
    }
}

fn spawn_conn(conn: Conn, ctx: Rc<Ctx>, inflight: InFlight) {
    let header_timeout = ctx.cfg.header_timeout;
    let peer = match &conn {
        Conn::Tcp(s) => s.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
        Conn::Unix(_) => "unix".to_string(),
    };
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        let counter = inflight.0.clone();
        let peer = peer.clone();
        counter.set(counter.get() + 1);
        let guard = InFlightGuard(counter);
        async move {
            let _guard = guard;
            let resp = handle(ctx, req, &peer).await;
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(header_timeout.max(1)))
        .max_header_size(MAX_HEAD)
        .keep_alive(true);
    tokio_uring::spawn(async move {
        let res = match conn {
            Conn::Tcp(s) => builder.serve_connection(BatchIo::new(s), svc).await,
            Conn::Unix(s) => builder.serve_connection(BatchIo::new(s), svc).await,
        };
        if let Err(e) = res {
            tracing::debug!("connection ended: {e}");
        }
    });
}
