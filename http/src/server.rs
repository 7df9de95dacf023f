//! The HTTP/1.1 connections. Each must send its request head within a deadline (and its body
//! within another, routes.rs), idle keep-alive connections are closed, and no more connections are
//! open at once than the process has file descriptors for: slow, stalled or half-open clients can
//! neither pile up nor lock out the others. On SIGTERM the server stops accepting, gives the
//! requests in flight a few seconds, and then closes what is left.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a client has to send a request head, from its connection or its previous request.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the requests in flight may still take after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept for everything but client connections (the database pool, the listener,
/// logs).
const RESERVED_DESCRIPTORS: usize = 64;
/// The most connections when the file descriptor limit cannot be read.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How many client connections may be open at once: what the file descriptor limit leaves.
pub fn max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return DEFAULT_MAX_CONNECTIONS;
    }
    usize::try_from(limit.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(1)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection that went before it was taken.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // At the limit, a new connection is closed at once rather than left in the queue: its
        // client sees it and may try again, once stalled ones have timed out.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            continue;
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away is no error of the server's.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_TIMEOUT) => {
            tracing::warn!(
                "requests still open {} s after SIGTERM are closed",
                SHUTDOWN_TIMEOUT.as_secs()
            );
        }
    }
}
