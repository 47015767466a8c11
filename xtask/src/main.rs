//! `cargo xtask`: build, push and deploy the app to ECS on Fargate.
//!
//! Commands are thin (`deploy.rs`, `push_image.rs`); the logic lives in the modules below.

mod aws;
mod bench;
mod cloudfront;
mod deploy;
mod destroy;
mod diff;
mod docker;
mod events;
mod fakecloud;
mod fixes;
mod flags;
mod image;
mod interrupt;
mod logs;
#[cfg(test)]
mod mock;
mod parameters;
mod preflight;
mod project;
mod push_image;
mod registry;
mod service;
mod session;
mod stack;
mod status;
mod ui;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return ui::fail(&anyhow::anyhow!(e).context("cannot start the async runtime")),
    };
    let root = project::root();
    // The command that shows what an interrupted run leaves running.
    let watch = format!(
        "cargo xtask status{}",
        flags
            .cmd
            .target()
            .map(|t| t.flag_suffix())
            .unwrap_or_default()
    );
    let result = runtime.block_on(async {
        let work = async {
            match flags.cmd {
                flags::Cmd::Deploy(cmd) => {
                    deploy::run(&root, cmd).await.map(|()| ExitCode::SUCCESS)
                }
                flags::Cmd::PushImage(cmd) => push_image::run(&root, cmd)
                    .await
                    .map(|()| ExitCode::SUCCESS),
                flags::Cmd::Status(cmd) => {
                    status::run(&root, cmd).await.map(|()| ExitCode::SUCCESS)
                }
                flags::Cmd::Bench(cmd) => bench::run(&root, cmd).await.map(|()| ExitCode::SUCCESS),
                flags::Cmd::Logs(cmd) => logs::run(&root, cmd).await.map(|()| ExitCode::SUCCESS),
                flags::Cmd::Destroy(cmd) => {
                    destroy::run(&root, cmd).await.map(|()| ExitCode::SUCCESS)
                }
                // diff: 0 no changes, 1 changes, 2 error.
                flags::Cmd::Diff(cmd) => match diff::run(&root, cmd).await {
                    Ok(changes) => Ok(ExitCode::from(u8::from(changes))),
                    Err(e) => {
                        ui::fail(&e);
                        Ok(ExitCode::from(2))
                    }
                },
            }
        };
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                // No signal handler: Ctrl-C then kills the process the default way.
                std::future::pending::<()>().await;
            }
        };
        interrupt::run(work, ctrl_c)
            .await
            .unwrap_or_else(|stopped| {
                eprintln!("\n{}", interrupt::message(&stopped, &watch));
                Ok(ExitCode::from(130))
            })
    });
    match result {
        Ok(code) => code,
        Err(e) => ui::fail(&e),
    }
}
