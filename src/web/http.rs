//! Serving a router over HTTP/1.1 with the limits a server open to a network needs: a client
//! must send a request's headers within [`HEADER_TIMEOUT`] (a slow-loris connection is
//! closed), and body limits and timeouts are enforced by [`guard`](super::guard).
//! `axum::serve` sets no timer on hyper, so its header timeout never fires; this loop is
//! `axum::serve` with one.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, warn};

/// How long a client may take to send a request's headers (also after an idle keep-alive).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, router: Router) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, most often: wait for some to be closed.
                warn!(error = %err, "api: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                router.clone().oneshot(request.map(Body::new))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(err) = connection.await {
                debug!(%peer, error = %err, "api: connection ended");
            }
        });
    }
}
