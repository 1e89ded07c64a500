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

use super::batch::{BatchIo, Socket};
use super::{handle, Ctx};
use crate::store::activity::Activity;

/// Largest request head (request line plus headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Binds `addr:port` (an IP literal or a host name) with a listen
    /// queue of `backlog` connections.
    pub async fn bind(addr: &str, port: u16, backlog: u32) -> std::io::Result<Listener> {
        let host = if addr.contains(':') && !addr.starts_with('[') {
            format!("[{addr}]")
        } else {
            addr.to_string()
        };
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address");
        for a in tokio::net::lookup_host(format!("{host}:{port}")).await? {
            let socket = if a.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            match socket.bind(a).and_then(|()| socket.listen(backlog)) {
                Ok(l) => return Ok(Listener::Tcp(l)),
                Err(e) => last = e,
            }
        }
        Err(last)
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

/// Requests and connections in progress, for a graceful shutdown.
#[derive(Clone)]
pub struct InFlight {
    /// Requests whose handler runs (shared with the store, which paces
    /// background work by it).
    requests: Rc<Activity>,
    /// Open connections, idle ones included until the shutdown closes them.
    conns: Rc<Cell<usize>>,
    /// Set once the server stops: each connection finishes the answer it is
    /// sending (a whole download), then closes.
    stopping: Rc<tokio::sync::watch::Sender<bool>>,
}

impl InFlight {
    /// Counts requests into `activity`.
    pub fn new(activity: Rc<Activity>) -> InFlight {
        InFlight {
            requests: activity,
            conns: Rc::default(),
            stopping: Rc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Asks every connection to close once its current answer is sent.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// The open connections' counter (`/metrics`).
    pub fn connections(&self) -> Rc<Cell<usize>> {
        self.conns.clone()
    }

    /// Requests being handled plus connections still open.
    pub fn count(&self) -> usize {
        self.requests.in_flight() + self.conns.get()
    }
}

struct InFlightGuard(Rc<Cell<usize>>);

impl InFlightGuard {
    fn new(counter: &Rc<Cell<usize>>) -> InFlightGuard {
        counter.set(counter.get() + 1);
        InFlightGuard(counter.clone())
    }
}

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
    match conn {
        Conn::Tcp(s) => {
            let peer = s.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
            spawn_served(BatchIo::new(s), peer, ctx, inflight);
        }
        Conn::Unix(s) => spawn_served(BatchIo::new(s), "unix".to_string(), ctx, inflight),
    }
}

fn spawn_served<S: Socket + 'static>(io: BatchIo<S>, peer: String, ctx: Rc<Ctx>, inflight: InFlight) {
    let header_timeout = ctx.cfg.header_timeout;
    let requests = inflight.requests.clone();
    let target = ctx.cfg.splice_downloads.then(|| io.splice_target());
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        let peer = peer.clone();
        let guard = requests.begin();
        let target = target.clone();
        async move {
            let _guard = guard;
            let mut resp = handle(ctx, req, &peer).await;
            if let Some(t) = target {
                t.adopt(resp.body_mut());
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Body chunks are queued, never copied: spliced placeholders
        // (crate::body) rely on reaching the writer as they are.
        .writev(true)
        .header_read_timeout(Duration::from_secs(header_timeout.max(1)))
        .max_header_size(MAX_HEAD)
        .keep_alive(true);
    let live = InFlightGuard::new(&inflight.conns);
    let stopping = inflight.stopping.subscribe();
    tokio_uring::spawn(async move {
        let _live = live;
        if let Err(e) = run_conn(builder.serve_connection(io, svc), stopping).await {
            tracing::debug!("connection ended: {e}");
        }
    });
}

/// The metrics listener (`DLREPO_METRICS_ADDRESS`): `/metrics` and
/// `/health` without authentication, 404 for anything else. It is bound
/// to a loopback address only (checked with the settings).
pub async fn serve_metrics(listener: TcpListener, ctx: Rc<Ctx>) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let ctx = ctx.clone();
        let header_timeout = ctx.cfg.header_timeout.max(1);
        let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let ctx = ctx.clone();
            async move { Ok::<_, Infallible>(super::ops::metrics_listener(&ctx, &req).await) }
        });
        tokio_uring::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(header_timeout))
                .serve_connection(BatchIo::new(s), svc);
            if let Err(e) = conn.await {
                tracing::debug!("metrics connection ended: {e}");
            }
        });
    }
}

/// Serves a connection; once the server stops, lets it finish the answer in
/// progress (hyper closes an idle one at once) instead of cutting it.
async fn run_conn<I, S>(
    conn: http1::Connection<I, S>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => return res,
        _ = stopping.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}
