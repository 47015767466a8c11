//! Helpers shared by the end-to-end tests: prerequisites, running `cargo xtask`, fakecloud clients.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudformation::config::Credentials;

/// Where fakecloud listens.
pub const FAKECLOUD: &str = "127.0.0.1:4566";

pub fn root() -> PathBuf {
    tests::root()
}

/// Docker and fakecloud, or a reason they are missing.
pub fn missing_prerequisite() -> Option<String> {
    let docker = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output();
    if !docker.as_ref().is_ok_and(|o| o.status.success()) {
        return Some("no running Docker engine (`docker version` failed)".into());
    }
    let running = http_get(FAKECLOUD, "/_fakecloud/health").is_ok_and(|(s, _)| s == 200);
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let installed =
        home.join("bin").join("fakecloud").is_file() || std::env::var_os("FAKECLOUD_BIN").is_some();
    if !running && !installed {
        return Some("fakecloud is neither running nor installed (`cargo install fakecloud --version 0.51.0 --locked`)".into());
    }
    None
}

/// True when the test may run; panics in CI when it cannot.
pub fn prerequisites() -> bool {
    match missing_prerequisite() {
        None => {
            LoweredQuota::reset_all();
            true
        }
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("end-to-end test cannot run in CI: {why}")
        }
        Some(why) => {
            // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED end-to-end test: {why}. `.ci/run` installs and starts what it needs. ***\n"
            );
            false
        }
    }
}

pub fn xtask(args: &[&str]) -> (Output, String) {
    xtask_with(args, &[])
}

/// `cargo xtask` with extra environment variables (an empty value removes the variable).
pub fn xtask_with(args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    xtask_in(&root(), args, env)
}

/// `cargo xtask` in the workspace at `dir` (a copy of this one, say).
pub fn xtask_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let out = cargo_xtask(dir, args, env)
        .output()
        .expect("cannot run cargo xtask");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    show(args, "", &text);
    (out, text)
}

/// The `cargo xtask` command in the workspace at `dir`, with plain progress lines and `env` (an
/// empty value removes the variable).
fn cargo_xtask(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg("xtask").args(args).current_dir(dir).env("CI", "1"); // plain progress lines
    for (key, value) in env {
        if value.is_empty() {
            cmd.env_remove(key);
        } else {
            cmd.env(key, value);
        }
    }
    cmd
}

/// Echo a run's output into the test's log (`how`: how it ran, e.g. " (interrupted)").
fn show(args: &[&str], how: &str, text: &str) {
    eprintln!("---- cargo xtask {}{how} ----\n{text}", args.join(" "));
}

/// `cargo xtask` sent SIGINT as a terminal's Ctrl-C sends it (to its whole process group, so
/// to the programs it runs too) as soon as a line of its output contains `trigger`; returns its
/// exit code (`None`: the trigger never came) and its output.
pub fn xtask_interrupted(
    args: &[&str],
    env: &[(&str, &str)],
    trigger: &str,
) -> (Option<i32>, String) {
    xtask_interrupted_in(&root(), args, env, trigger)
}

/// `xtask_interrupted` in the workspace at `dir`.
pub fn xtask_interrupted_in(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    trigger: &str,
) -> (Option<i32>, String) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut child = cargo_xtask(dir, args, env)
        .process_group(0) // as a terminal's foreground job: one group, the test outside it
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run cargo xtask");
    // `cargo run` replaces itself with the program (exec): the group is xtask and its children.
    let group = format!("-{}", child.id());
    let stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::BufReader::new(stdout).read_to_string(&mut text);
        text
    });
    let mut text = String::new();
    let mut sent = false;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        if !sent && line.contains(trigger) {
            let kill = Command::new("kill").args(["-INT", "--", &group]).status();
            assert!(
                kill.is_ok_and(|s| s.success()),
                "cannot send SIGINT to process group {group}"
            );
            sent = true;
        }
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.wait().expect("cargo xtask did not end");
    text.push_str(&stdout.join().unwrap());
    show(args, " (interrupted)", &text);
    (sent.then(|| status.code()).flatten(), text)
}

