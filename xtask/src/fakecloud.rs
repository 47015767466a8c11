//! The local AWS for `--local`: fakecloud (AGPL, so it runs only as a separate program).
//! Started if it is not running, installed with `cargo install` if it is missing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::ui::Ui;

pub const ENDPOINT: &str = "http://127.0.0.1:4566";
pub const REGION: &str = "us-east-1";
pub const VERSION: &str = "0.51.0";
const ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 4566);

/// Make sure fakecloud answers on 127.0.0.1:4566: start it, installing it first if needed.
pub async fn ensure_running(ui: &Ui, root: &Path) -> Result<()> {
    if healthy() {
        return Ok(());
    }
    let places = Places::from_env();
    let bin = match find_binary(&places) {
        Some(bin) => bin,
        None => install(ui, &places).await?,
    };
    let target = crate::workspace::get(root)?.target_dir;
    std::fs::create_dir_all(&target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let log_path = target.join("fakecloud.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let spinner = ui.spinner("fakecloud");
    spinner.set(format!(
        "starting {} (log: {})",
        bin.display(),
        log_path.display()
    ));
    let mut cmd = Command::new(&bin);
    cmd.args(["--addr", "127.0.0.1:4566"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("cannot share the log file")?)
        .stderr(log);
    // Its own process group: it keeps running after this command (and survives its Ctrl-C).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut exited_at: Option<Instant> = None;
    while !healthy() {
        // Another `cargo xtask` may have started it at the same moment: ours then exits (the port
        // is taken) while theirs comes up. Only an exit with nobody answering is a failure.
        if let Some(status) = child.try_wait()? {
            let since = *exited_at.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(5) {
                spinner.failed("exited");
                bail!(
                    "fakecloud exited at start ({status}): see {}; is port 4566 taken by another program?",
                    log_path.display()
                );
            }
        }
        if Instant::now() > deadline {
            spinner.failed("no answer");
            bail!(
                "fakecloud did not answer on {ENDPOINT} within 60 s: see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    spinner.done(format!("running on {ENDPOINT}"));
    Ok(())
}

/// Where fakecloud is looked for, and the cargo that installs it (from the environment).
struct Places {
    /// `FAKECLOUD_BIN`: this binary, no search.
    explicit: Option<PathBuf>,
    /// `$CARGO_HOME`, else `~/.cargo`: `cargo install` puts binaries in its `bin`.
    cargo_home: Option<PathBuf>,
    path: Option<std::ffi::OsString>,
    /// `CARGO` (set when run through `cargo xtask`), else `cargo` from `PATH`.
    cargo: std::ffi::OsString,
}

impl Places {
    fn from_env() -> Places {
        Places {
            explicit: std::env::var_os("FAKECLOUD_BIN").map(PathBuf::from),
            cargo_home: std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo"))),
            path: std::env::var_os("PATH"),
            cargo: crate::workspace::cargo(),
        }
    }
}

/// `FAKECLOUD_BIN`, then cargo's `bin` directory, then `PATH`.
fn find_binary(places: &Places) -> Option<PathBuf> {
    if let Some(bin) = &places.explicit {
        return Some(bin.clone());
    }
    let in_cargo_home = places
        .cargo_home
        .as_ref()
        .map(|home| home.join("bin").join("fakecloud"));
    in_cargo_home
        .into_iter()
        .chain(
            places
                .path
                .iter()
                .flat_map(std::env::split_paths)
                .map(|dir| dir.join("fakecloud")),
        )
        .find(|p| p.is_file())
}

/// The first `--local` on a new machine: `cargo install` it, with cargo's own progress.
async fn install(ui: &Ui, places: &Places) -> Result<PathBuf> {
    ui.line(format!(
        "fakecloud is not installed: installing it with `cargo install fakecloud --version {VERSION} --locked`. \
         This compiles once and takes a while (about 35 min on 2 cores); cargo shows its progress below."
    ));
    let mut cargo = tokio::process::Command::new(&places.cargo);
    cargo.args(["install", "fakecloud", "--version", VERSION, "--locked"]);
    let status = crate::workspace::run_cargo(cargo).await?;
    if !status.success() {
        bail!("`cargo install fakecloud --version {VERSION} --locked` failed ({status}): see cargo's output above");
    }
    find_binary(places).context(
        "fakecloud was installed but is not in ~/.cargo/bin: add cargo's bin directory to PATH",
    )
}

/// fakecloud answers on 127.0.0.1:4566.
pub fn healthy() -> bool {
    matches!(http_get("/_fakecloud/health"), Ok((200, _)))
}

/// fakecloud records a new deployment when CloudFormation changes the service's task definition
/// but never replaces the running tasks. Locally, stop them and start fresh ones (a few seconds
/// without a task, which only a local run can afford); AWS rolls them itself.
pub async fn replace_service_tasks(
    ecs: &aws_sdk_ecs::Client,
    ui: &Ui,
    cluster: &str,
    service: &str,
) -> Result<()> {
    let spinner = ui.spinner("local rollout");
    spinner.set("stopping the old tasks (fakecloud does not roll a service's tasks itself)");
    let desired = stop_service_tasks(ecs, cluster, service).await?;
    scale(ecs, cluster, service, desired)
        .await
        .context("cannot scale the local service up")?;
    spinner.done(format!("replaced the tasks of {service}"));
    Ok(())
}

/// Scale the service to 0 and wait until its tasks have stopped; returns its desired count before.
/// Needed before deleting a service too: fakecloud deletes it but leaves its containers running.
pub async fn stop_service_tasks(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<i32> {
    let desired = crate::service::describe(ecs, cluster, service)
        .await?
        .desired_count();
    scale(ecs, cluster, service, 0)
        .await
        .context("cannot scale the local service down")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::service::describe(ecs, cluster, service)
        .await?
        .running_count()
        > 0
    {
        if Instant::now() > deadline {
            bail!("fakecloud did not stop the tasks of {service} within 60 s: see fakecloud.log in the target directory");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(desired)
}

async fn scale(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str, count: i32) -> Result<()> {
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(count)
        .send()
        .await
        .map_err(crate::aws::aws_error)?;
    Ok(())
}

/// The log groups fakecloud made for an environment's task output. Its `Ref` of a log group is
/// the group's ARN (AWS's is the name), so the task definition names the ARN as `awslogs-group`
/// and the tasks' output lands in a group named by it, beside the stack's group under `prefix`.
pub async fn task_output_groups(
    logs: &aws_sdk_cloudwatchlogs::Client,
    prefix: &str,
) -> Result<Vec<String>> {
    let marker = format!(":log-group:{prefix}");
    let mut groups = crate::logs::groups_under(logs, "arn:").await?;
    groups.retain(|name| name.contains(&marker));
    Ok(groups)
}

/// fakecloud binds the load balancer on a local port; wait until the app answers `health_path`
/// (the target group's) through it.
pub async fn wait_for_url(ui: &Ui, lb_arn: &str, health_path: &str) -> Result<String> {
    let spinner = ui.spinner("local url");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let last;
        match load_balancer_url(lb_arn).await {
            Ok(url) => {
                let addr = url
                    .trim_start_matches("http://")
                    .parse()
                    .context("bad local address")?;
                match http_get_at(addr, health_path) {
                    Ok((200, _)) => {
                        spinner.done(format!("{url}{health_path} answered 200"));
                        return Ok(url);
                    }
                    Ok((status, _)) => last = format!("{url}{health_path} answered {status}"),
                    Err(e) => last = format!("{url}{health_path}: {e}"),
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
        spinner.set(last.clone());
        if Instant::now() > deadline {
            spinner.failed("no answer");
            bail!(
                "the deployed app did not answer through the local load balancer within 90 s \
                 ({last}): `cargo xtask status --local` and `cargo xtask logs --local` show the tasks"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Where an ALB answers locally: fakecloud binds each active ALB on 127.0.0.1:<port>.
pub async fn load_balancer_url(lb_arn: &str) -> Result<String> {
    let (status, body) = http_get("/_fakecloud/elbv2/load-balancers")?;
    if status != 200 {
        bail!("fakecloud's load balancer list answered HTTP {status}");
    }
    let port = bound_port(&body, lb_arn)?;
    Ok(format!("http://127.0.0.1:{port}"))
}

fn bound_port(body: &str, lb_arn: &str) -> Result<u16> {
    let json: serde_json::Value =
        serde_json::from_str(body).context("fakecloud's load balancer list is not JSON")?;
    let lb = json["loadBalancers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|lb| lb["arn"] == lb_arn)
        .with_context(|| format!("fakecloud does not know the load balancer {lb_arn}"))?;
    lb["boundPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("fakecloud has not bound the load balancer to a local port yet")
}

/// A tiny HTTP/1.1 GET over loopback (fakecloud's own API and the deployed app).
pub fn http_get(path: &str) -> Result<(u16, String)> {
    http_get_at(SocketAddr::from(ADDR), path)
}

pub fn http_get_at(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw);
    let status = raw
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("not an HTTP response")?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn task_output_groups_are_the_arn_named_groups_of_the_environment() {
        use aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsOutput;
        use aws_sdk_cloudwatchlogs::types::LogGroup;
        use aws_sdk_cloudwatchlogs::Client;
        use aws_smithy_mocks::mock;
        let arn = |path: &str| {
            LogGroup::builder()
                .log_group_name(format!(
                    "arn:aws:logs:us-east-1:123456789012:log-group:{path}:*"
                ))
                .build()
        };
        let list = mock!(Client::describe_log_groups)
            .match_requests(|r| r.log_group_name_prefix() == Some("arn:"))
            .then_output(move || {
                DescribeLogGroupsOutput::builder()
                    .log_groups(arn("/ecs/p-dev/1"))
                    .log_groups(arn("/ecs/p-dev2/1"))
                    .log_groups(arn("/ecs/q-dev/1"))
                    .build()
            });
        let logs = crate::mock::mock_sdk!(aws_sdk_cloudwatchlogs, [&list]);
        let groups = task_output_groups(&logs, &crate::logs::environment_groups_prefix("p-dev"))
            .await
            .unwrap();
        assert_eq!(
            groups,
            vec!["arn:aws:logs:us-east-1:123456789012:log-group:/ecs/p-dev/1:*"]
        );
    }

    #[test]
    fn finds_the_bound_port_of_the_right_load_balancer() {
        let body = r#"{"loadBalancers":[{"arn":"a1","boundPort":4001},{"arn":"a2","boundPort":4002},{"arn":"a3"}]}"#;
        assert_eq!(bound_port(body, "a2").unwrap(), 4002);
        assert!(bound_port(body, "a3")
            .unwrap_err()
            .to_string()
            .contains("not bound"));
        assert!(bound_port(body, "zz")
            .unwrap_err()
            .to_string()
            .contains("does not know"));
    }

    /// A scratch directory with a stand-in `cargo` script (`body` is its shell code).
    fn fake_cargo(name: &str, body: &str) -> (PathBuf, Places) {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cargo = dir.join("cargo");
        std::fs::write(&cargo, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        let places = Places {
            explicit: None,
            cargo_home: Some(dir.join("home")),
            path: None,
            cargo: cargo.into(),
        };
        (dir, places)
    }

    #[tokio::test]
    async fn a_missing_fakecloud_is_installed_with_cargo_at_the_pinned_version() {
        let (dir, places) = fake_cargo(
            "install-ok",
            r#"echo "$@" > "$(dirname "$0")/args"
mkdir -p "$(dirname "$0")/home/bin" && touch "$(dirname "$0")/home/bin/fakecloud""#,
        );
        assert_eq!(find_binary(&places), None);
        let bin = install(&Ui::new(), &places).await.unwrap();
        let args = std::fs::read_to_string(dir.join("args")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(args.trim(), "install fakecloud --version 0.51.0 --locked");
        assert_eq!(bin, dir.join("home/bin/fakecloud"));
    }

    #[tokio::test]
    async fn a_failed_install_says_so_and_where_to_look() {
        let (dir, places) = fake_cargo("install-fails", "exit 101");
        let err = install(&Ui::new(), &places).await.unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.contains("`cargo install fakecloud --version 0.51.0 --locked` failed"),
            "{err}"
        );
        assert!(err.contains("see cargo's output above"), "{err}");
    }

    #[test]
    fn fakecloud_is_found_in_cargo_home_before_path() {
        let (dir, mut places) = fake_cargo("find", "exit 0");
        let on_path = dir.join("on-path");
        std::fs::create_dir_all(&on_path).unwrap();
        std::fs::write(on_path.join("fakecloud"), "").unwrap();
        places.path = Some(on_path.clone().into());
        assert_eq!(find_binary(&places), Some(on_path.join("fakecloud")));
        std::fs::create_dir_all(dir.join("home/bin")).unwrap();
        std::fs::write(dir.join("home/bin/fakecloud"), "").unwrap();
        assert_eq!(find_binary(&places), Some(dir.join("home/bin/fakecloud")));
        places.explicit = Some("/opt/fakecloud".into());
        assert_eq!(find_binary(&places), Some(PathBuf::from("/opt/fakecloud")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
