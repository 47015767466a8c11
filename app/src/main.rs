use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let port = match app::port_from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--health-check") => {
            return match app::health_check(port, Duration::from_secs(2)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some("--version") => {
            println!("{} {} ({})", app::SERVICE, app::VERSION, app::REVISION);
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("error: unknown argument {other:?}; usage: app [--health-check | --version] (port from PORT, default 8080)");
            return ExitCode::from(2);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(port))
}

async fn run(port: u16) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(l) => l,
        Err(e) => {
            app::log::event("error", &format!("cannot listen on port {port}: {e}"));
            return ExitCode::FAILURE;
        }
    };
    app::log::event(
        "info",
        &format!(
            "{} {} ({}) listening on port {port}",
            app::SERVICE,
            app::VERSION,
            app::REVISION
        ),
    );
    match app::serve(
        listener,
        app::router(),
        app::shutdown_signal(),
        app::DRAIN_TIMEOUT,
    )
    .await
    {
        Ok(true) => {
            app::log::event("info", "shutdown complete");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            app::log::event("warn", "drain timed out; exiting with requests still open");
            ExitCode::SUCCESS
        }
        Err(e) => {
            app::log::event("error", &format!("server failed: {e}"));
            ExitCode::FAILURE
        }
    }
}