/// `cargo xtask` on a terminal (a pty from `script`), typing `keys` once it asks a `[y/N]`
/// question (`\x03` is Ctrl-C); returns its exit code and what the terminal showed.
pub fn xtask_in_terminal(args: &[&str], env: &[(&str, &str)], keys: &str) -> (Option<i32>, String) {
    let quoted: Vec<String> = std::iter::once(env!("CARGO"))
        .chain(std::iter::once("xtask"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect();
    let mut child = Command::new("timeout")
        .args(["300", "script", "-qec", &quoted.join(" "), "/dev/null"])
        .current_dir(root())
        .env_remove("CI")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run `script` (util-linux) for a terminal");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    let mut typed = false;
    while let Ok(1) = stdout.read(&mut byte) {
        seen.push(byte[0]);
        if !typed && seen.ends_with(b"[y/N] ") {
            stdin.write_all(keys.as_bytes()).unwrap();
            stdin.flush().unwrap();
            typed = true;
        }
    }
    drop(stdin);
    let status = child.wait().expect("script did not end");
    let text = String::from_utf8_lossy(&seen).into_owned();
    show(args, " (on a terminal)", &text);
    (typed.then(|| status.code()).flatten(), text)
}

/// An environment file `infra/env/<name>.yaml` for one test, removed again when dropped.
pub struct EnvFile(PathBuf);

impl EnvFile {
    pub fn write(name: &str, text: &str) -> EnvFile {
        let path = root().join("infra/env").join(format!("{name}.yaml"));
        std::fs::write(&path, format!("# written by an end-to-end test\n{text}")).unwrap();
        EnvFile(path)
    }
}

impl Drop for EnvFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Assert that none of the stacks `names` exists (`when` says at which point of the test).
pub fn assert_stacks_gone(
    rt: &tokio::runtime::Runtime,
    aws: &Aws,
    names: impl IntoIterator<Item = String>,
    when: &str,
) {
    for name in names {
        assert!(
            rt.block_on(stack_gone(aws, &name)),
            "{when}: stack {name} still exists"
        );
    }
}

/// True when stack `name` does not exist (or is deleted).
pub async fn stack_gone(aws: &Aws, name: &str) -> bool {
    match aws.cfn.describe_stacks().stack_name(name).send().await {
        Err(_) => true,
        Ok(o) => o
            .stacks()
            .iter()
            .all(|s| s.stack_status().map(|s| s.as_str()) == Some("DELETE_COMPLETE")),
    }
}

pub fn value_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

/// The one-line error a command ended with (panics when there is none).
pub fn error_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line in:\n{text}"))
}

pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    http(addr, "GET", path, "")
}

/// One HTTP/1.1 request: the status and the body of the answer.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((
        status,
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    ))
}

pub struct Aws {
    pub cfn: aws_sdk_cloudformation::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

pub async fn fakecloud() -> Aws {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(format!("http://{FAKECLOUD}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "e2e"))
        .load()
        .await;
    Aws {
        cfn: aws_sdk_cloudformation::Client::new(&config),
        ecr: aws_sdk_ecr::Client::new(&config),
        ecs: aws_sdk_ecs::Client::new(&config),
        logs: aws_sdk_cloudwatchlogs::Client::new(&config),
    }
}

/// The environment's ECS service (its cluster and service are both named `<project>-<env>`).
pub async fn service(aws: &Aws, prefix: &str) -> aws_sdk_ecs::types::Service {
    let out = aws
        .ecs
        .describe_services()
        .cluster(prefix)
        .services(prefix)
        .send()
        .await
        .expect("describe the service");
    out.services()
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no service {prefix}"))
}

/// (status, last change) of each stack.
pub async fn stack_states(aws: &Aws, prefix: &str) -> Vec<(String, String, String)> {
    let mut states = Vec::new();
    for stack in tests::STACKS {
        let name = format!("{prefix}-{stack}");
        let out = aws
            .cfn
            .describe_stacks()
            .stack_name(&name)
            .send()
            .await
            .expect("stack exists");
        let s = &out.stacks()[0];
        let changed = s
            .last_updated_time()
            .or(s.creation_time())
            .map(|t| t.to_string())
            .unwrap_or_default();
        states.push((name, s.stack_status().unwrap().as_str().to_owned(), changed));
    }
    states
}

/// A fakecloud Service Quotas value set and enforced for as long as this lives (reset on drop,
/// also when the test fails), as an account whose quota is lower than AWS's default.
pub struct LoweredQuota(&'static str, &'static str);

fn quota_path(service: &str, quota: &str) -> String {
    format!("/_fakecloud/service-quotas/quotas/{service}/{quota}")
}

/// The quotas tests lower, as (service, quota code).
const LOWERED: [(&str, &str); 2] = [("vpc", "L-0EA8095F"), ("iam", "L-0DA4ABF3")];

impl LoweredQuota {
    pub fn set(service: &'static str, quota: &'static str, value: u32) -> LoweredQuota {
        assert!(
            LOWERED.contains(&(service, quota)),
            "add {service} {quota} to LOWERED"
        );
        let body = format!("{{\"value\": {value}, \"enforce\": true}}");
        let (status, answer) = http(FAKECLOUD, "PUT", &quota_path(service, quota), &body).unwrap();
        assert_eq!(
            status, 200,
            "fakecloud did not lower {service} {quota}: {answer}"
        );
        LoweredQuota(service, quota)
    }

    /// Back to AWS's default, not enforced.
    fn reset(service: &str, quota: &str) {
        let _ = http(FAKECLOUD, "DELETE", &quota_path(service, quota), "");
    }

    /// Undo what a test killed before its drop (Ctrl-C on `cargo test`) left in a running
    /// fakecloud, which would otherwise refuse the next deploy.
    pub fn reset_all() {
        for (service, quota) in LOWERED {
            LoweredQuota::reset(service, quota);
        }
    }
}

impl Drop for LoweredQuota {
    fn drop(&mut self) {
        LoweredQuota::reset(self.0, self.1);
    }
}
