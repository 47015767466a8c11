//! Pre-flight: before any AWS call, run the freshly built image locally the way ECS will (its
//! port, user, memory, a read-only root filesystem) and check it answers the target group's
//! health path in time, passes the task's container health check, and was built for the platform
//! the task definition asks for. A bad image stops here, not 10 minutes into a rollout.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::image::Image;
use crate::project::{Environment, StackKind};
use crate::ui::Ui;

/// What the task definition and the target group will ask of the image.
#[derive(Debug)]
pub struct Expectations {
    pub container_port: u16,
    /// The target group's `HealthCheckPath`.
    pub health_path: String,
    /// The container's `User` in the task definition (else the image's `USER`).
    pub user: Option<String>,
    /// The container definition's `Environment` entries with literal values (the pre-flight
    /// cannot resolve `!Ref`s, `!Sub`s or `Secrets`); `PORT` is set from `container_port`.
    pub environment: Vec<(String, String)>,
    /// The task's memory in MiB: the container may not use more.
    pub memory_mib: Option<u64>,
    /// The task definition's container health check, when it has one.
    pub container_health: Option<ContainerHealth>,
    /// `X86_64` / `ARM64`, when the environment pins one; otherwise the image's own is used.
    pub cpu_architecture: Option<String>,
    /// How long one health request may take (the target group's `HealthCheckTimeoutSeconds`).
    pub health_timeout: Duration,
    /// How long the app may take to start answering.
    pub startup_timeout: Duration,
}

impl Expectations {
    /// What the task definition and the target group will ask of the image: read from
    /// infra/ecs.yaml and the environment's parameters, so the checks follow the template.
    pub fn of(env: &Environment) -> Result<Expectations> {
        let file = env.template_path(StackKind::Ecs).display().to_string();
        let doc = crate::parameters::parse(&env.template(StackKind::Ecs)?)
            .with_context(|| format!("{file} is not a valid CloudFormation template"))?;
        let given = env.parameters(StackKind::Ecs, &[]);
        let values =
            crate::parameters::known_values(&crate::parameters::declarations(&doc), &given);
        let container_port = doc["Mappings"]["App"]["Container"]["Port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| {
                format!("{file} has no port number under Mappings.App.Container.Port")
            })?;
        let resource = |ty: &str| {
            doc["Resources"]
                .as_mapping()
                .into_iter()
                .flat_map(|resources| resources.values())
                .find(|r| r["Type"].as_str() == Some(ty))
        };
        let target_group = resource("AWS::ElasticLoadBalancingV2::TargetGroup");
        let container = resource("AWS::ECS::TaskDefinition")
            .map(|td| &td["Properties"]["ContainerDefinitions"][0]);
        // AWS's default for an HTTP target group of type ip.
        let health_timeout = target_group
            .and_then(|tg| tg["Properties"]["HealthCheckTimeoutSeconds"].as_u64())
            .unwrap_or(5);
        Ok(Expectations {
            container_port,
            // AWS's default is `/`.
            health_path: values
                .get("HealthCheckPath")
                .cloned()
                .unwrap_or_else(|| "/".to_owned()),
            user: container.and_then(|c| c["User"].as_str().map(str::to_owned)),
            environment: container
                .and_then(|c| c["Environment"].as_sequence())
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let value = crate::parameters::scalar(&e["Value"])?;
                    Some((e["Name"].as_str()?.to_owned(), value))
                })
                .collect(),
            container_health: match values.get("ContainerHealthCheck") {
                Some(off) if off == "false" => None,
                _ => container.and_then(|c| container_health(&c["HealthCheck"])),
            },
            memory_mib: values.get("Memory").and_then(|m| m.parse().ok()),
            // Only when the file pins one: otherwise deploy passes the image's own.
            cpu_architecture: given.get("CpuArchitecture").cloned(),
            health_timeout: Duration::from_secs(health_timeout),
            startup_timeout: Duration::from_secs(15),
        })
    }
}

/// A container definition's `HealthCheck` (through an `!If`, its first branch: the template
/// guards it with a condition).
fn container_health(check: &serde_yaml::Value) -> Option<ContainerHealth> {
    let check = match crate::parameters::function(check) {
        Some((f, branches)) if f == "If" => &branches[1],
        _ => check,
    };
    let command: Vec<String> = check["Command"]
        .as_sequence()?
        .iter()
        .map(|part| part.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    // ECS's default timeout.
    let timeout = check["Timeout"].as_u64().unwrap_or(5);
    Some(ContainerHealth {
        command,
        timeout: Duration::from_secs(timeout),
    })
}

/// A container health check as the task definition states it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerHealth {
    /// `["CMD", program, args...]` or `["CMD-SHELL", script]`.
    pub command: Vec<String>,
    pub timeout: Duration,
}

