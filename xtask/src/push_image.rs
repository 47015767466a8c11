//! `cargo xtask push-image`: build the image if needed, check it runs, and push it to the
//! environment's repository.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use bollard::Docker;

use crate::flags;
use crate::image::{self, Image};
use crate::preflight::{self, Expectations};
use crate::project::{Environment, StackKind};
use crate::registry::{self, Pushed};
use crate::session::Session;
use crate::ui::Ui;

pub async fn run(root: &Path, cmd: flags::PushImage) -> Result<()> {
    let docker = crate::docker::connect().await?;
    let ui = Ui::new();
    let env = Environment::load(root, &cmd.target.env)?;
    let image = prepare(root, &docker, &ui, &env).await?;
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

/// The port the app listens on in its container: `App.Container.Port` in infra/ecs.yaml and
/// `EXPOSE` in app/Dockerfile (a test in tests/ keeps all three equal).
pub const CONTAINER_PORT: u16 = 8080;

/// Build the image (if needed) and run the pre-flight checks, unless this very image passed them
/// before: everything that needs no AWS.
pub async fn prepare(root: &Path, docker: &Docker, ui: &Ui, env: &Environment) -> Result<Image> {
    let image = image::ensure(root, docker, ui, &env.prefix()).await?;
    let expect = expectations(env);
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

/// What the task definition will ask of the image, for the pre-flight.
pub fn expectations(env: &Environment) -> Expectations {
    Expectations {
        container_port: CONTAINER_PORT,
        cpu_architecture: env
            .parameters(StackKind::Ecs, &[])
            .get("CpuArchitecture")
            .cloned(),
        // The ecs template's HealthCheckTimeoutSeconds.
        health_timeout: Duration::from_secs(2),
        startup_timeout: Duration::from_secs(15),
    }
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
