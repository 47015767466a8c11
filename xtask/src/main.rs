//! `cargo xtask`: build, push and deploy the app to ECS on Fargate.
//!
//! Commands are thin (`deploy.rs`, `push_image.rs`); the logic lives in the modules below.

mod aws;
mod cloudfront;
mod deploy;
mod docker;
mod events;
mod fakecloud;
mod flags;
mod image;
#[cfg(test)]
mod mock;
mod preflight;
mod project;
mod push_image;
mod registry;
mod service;
mod session;
mod stack;
mod ui;

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
    let result = runtime.block_on(async {
        match flags.cmd {
            flags::Cmd::Deploy(cmd) => deploy::run(&root, cmd).await,
            flags::Cmd::PushImage(cmd) => push_image::run(&root, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ui::fail(&e),
    }
}