impl ContainerHealth {
    /// What runs inside the container: CMD-SHELL needs the image's `/bin/sh`.
    fn argv(&self) -> Vec<String> {
        match self.command.split_first() {
            Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" => {
                ["/bin/sh".to_owned(), "-c".to_owned(), rest.join(" ")].to_vec()
            }
            _ => self.command.clone(),
        }
    }
}

/// A pre-flight that passed, remembered as a file in `dir` (`target/xtask/preflight/`): the
/// image's tag is a hash of its content, so the same tag with the same expectations passes again.
pub struct Passed {
    marker: std::path::PathBuf,
}

impl Passed {
    pub fn new(dir: &std::path::Path, image: &Image, expect: &Expectations) -> Passed {
        use sha2::{Digest, Sha256};
        let key = Sha256::digest(format!("{}\n{expect:?}", image.local_ref));
        Passed {
            marker: dir.join(crate::image::hex(&key[..12])),
        }
    }

    pub fn before(&self) -> bool {
        self.marker.is_file()
    }

    /// Best effort: without the marker the next deploy just runs the pre-flight again.
    pub fn remember(&self) {
        if let Some(dir) = self.marker.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&self.marker, "");
    }
}

/// Runs the checks; returns the time from container start to the first 200 on the health route.
pub async fn check(
    docker: &Docker,
    ui: &Ui,
    image: &Image,
    expect: &Expectations,
) -> Result<Duration> {
    platform_matches(image, expect.cpu_architecture.as_deref())?;
    let spinner = ui.spinner("pre-flight");
    spinner.set(format!("running {} locally", image.local_ref));
    let name = format!("xtask-preflight-{}", std::process::id());
    let memory = expect.memory_mib.map(|mib| (mib * 1024 * 1024) as i64);
    let body = ContainerCreateBody {
        image: Some(image.local_ref.clone()),
        env: Some(
            expect
                .environment
                .iter()
                .filter(|(name, _)| name != "PORT")
                .map(|(name, value)| format!("{name}={value}"))
                .chain([format!("PORT={}", expect.container_port)])
                .collect(),
        ),
        exposed_ports: Some(vec![format!("{}/tcp", expect.container_port)]),
        user: expect.user.clone(),
        host_config: Some(HostConfig {
            publish_all_ports: Some(true),
            readonly_rootfs: Some(true),
            memory,
            // Fargate has no swap: memory plus swap is the memory.
            memory_swap: memory,
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .with_context(|| {
            format!(
                "pre-flight: cannot create a container from {}",
                image.local_ref
            )
        })?;
    let result = async {
        let took = run_checks(docker, &name, expect).await?;
        if let Some(health) = &expect.container_health {
            run_container_health(docker, &name, health).await?;
        }
        anyhow::Ok(took)
    }
    .await;
    let outcome = match result {
        Ok(took) => {
            spinner.done(format!(
                "{} answered 200 {} after start{}",
                expect.health_path,
                crate::ui::format_duration(took),
                match &expect.container_health {
                    Some(health) => format!("; `{}` exited 0", health.argv().join(" ")),
                    None => String::new(),
                }
            ));
            Ok(took)
        }
        Err(e) => {
            spinner.failed("failed");
            let logs = last_logs(docker, &name, 20).await;
            if logs.is_empty() {
                ui.line("the container wrote no log lines");
            } else {
                ui.line("the container's last log lines:");
                for line in logs.lines() {
                    ui.line(format!("  {line}"));
                }
            }
            Err(e.context(format!(
                "pre-flight of {} failed, so nothing was deployed (the container's last log lines are above)",
                image.local_ref
            )))
        }
    };
    let _ = docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    outcome
}

async fn run_checks(docker: &Docker, name: &str, expect: &Expectations) -> Result<Duration> {
    docker
        .start_container(name, None)
        .await
        .context("cannot start the container")?;
    let started = Instant::now();
    let key = format!("{}/tcp", expect.container_port);
    let inspect = docker
        .inspect_container(name, None)
        .await
        .context("cannot inspect the container")?;
    let host_port = inspect
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|p| p.get(&key).cloned().flatten())
        .and_then(|b| b.into_iter().find_map(|b| b.host_port))
        .and_then(|p| p.parse::<u16>().ok())
        .with_context(|| {
            format!(
                "the image does not expose port {key}: add `EXPOSE {}` to app/Dockerfile",
                expect.container_port
            )
        })?;
    let addr = std::net::SocketAddr::from((crate::docker::published_ip()?, host_port));
    let mut last = String::from("no answer yet");
    while started.elapsed() < expect.startup_timeout {
        let state = docker
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|i| i.state);
        if state.as_ref().is_some_and(|s| s.running == Some(false)) {
            let code = state.and_then(|s| s.exit_code).unwrap_or(-1);
            bail!(
                "the container exited with code {code} right after starting: the app must keep \
                 running and serve on PORT ({}); its log lines above say why it stopped",
                expect.container_port
            );
        }
        let asked = Instant::now();
        let path = expect.health_path.as_str();
        match crate::fakecloud::http_get_at(addr, path) {
            Ok((200, _)) if asked.elapsed() <= expect.health_timeout => {
                return Ok(started.elapsed())
            }
            Ok((200, _)) => {
                last = format!(
                    "{path} took {:?}, over the target group's {:?} timeout: make it answer \
                     without waiting on anything slow",
                    asked.elapsed(),
                    expect.health_timeout
                )
            }
            Ok((status, _)) => {
                last = format!(
                    "{path} answered {status}, the target group wants 200: serve {path}, or set \
                     HealthCheckPath under stacks.ecs to a path the app answers"
                )
            }
            Err(e) => {
                last = format!(
                    "nothing answers on container port {} ({e}): the app must listen on \
                     0.0.0.0 at the port in PORT",
                    expect.container_port
                )
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "the app did not pass its health check within {:?}: {last}",
        expect.startup_timeout
    )
}

/// The task's container health check, run in the container as ECS runs it: a failing one makes
/// ECS replace every task, however well the app answers the load balancer.
async fn run_container_health(docker: &Docker, name: &str, health: &ContainerHealth) -> Result<()> {
    use bollard::exec::{StartExecOptions, StartExecResults};
    let argv = health.argv();
    let shown = argv.join(" ");
    let exec = docker
        .create_exec(
            name,
            bollard::models::ExecConfig {
                cmd: Some(argv.clone()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("cannot run the container health check `{shown}`"))?;
    let run = async {
        let started = docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await?;
        let output = match started {
            StartExecResults::Attached { output, .. } => text_of(output).await,
            StartExecResults::Detached => String::new(),
        };
        let code = docker.inspect_exec(&exec.id).await?.exit_code;
        anyhow::Ok((code, output))
    };
    let (code, output) = tokio::time::timeout(health.timeout, run)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the container health check `{shown}` took over its {:?} timeout: ECS would mark \
                 every task unhealthy and replace it",
                health.timeout
            )
        })?
        .with_context(|| format!("cannot run the container health check `{shown}`"))?;
    let output = output.split_whitespace().collect::<Vec<_>>().join(" ");
    match code {
        Some(0) => Ok(()),
        _ if argv.first().map(String::as_str) == Some("/bin/sh") => bail!(
            "the container health check is CMD-SHELL, which needs /bin/sh, and the image has none \
             ({output}): make it [\"CMD\", \"/app\", \"--health-check\"] in infra/ecs.yaml"
        ),
        code => bail!(
            "the container health check `{shown}` exited with {} ({output}): ECS would mark every \
             task unhealthy and replace it; make the binary answer it, or set \
             ContainerHealthCheck: \"false\" under stacks.ecs",
            code.map_or("no code".to_owned(), |c| format!("code {c}"))
        ),
    }
}

/// The image must be a Linux image for the architecture the task definition declares.
pub fn platform_matches(image: &Image, wanted: Option<&str>) -> Result<()> {
    match wanted {
        Some(want) if want != image.cpu_architecture => bail!(
            "the image is built for {} but the environment's CpuArchitecture is {want}: build on a matching \
             host or change CpuArchitecture under stacks.ecs in the environment file",
            image.cpu_architecture
        ),
        _ => Ok(()),
    }
}

async fn last_logs(docker: &Docker, name: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    text_of(docker.logs(name, Some(options)))
        .await
        .trim_end()
        .to_owned()
}

/// A container's output (its logs, an exec's), read to its end as text.
async fn text_of(
    stream: impl futures_util::Stream<
        Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
    >,
) -> String {
    let mut stream = std::pin::pin!(stream);
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pre_flight_expects_what_the_template_and_the_file_say() {
        let infra = std::env::temp_dir().join(format!("xtask-expect-{}", std::process::id()));
        std::fs::create_dir_all(&infra).unwrap();
        std::fs::write(
            infra.join("ecs.yaml"),
            "Parameters:\n  HealthCheckPath: { Type: String, Default: /ready }\n\
             Mappings:\n  App:\n    Container: { Port: 9000 }\n\
             Resources:\n  Tg:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n\
             \x20   Properties: { HealthCheckTimeoutSeconds: 4 }\n\
             \x20 Task:\n    Type: AWS::ECS::TaskDefinition\n\
             \x20   Properties: { ContainerDefinitions: [{ Name: app, User: \"1000:1000\",\
             \x20     Environment: [{ Name: RUST_LOG, Value: info }, { Name: WORKERS, Value: 4 },\
             \x20       { Name: PORT, Value: !Sub \"${Port}\" }],\
             \x20     HealthCheck: !If [On, { Command: [CMD, /srv, --ok] }, !Ref AWS::NoValue] }] }\n",
        )
        .unwrap();
        let env = |file: &str| Environment::parse("dev", file, infra.clone()).unwrap();
        let expect = Expectations::of(&env("project: demo\n")).unwrap();
        assert_eq!(
            (
                expect.container_port,
                expect.health_path.as_str(),
                expect.health_timeout,
                expect.cpu_architecture
            ),
            (9000, "/ready", Duration::from_secs(4), None)
        );
        assert_eq!(expect.user.as_deref(), Some("1000:1000"));
        assert_eq!(
            expect.environment,
            [("RUST_LOG", "info"), ("WORKERS", "4")].map(|(k, v)| (k.to_owned(), v.to_owned())),
            "literal values only"
        );
        assert_eq!(
            expect.container_health,
            Some(ContainerHealth {
                command: ["CMD", "/srv", "--ok"].map(str::to_owned).to_vec(),
                timeout: Duration::from_secs(5)
            })
        );
        assert_eq!(
            expect.memory_mib, None,
            "no Memory parameter in this template"
        );
        let pinned = env("project: demo\nstacks:\n  ecs:\n    HealthCheckPath: /healthz\n    CpuArchitecture: ARM64\n");
        let expect = Expectations::of(&pinned).unwrap();
        assert_eq!(expect.health_path, "/healthz");
        assert_eq!(expect.cpu_architecture.as_deref(), Some("ARM64"));
        let real = Environment::parse(
            "dev",
            "project: demo\n",
            crate::project::root().join("infra"),
        );
        let real = Expectations::of(&real.unwrap()).unwrap();
        assert_eq!(
            real.memory_mib,
            Some(512),
            "infra/ecs.yaml's Memory default"
        );
        let health = real
            .container_health
            .expect("infra/ecs.yaml's container health check");
        assert!(
            health.command.contains(&"--health-check".to_owned()),
            "{health:?}"
        );
        let off = "project: demo\nstacks:\n  ecs:\n    ContainerHealthCheck: \"false\"\n";
        let off = Environment::parse("dev", off, crate::project::root().join("infra")).unwrap();
        assert_eq!(Expectations::of(&off).unwrap().container_health, None);
        std::fs::write(infra.join("ecs.yaml"), "Resources: {}\n").unwrap();
        let err = Expectations::of(&env("project: demo\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no port number under Mappings.App.Container.Port"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&infra);
    }

    fn image(arch: &str) -> Image {
        Image {
            local_ref: "x:1".into(),
            tag: "1".into(),
            cpu_architecture: arch.into(),
            size_bytes: 1,
            binary: "app".into(),
            built: true,
        }
    }

    #[test]
    fn platform_mismatch_is_refused_with_the_fix() {
        assert!(platform_matches(&image("X86_64"), None).is_ok());
        assert!(platform_matches(&image("X86_64"), Some("X86_64")).is_ok());
        let err = platform_matches(&image("X86_64"), Some("ARM64"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("built for X86_64") && err.contains("CpuArchitecture is ARM64"),
            "{err}"
        );
    }

    #[test]
    fn a_passed_pre_flight_is_remembered_per_image_and_expectations() {
        let dir = std::env::temp_dir().join(format!("xtask-preflight-test-{}", std::process::id()));
        let expect = |arch: Option<&str>| Expectations {
            container_port: 8080,
            health_path: "/health".into(),
            user: None,
            environment: Vec::new(),
            memory_mib: None,
            container_health: None,
            cpu_architecture: arch.map(str::to_owned),
            health_timeout: Duration::from_secs(2),
            startup_timeout: Duration::from_secs(15),
        };
        let passed = Passed::new(&dir, &image("X86_64"), &expect(None));
        assert!(!passed.before());
        passed.remember();
        assert!(Passed::new(&dir, &image("X86_64"), &expect(None)).before());
        assert!(
            !Passed::new(&dir, &image("X86_64"), &expect(Some("ARM64"))).before(),
            "other expectations must run the checks again"
        );
        let other = Image {
            local_ref: "x:2".into(),
            ..image("X86_64")
        };
        assert!(!Passed::new(&dir, &other, &expect(None)).before());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
