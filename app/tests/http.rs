//! The service in-process: routes, request logs, and the drain on shutdown.

use std::time::Duration;

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Send one `GET` over a fresh connection and return (status, body).
async fn get_path(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await?;
    let status = raw.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

struct Running {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<bool>>,
}

async fn start(router: axum::Router, drain: Duration) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let done = tokio::spawn(app::serve(listener, router, shutdown, drain));
    Running { addr, stop, done }
}

#[tokio::test]
async fn health_answers_200_ok() {
    let srv = start(app::router(), Duration::from_secs(5)).await;
    let (status, body) = get_path(srv.addr, "/health").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "ok\n");
}

#[tokio::test]
async fn index_names_service_version_and_revision() {
    let srv = start(app::router(), Duration::from_secs(5)).await;
    let (status, body) = get_path(srv.addr, "/").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(app::SERVICE), "{body}");
    assert!(body.contains(app::VERSION), "{body}");
    assert!(body.contains(app::REVISION), "{body}");
}

#[tokio::test]
async fn unknown_route_is_404() {
    let srv = start(app::router(), Duration::from_secs(5)).await;
    let (status, _) = get_path(srv.addr, "/nope").await.unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let router = app::router().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            "done"
        }),
    );
    let srv = start(router, Duration::from_secs(5)).await;
    let in_flight = tokio::spawn(get_path(srv.addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(150)).await; // the request is now being handled
    srv.stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert!(
        TcpStream::connect(srv.addr).await.is_err(),
        "a new connection was accepted after shutdown began"
    );
    let (status, body) = in_flight.await.unwrap().unwrap();
    assert_eq!((status, body.as_str()), (200, "done"));
    let drained = tokio::time::timeout(Duration::from_secs(3), srv.done).await;
    assert!(
        drained.expect("server did not stop").unwrap().unwrap(),
        "drain reported a timeout"
    );
}

#[tokio::test]
async fn drain_gives_up_after_its_timeout() {
    let router = app::router().route(
        "/stuck",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "never"
        }),
    );
    let srv = start(router, Duration::from_millis(300)).await;
    let _stuck = tokio::spawn(get_path(srv.addr, "/stuck"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    srv.stop.send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(3), srv.done).await;
    assert!(!finished
        .expect("drain timeout was not honoured")
        .unwrap()
        .unwrap());
}
