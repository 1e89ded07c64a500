//! The `dlrepo` server binary.

use std::rc::Rc;
use std::time::{Duration, Instant};

use dlrepo::auth::Auth;
use dlrepo::cleanup::{RunKind, Scheduler, Trigger};
use dlrepo::config::Config;
use dlrepo::http::server::{self, InFlight, Listener};
use dlrepo::http::Ctx;
use dlrepo::logging;
use dlrepo::publish::Publisher;
use dlrepo::store::Store;

// Many short-lived buffers of very different sizes (request heads, frames,
// JSON): mimalloc's per-size free lists beat glibc's consolidating arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long in-flight requests may run after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

fn main() {
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dlrepo: {e}");
            std::process::exit(2);
        }
    };
    logging::init(&cfg);
    let listen_fd = systemd_listen_fd();
    // COOP_TASKRUN (Linux 5.19+): completions are processed when the thread
    // next enters the kernel instead of interrupting it with an IPI for each
    // one. Measured: a third more small uploads per second. Older kernels
    // get a plain ring.
    let mut ring = tokio_uring::uring_builder();
    if tokio_uring::uring_builder().setup_coop_taskrun().build(8).is_ok() {
        ring.setup_coop_taskrun();
    }
    let code = tokio_uring::builder()
        .entries(1024)
        .uring_builder(&ring)
        .start(run(cfg, listen_fd));
    std::process::exit(code);
}

/// The socket passed by systemd, if `LISTEN_FDS=1` and `LISTEN_PID` is us.
/// The variables are removed so child processes do not inherit them.
fn systemd_listen_fd() -> Option<i32> {
    let fds = std::env::var("LISTEN_FDS").ok();
    let pid = std::env::var("LISTEN_PID").ok();
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDNAMES");
    if fds.as_deref() == Some("1") && pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id()) {
        Some(3)
    } else {
        None
    }
}

async fn run(cfg: Config, listen_fd: Option<i32>) -> i32 {
    let cfg = Rc::new(cfg);
    // Startup order of docs/spec/config.md §4: ACLs and auth file, then the banners.
    let auth = Auth::new(cfg.clone());
    auth.banners();
    if let Err(e) = std::fs::create_dir_all(&cfg.root_dir) {
        eprintln!("dlrepo: DLREPO_ROOT_DIR: cannot create {}: {e}", cfg.root_dir.display());
        return 1;
    }
    let listener = match listen_fd {
        Some(fd) => Listener::from_fd(fd),
        None => Listener::bind(&cfg.listen_address, cfg.listen_port, cfg.listen_backlog).await,
    };
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "dlrepo: cannot listen on {}:{}: {e}",
                cfg.listen_address, cfg.listen_port
            );
            return 1;
        }
    };
    let store = Store::new(cfg.clone());
    // Before any request: what an unclean stop left (temporaries, the
    // journal) is cleaned up and replayed first.
    if let Err(e) = store.recover().await {
        eprintln!(
            "dlrepo: cannot recover the state left under {}: {e}",
            cfg.root_dir.display()
        );
        return 1;
    }
    store.spawn_checkpoints();
    store.spawn_session_expiry();
    let publisher = Publisher::new(store.clone(), cfg.clone());
    let cleanup = Scheduler::new(store.clone(), publisher.clone());
    let inflight = InFlight::new(store.activity.clone());
    let ctx = Rc::new(Ctx {
        auth: auth.clone(),
        store,
        cfg: cfg.clone(),
        cleanup: cleanup.clone(),
        publisher: publisher.clone(),
        pages: dlrepo::http::pages::Pages::new(cfg.templates_dir.clone()),
        cli_script: dlrepo::http::load_cli(cfg.cli_path.as_deref(), cfg.public_url.as_deref()),
        started: Instant::now(),
        metrics: Default::default(),
        connections: inflight.connections(),
    });
    // Handlers first: once "Running on" is logged, a signal must not kill us.
    spawn_signal_handlers(cleanup.clone(), auth, ctx.clone());
    tracing::info!("======== Running on {} ========", listener.describe());
    tracing::info!(
        target: logging::NOTICE,
        "listening on {}, root {}",
        listener.describe(),
        cfg.root_dir.display()
    );
    if cfg.tag_cleanup_period > 0 {
        let period = Duration::from_secs(cfg.tag_cleanup_period);
        let c = cleanup.clone();
        tokio_uring::spawn(async move {
            // Measured fire to fire; the first run is one period after startup.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                c.schedule(RunKind::Full, Trigger::Timer);
            }
        });
    }
    cleanup.schedule(RunKind::Full, Trigger::Startup);
    // Runs a stop or a crash interrupted go on.
    publisher.resume().await;

    if let Some(addr) = cfg.metrics_address {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(target: logging::NOTICE, "metrics on http://{addr}/metrics");
                tokio_uring::spawn(server::serve_metrics(l, ctx.clone()));
            }
            Err(e) => {
                eprintln!("dlrepo: DLREPO_METRICS_ADDRESS: cannot listen on {addr}: {e}");
                return 1;
            }
        }
    }
    let store = ctx.store.clone();
    // A task of its own: this top-level future is polled again whenever any
    // task wakes, so it should wait on nothing costlier than a join handle.
    let serving = tokio_uring::spawn(server::serve(listener, ctx, inflight.clone(), shutdown_signal()));
    if let Err(e) = serving.await {
        tracing::error!("the accept loop ended abnormally: {e}");
    }
    inflight.stop();
    tokio::task::yield_now().await;
    tracing::info!(
        "shutting down: waiting for {} requests and connections",
        inflight.count()
    );
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while inflight.count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Leave every `.digests` file complete and no journal behind; bounded,
    // as a post-process command may hold a format. The journal covers the rest.
    if !tokio::time::timeout(SHUTDOWN_GRACE, store.checkpoint())
        .await
        .unwrap_or(false)
    {
        tracing::warn!("shutting down before every .digests was written; the journal keeps the rest");
    }
    tracing::info!(target: logging::NOTICE, "stopped");
    0
}

fn spawn_signal_handlers(cleanup: Rc<Scheduler>, auth: Rc<Auth>, ctx: Rc<Ctx>) {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            tokio_uring::spawn(async move {
                while usr1.recv().await.is_some() {
                    cleanup.schedule(RunKind::Full, Trigger::Signal);
                }
            });
        }
        Err(e) => tracing::error!("cannot install the SIGUSR1 handler: {e}"),
    }
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio_uring::spawn(async move {
                while hup.recv().await.is_some() {
                    auth.reload();
                    ctx.pages.reload();
                    let store = &ctx.store;
                    // Also the way to make the server see changes made to
                    // the tree behind its back (a hand-made `.locked`...),
                    // and to have every `.digests` file written now.
                    store.checkpoint().await;
                    store.forget_everything();
                    tracing::info!("SIGHUP: reloaded the ACL files and the auth file, wrote the .digests files, dropped the tree caches");
                }
            });
        }
        Err(e) => tracing::error!("cannot install the SIGHUP handler: {e}"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
