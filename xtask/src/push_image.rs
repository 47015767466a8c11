//! `cargo xtask push-image`: build the image if needed, check it runs, and push it to the
//! environment's repository.

use std::path::Path;

use anyhow::Result;
use bollard::Docker;

use crate::flags;
use crate::image::{self, Image};
use crate::preflight::{self, Expectations};
use crate::project::Environment;
use crate::registry::{self, Pushed};
use crate::session::Session;
use crate::ui::Ui;

pub async fn run(root: &Path, cmd: flags::PushImage) -> Result<()> {
    let docker = crate::docker::connect().await?;
    let ui = Ui::new();
    let env = Environment::load(root, &cmd.target.env)?;
    let expect = Expectations::of(&env)?;
    let image = prepare(root, &docker, &ui, &env, &expect, cmd.preflight).await?;
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
    expect: &Expectations,
    flags: flags::Preflight,
) -> Result<Image> {
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
        expect,
    );
    if passed.before() {
        ui.spinner("pre-flight").done(format!(
            "passed before for {} (same content, same checks)",
            image.tag
        ));
    } else {
        preflight::check(docker, ui, &image, expect).await?;
        passed.remember();
    }
    Ok(image)
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
