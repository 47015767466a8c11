//! `cargo xtask push-image`: build the image if needed, check it runs, and push it to the
//! environment's repository.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::Docker;

use crate::flags;
use crate::image::{self, Image};
use crate::preflight::{self, ContainerHealth, Expectations};
use crate::project::{Environment, StackKind};
use crate::registry::{self, Pushed};
use crate::session::Session;
use crate::ui::Ui;

pub async fn run(root: &Path, cmd: flags::PushImage) -> Result<()> {
    let docker = crate::docker::connect().await?;
    let ui = Ui::new();
    let env = Environment::load(root, &cmd.target.env)?;
    let image = prepare(root, &docker, &ui, &env, cmd.preflight).await?;
    let session = Session::with_env(root, env, &cmd.target, ui).await?;
    let pushed = push(&session, &docker, &image).await?;
    println!("image: {}", pushed.pinned_uri());
    println!(
        "pushed: {} bytes{}",
        pushed.bytes_pushed,
        if pushed.already_there {
            " (ECR already had this tag)"
        } else {
            ""
        }
    );
    Ok(())
}

/// Build the image (if needed) and run the pre-flight checks, unless this very image passed them
/// before: everything that needs no AWS.
pub async fn prepare(
    root: &Path,
    docker: &Docker,
    ui: &Ui,
    env: &Environment,
    flags: flags::Preflight,
) -> Result<Image> {
    let expect = expectations(env)?;
    let image = image::ensure(root, docker, ui, &env.prefix()).await?;
    if flags.no_preflight {
        preflight::platform_matches(&image, expect.cpu_architecture.as_deref())?;
        ui.spinner("pre-flight").done(
            "skipped (--no-preflight): the load balancer's health checks and the circuit \
             breaker are the only guards",
        );
        return Ok(image);
    }
    let passed = preflight::Passed::new(
        &crate::workspace::get(root)?
            .target_dir
            .join("xtask/preflight"),
        &image,
        &expect,
    );
    if passed.before() {
        ui.spinner("pre-flight").done(format!(
            "passed before for {} (same content, same checks)",
            image.tag
        ));
    } else {
        preflight::check(docker, ui, &image, &expect).await?;
        passed.remember();
    }
    Ok(image)
}

/// What the task definition and the target group will ask of the image, for the pre-flight:
/// read from infra/ecs.yaml and the environment's parameters, so the checks follow the template.
pub fn expectations(env: &Environment) -> Result<Expectations> {
    let file = env.template_path(StackKind::Ecs).display().to_string();
    let doc = crate::parameters::parse(&env.template(StackKind::Ecs)?)
        .with_context(|| format!("{file} is not a valid CloudFormation template"))?;
    let container_port = doc["Mappings"]["App"]["Container"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("{file} has no port number under Mappings.App.Container.Port"))?;
    let resource = |ty: &str| {
        doc["Resources"]
            .as_mapping()
            .into_iter()
            .flat_map(|resources| resources.values())
            .find(|r| r["Type"].as_str() == Some(ty))
    };
    let target_group = resource("AWS::ElasticLoadBalancingV2::TargetGroup");
    let container =
        resource("AWS::ECS::TaskDefinition").map(|td| &td["Properties"]["ContainerDefinitions"][0]);
    // AWS's default for an HTTP target group of type ip.
    let health_timeout = target_group
        .and_then(|tg| tg["Properties"]["HealthCheckTimeoutSeconds"].as_u64())
        .unwrap_or(5);
    Ok(Expectations {
        container_port,
        health_path: env.health_check_path()?,
        user: container.and_then(|c| c["User"].as_str().map(str::to_owned)),
        environment: container
            .and_then(|c| c["Environment"].as_sequence())
            .into_iter()
            .flatten()
            .filter(|e| !e["Value"].is_sequence())
            .filter_map(|e| {
                let value = crate::project::scalar(&e["Value"]).ok()?;
                Some((e["Name"].as_str()?.to_owned(), value))
            })
            .collect(),
        container_health: match env.parameter(StackKind::Ecs, "ContainerHealthCheck")? {
            Some(off) if off == "false" => None,
            _ => container.and_then(|c| container_health(&c["HealthCheck"])),
        },
        memory_mib: env
            .parameter(StackKind::Ecs, "Memory")?
            .and_then(|m| m.parse().ok()),
        // Only when the file pins one: otherwise deploy passes the image's own.
        cpu_architecture: env
            .parameters(StackKind::Ecs, &[])
            .get("CpuArchitecture")
            .cloned(),
        health_timeout: Duration::from_secs(health_timeout),
        startup_timeout: Duration::from_secs(15),
    })
}

/// A container definition's `HealthCheck` (through an `!If`, its first branch: the template
/// guards it with a condition).
fn container_health(check: &serde_yaml::Value) -> Option<ContainerHealth> {
    use serde_yaml::Value;
    let check = match check {
        Value::Tagged(t) if t.tag == "If" => &t.value[1],
        Value::Mapping(m) if m.contains_key("Fn::If") => &m["Fn::If"][1],
        other => other,
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

/// Push the image unless ECR already has its tag.
pub async fn push(session: &Session, docker: &Docker, image: &Image) -> Result<Pushed> {
    let repository = session.repository_name().await?;
    registry::push(
        &session.clients.ecr,
        docker,
        &session.ui,
        image,
        &repository,
    )
    .await
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
        let expect = expectations(&env("project: demo\n")).unwrap();
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
        let expect = expectations(&pinned).unwrap();
        assert_eq!(expect.health_path, "/healthz");
        assert_eq!(expect.cpu_architecture.as_deref(), Some("ARM64"));
        let real = Environment::parse(
            "dev",
            "project: demo\n",
            crate::project::root().join("infra"),
        );
        let real = expectations(&real.unwrap()).unwrap();
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
        assert_eq!(expectations(&off).unwrap().container_health, None);
        std::fs::write(infra.join("ecs.yaml"), "Resources: {}\n").unwrap();
        let err = expectations(&env("project: demo\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no port number under Mappings.App.Container.Port"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&infra);
    }
}
