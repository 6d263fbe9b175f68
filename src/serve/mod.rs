//! `skinengine serve`: an HTTP server classifying uploaded images with a trained model file.
//!
//! - [`config`]: the model, device and limits; [`worker`]: the one thread that owns the
//!   backend and batches queued images into forward passes (dynamic batching);
//!   [`request`]: body and image checks; [`routes`]: the handlers; [`reply`]: JSON;
//!   [`metrics`]: Prometheus text; [`page`]: the embedded web page.
//! - Connections are served by hyper under our own accept loop ([`serve_connection`]), with a
//!   header-read timeout, so that a stalled client costs a timer, and with graceful shutdown:
//!   on SIGTERM / ctrl-c (or [`Running::shutdown`]) the listener closes, requests in flight
//!   are answered, idle connections are closed, then the worker stops.

pub mod config;
pub mod metrics;
pub mod page;
pub mod reply;
pub mod request;
pub mod routes;
pub mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use config::{Gate, Limits, ServeConfig};
use metrics::Metrics;
use routes::{AppState, Readiness, router};

use crate::error::{Error, Result};

/// Serves one connection (a TCP stream, or any byte stream: the fuzz harness uses an
/// in-memory pipe) with `app`, HTTP/1 with keep-alive; headers must arrive within `timeout`.
pub async fn serve_connection<I>(io: I, app: axum::Router, timeout: Duration) -> hyper::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    connection(io, app, timeout).await
}

fn builder(timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    // Half-closed clients (write side shut after the request) still get their answer.
    b.timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .half_close(true);
    b
}

fn connection<I>(
    io: I,
    app: axum::Router,
    timeout: Duration,
) -> hyper::server::conn::http1::Connection<TokioIo<I>, TowerToHyperService<axum::Router>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    builder(timeout).serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
}

/// The app state and routes for `cfg`, with the worker started (loading the model in the
/// background; `/healthz` says when it is ready). Returns the router, the state and the
/// worker's thread, which ends once the router and state are dropped.
pub fn app(
    cfg: &ServeConfig,
    decode_inline: bool,
) -> Result<(axum::Router, Arc<AppState>, std::thread::JoinHandle<()>)> {
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(OnceLock::new());
    let r = readiness.clone();
    let (queue, join) = worker::spawn(cfg, metrics.clone(), move |outcome| {
        let _ = r.set(match outcome {
            Ok(info) => Readiness::Ready(info),
            Err(e) => Readiness::Failed(e),
        });
    })
    .map_err(|e| crate::error::invalid("serve", format!("cannot start the worker: {e}")))?;
    let state = Arc::new(AppState {
        limits: cfg.limits,
        metrics,
        queue,
        readiness,
        decode_inline,
        decoders: tokio::sync::Semaphore::new(cfg.limits.decoders.max(1)),
    });
    Ok((router(state.clone()), state, join))
}

/// A server started by [`start`].
pub struct Running {
    addr: SocketAddr,
    readiness: Arc<OnceLock<Readiness>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Running {
    /// Where it listens (the port chosen when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the model is loaded (Ok) or failed to load (its error), at most `limit`.
    pub fn wait_ready(&self, limit: Duration) -> Result<()> {
        let t0 = std::time::Instant::now();
        loop {
            match self.readiness.get() {
                Some(Readiness::Ready(_)) => return Ok(()),
                Some(Readiness::Failed(e)) => {
                    return Err(crate::error::invalid("serve", e.clone()));
                }
                _ if t0.elapsed() > limit => {
                    return Err(crate::error::invalid(
                        "serve",
                        "the model did not load in time",
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Stops accepting, answers the requests in flight, then stops the worker; returns once
    /// everything has ended.
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.join()
    }

    /// Blocks until the server stops (on a signal, with `handle_signals`).
    pub fn join(mut self) -> Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(crate::error::invalid("serve", "the server thread panicked")),
            None => Ok(()),
        }
    }
}

/// Binds `cfg.addr`, starts the worker (the model loads in the background) and serves on a
/// thread of its own until [`Running::shutdown`] (or a signal, with `cfg.handle_signals`).
pub fn start(cfg: &ServeConfig) -> Result<Running> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.min(4))
        .max_blocking_threads(cfg.limits.decoders.max(1) + 2)
        .enable_all()
        .thread_name("serve-io")
        .build()
        .map_err(|e| crate::error::invalid("serve", format!("cannot start the runtime: {e}")))?;
    let listener = rt.block_on(TcpListener::bind(cfg.addr)).map_err(|e| {
        crate::error::invalid("serve", format!("cannot listen on {}: {e}", cfg.addr))
    })?;
    let addr = listener.local_addr().map_err(|e| Error::Invalid {
        op: "serve",
        detail: e.to_string(),
    })?;
    let (app, state, worker) = {
        let _guard = rt.enter();
        app(cfg, false)?
    };
    // Only the router holds the queue from here on: once it is dropped, the worker stops.
    let readiness = state.readiness.clone();
    drop(state);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (timeout, signals) = (cfg.limits.timeout, cfg.handle_signals);
    let thread = std::thread::Builder::new()
        .name("serve".into())
        .spawn(move || {
            rt.block_on(accept_loop(listener, app, timeout, stop_rx, signals));
            // Every connection has ended and dropped its router; the last queue sender goes
            // with the runtime's tasks, then the worker drains and stops.
            drop(rt);
            let _ = worker.join();
            Ok(())
        })
        .map_err(|e| crate::error::invalid("serve", format!("cannot start the server: {e}")))?;
    Ok(Running {
        addr,
        readiness,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

async fn stop_signal(stop: oneshot::Receiver<()>, signals: bool) {
    if !signals {
        let _ = stop.await;
        return;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = stop => {}
            _ = term.recv() => eprintln!("serve: SIGTERM, finishing requests in flight"),
            _ = tokio::signal::ctrl_c() => eprintln!("serve: interrupted, finishing requests in flight"),
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = stop => {}
        _ = tokio::signal::ctrl_c() => eprintln!("serve: interrupted, finishing requests in flight"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    timeout: Duration,
    stop: oneshot::Receiver<()>,
    signals: bool,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stop = stop_signal(stop, signals);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = graceful.watch(connection(stream, app.clone(), timeout));
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = &mut stop => break,
        }
    }
    drop(listener);
    drop(app);
    // In-flight requests get their full timeout (plus a margin) to finish.
    let _ = tokio::time::timeout(timeout + Duration::from_secs(5), graceful.shutdown()).await;
}
