//! The command line. Everything a user can type is declared here; `main.rs` only dispatches.

use clap::{Args, Parser, Subcommand};

/// Ship the app in this workspace to AWS ECS on Fargate.
///
/// Credentials, region and endpoint come from the standard AWS chain (AWS_PROFILE, AWS_REGION,
/// AWS_ENDPOINT_URL, ~/.aws/config, SSO, ...). `--local` targets fakecloud on 127.0.0.1:4566 instead.
/// XTASK_POLL_SECONDS sets how often progress is polled (default 3, or 0.5 with --local).
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about,
    propagate_version = true
)]
pub struct Xtask {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Deploy the vpc and ecr stacks, push the image, deploy the ecs stack, wait for the service.
    Deploy(Deploy),
    /// Build the image (if needed) and push it to the environment's ECR repository.
    PushImage(PushImage),
    /// Show what `deploy` would change in each stack. Exit code: 0 no changes, 1 changes, 2 error.
    Diff(Diff),
    /// Show the stacks, the service's tasks and rollout, the running image and the URL.
    Status(Status),
    /// Print the service's logs (CloudWatch), oldest first.
    Logs(Logs),
    /// Measure image size, rebuild, startup, no-op deploy and throughput against their baselines.
    Bench(Bench),
    /// Delete the environment's stacks (ecs, then ecr and vpc). Keeps ECR images and logs unless told.
    Destroy(Destroy),
}

#[derive(Debug, Args, Clone)]
pub struct Target {
    /// Environment: parameters come from infra/env/<ENV>.yaml.
    #[arg(long, short, default_value = "dev", env = "XTASK_ENV")]
    pub env: String,
    /// Use fakecloud on http://127.0.0.1:4566 with dummy credentials (started, or installed, if needed).
    #[arg(long)]
    pub local: bool,
}

impl Target {
    /// `--env X --local` as the user would type it, for messages that suggest a command.
    pub fn flag_suffix(&self) -> String {
        flag_suffix(&self.env, self.local)
    }
}

pub fn flag_suffix(env: &str, local: bool) -> String {
    let mut s = String::new();
    if env != "dev" {
        s.push_str(&format!(" --env {env}"));
    }
    if local {
        s.push_str(" --local");
    }
    s
}

impl Cmd {
    /// The environment the command works on (`bench` has none).
    pub fn target(&self) -> Option<&Target> {
        match self {
            Cmd::Deploy(c) => Some(&c.target),
            Cmd::PushImage(c) => Some(&c.target),
            Cmd::Diff(c) => Some(&c.target),
            Cmd::Status(c) => Some(&c.target),
            Cmd::Logs(c) => Some(&c.target),
            Cmd::Destroy(c) => Some(&c.target),
            Cmd::Bench(_) => None,
        }
    }
}

/// Whether to run the image locally before it is pushed.
#[derive(Debug, Args, Clone, Copy)]
pub struct Preflight {
    /// Do not run the image locally first (for an app that cannot start outside its AWS
    /// environment, say one that needs a secret or a database to start); the architecture is
    /// still checked.
    #[arg(long)]
    pub no_preflight: bool,
}

#[derive(Debug, Args)]
pub struct Deploy {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub preflight: Preflight,
    /// Execute change sets without asking.
    #[arg(long, short)]
    pub yes: bool,
    /// Refuse, instead of waiting, when another operation is already running on a stack.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct PushImage {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub preflight: Preflight,
}

#[derive(Debug, Args)]
pub struct Diff {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct Status {
    #[command(flatten)]
    pub target: Target,
    /// Print one JSON document (the format is described in README.md) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Logs {
    #[command(flatten)]
    pub target: Target,
    /// How far back to start: 30s, 10m, 2h, 1d.
    #[arg(long, default_value = "10m")]
    pub since: String,
    /// Keep printing new lines as they arrive, like `tail -f` (Ctrl-C stops).
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Measured runs per row (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Include the no-op `deploy --local` row, measured last (its warm-up run deploys the dev
    /// environment into fakecloud when it is not there yet).
    #[arg(long)]
    pub deploy: bool,
}

#[derive(Debug, Args)]
pub struct Destroy {
    #[command(flatten)]
    pub target: Target,
    /// Delete without asking.
    #[arg(long, short)]
    pub yes: bool,
    /// Also delete the ECR repository and every image in it (kept by default).
    #[arg(long)]
    pub delete_images: bool,
    /// Also delete the environment's CloudWatch log groups (kept by default).
    #[arg(long)]
    pub delete_logs: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn deploy_defaults_to_dev_and_real_aws() {
        let Xtask {
            cmd: Cmd::Deploy(d),
        } = Xtask::parse_from(["xtask", "deploy"])
        else {
            panic!("not deploy")
        };
        assert_eq!(d.target.env, "dev");
        assert!(!d.target.local && !d.yes);
    }

    #[test]
    fn suggested_commands_repeat_only_the_flags_that_matter() {
        let Xtask { cmd } = Xtask::parse_from(["xtask", "status", "--env", "prod", "--local"]);
        assert_eq!(cmd.target().unwrap().flag_suffix(), " --env prod --local");
        let Xtask { cmd } = Xtask::parse_from(["xtask", "logs"]);
        assert_eq!(cmd.target().unwrap().flag_suffix(), "");
    }
}
