//! The web service that ships in the container.
//!
//! Routes: `GET /` (a small page naming the service, its version and git revision) and
//! `GET /health` (200 for the load balancer's target group and the container health check).
//! Every request is logged as one JSON line on stdout, with the load balancer's trace id. [`serve`] stops accepting on the shutdown
//! signal and lets in-flight requests finish (ECS sends SIGTERM, then SIGKILL after `stopTimeout`).

pub mod log;

use std::future::{Future, IntoFuture};
use std::time::{Duration, Instant};

use axum::{
    extract::Request,
    http::header,
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::get,
    serve::ListenerExt,
    Router,
};
use tokio::net::TcpListener;

/// Name, version and revision baked in at build time (`APP_GIT_REVISION` is set by `cargo xtask`).
pub const SERVICE: &str = env!("CARGO_PKG_NAME");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = match option_env!("APP_GIT_REVISION") {
    Some(rev) => rev,
    None => "unknown",
};

/// How long in-flight requests get after SIGTERM before the process gives up on them.
/// ECS kills the container 30 s after SIGTERM by default; we stay well inside that.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The service's routes, with request logging.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .layer(middleware::from_fn(log_request))
}

async fn index() -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{SERVICE}</title></head>\
         <body><h1>{SERVICE}</h1><p>version {VERSION}, revision <code>{REVISION}</code></p></body></html>\n"
    ))
}

async fn health() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], "ok\n")
}

/// Logs every request except successful health probes: the load balancer sends one every 5 s
/// per task, which would drown the log (and the CloudWatch bill) in `GET /health 200`.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // A probe's path is known: no copy of it on the hottest route.
    let probe = req.uri().path() == "/health";
    let path = if probe {
        std::borrow::Cow::Borrowed("/health")
    } else {
        std::borrow::Cow::Owned(req.uri().path().to_owned())
    };
    let trace_id = req
        .headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(req).await;
    if !(probe && response.status().is_success()) {
        log::request(
            method.as_str(),
            &path,
            response.status().as_u16(),
            started.elapsed(),
            trace_id.as_deref(),
        );
    }
    response
}

/// Serve `router` on `listener` until `shutdown` resolves, then stop accepting and drain.
///
/// Returns `Ok(true)` when every in-flight request finished within `drain_timeout`,
/// `Ok(false)` when the drain was cut short.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> std::io::Result<bool> {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = started_tx.send(());
    };
    // Answers leave at once instead of waiting on Nagle's algorithm for the peer's ACK (nginx's
    // `tcp_nodelay on` default): the load balancer reuses its connections to the task.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(signal);
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        res = &mut server => return res.map(|()| true),
        _ = started_rx => {}
    }
    log::event(
        "info",
        "shutdown requested: no new connections, draining in-flight requests",
    );
    match tokio::time::timeout(drain_timeout, server).await {
        Ok(res) => res.map(|()| true),
        Err(_) => Ok(false),
    }
}

/// Resolves on SIGTERM (how ECS stops a task) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// `app --health-check`: ask the running server for `/health` (a `FROM scratch` image has no curl).
pub fn health_check(port: u16, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("cannot send request: {e}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("no response: {e}"))?;
    match &head[9..12] {
        b"200" => Ok(()),
        status => Err(format!(
            "/health answered {}",
            String::from_utf8_lossy(status)
        )),
    }
}

/// The port to listen on: `PORT`, default 8080.
pub fn port_from_env() -> Result<u16, String> {
    match std::env::var("PORT") {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("PORT must be a port number, got {v:?}")),
        Err(_) => Ok(8080),
    }
}
