//! The real binary: the port from `PORT`, `--health-check`, JSON logs, and exit 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_app");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn health_check(port: u16) -> bool {
    Command::new(BIN)
        .arg("--health-check")
        .env("PORT", port.to_string())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn spawn(port: u16) -> Child {
    let child = Command::new(BIN)
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !health_check(port) {
        assert!(
            Instant::now() < deadline,
            "the app did not become healthy on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn health_check_flag_fails_when_nothing_listens() {
    assert!(!health_check(free_port()));
}

/// What an ALB adds to every request it forwards.
const TRACE_ID: &str = "Root=1-67891233-abcdef012345678912345678";

#[test]
fn sigterm_exits_zero_quickly_and_every_log_line_is_json() {
    let port = free_port();
    let mut child = spawn(port);
    let pid = child.id().to_string();

    // One logged request (health probes are not logged).
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut conn,
        format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Amzn-Trace-Id: {TRACE_ID}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    std::io::Read::read_to_end(&mut conn, &mut Vec::new()).unwrap();

    let started = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the app ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let lines: Vec<serde_json::Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("a log line is not JSON"))
        .collect();
    let requests: Vec<_> = lines.iter().filter(|l| l["msg"] == "request").collect();
    assert_eq!(requests.len(), 1, "exactly the GET / is logged: {lines:?}");
    assert_eq!(
        (
            requests[0]["path"].as_str(),
            requests[0]["status"].as_u64(),
            requests[0]["trace_id"].as_str()
        ),
        (Some("/"), Some(200), Some(TRACE_ID))
    );
    assert!(lines
        .iter()
        .all(|l| l["ts"].is_string() && l["level"].is_string()));
    assert_eq!(
        lines.last().unwrap()["msg"],
        "shutdown complete",
        "{lines:?}"
    );
}

#[test]
fn bad_port_is_rejected_with_a_message() {
    let out = Command::new(BIN).env("PORT", "http").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT must be a port number"));
}
