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

/// The server's end of each accepted connection has Nagle's algorithm off (`TCP_NODELAY`).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn accepted_connections_send_without_delay() {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let srv = start(app::router(), Duration::from_secs(5)).await;
    let mut client = TcpStream::connect(srv.addr).await.unwrap();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf[9..12], b"200");
    let ours = client.local_addr().unwrap();
    // Find the server's socket for this connection among the process's descriptors.
    let mut server_end = None;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if fd == client.as_raw_fd() {
            continue;
        }
        // SAFETY: the descriptor is only duplicated (a failed dup of a just-closed one is an error).
        let Ok(dup) = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() else {
            continue;
        };
        let socket = std::net::TcpStream::from(dup);
        if socket.local_addr().ok() == Some(srv.addr) && socket.peer_addr().ok() == Some(ours) {
            server_end = Some(socket.nodelay().unwrap());
        }
    }
    assert_eq!(server_end, Some(true), "TCP_NODELAY on the accepted socket");
}
