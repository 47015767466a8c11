//! `cargo xtask push-image`: build the image if needed and push it to the environment's repository.

use std::path::Path;

use anyhow::Result;

use crate::flags;
use crate::image::{self, Image};
use crate::registry::{self, Pushed};
use crate::session::Session;

pub async fn run(root: &Path, cmd: flags::PushImage) -> Result<()> {
    let docker = crate::docker::connect().await?;
    let session = Session::open(root, &cmd.target).await?;
    let (_, pushed) = build_and_push(&session, &docker).await?;
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

/// Build (if needed) and push (if needed): the step `deploy` runs between the ecr and ecs stacks.
pub async fn build_and_push(
    session: &Session,
    docker: &bollard::Docker,
) -> Result<(Image, Pushed)> {
    let repository = session.repository_name().await?;
    let image = image::ensure(&session.root, docker, &session.ui, &session.env.prefix()).await?;
    let pushed = registry::push(
        &session.clients.ecr,
        docker,
        &session.ui,
        &image,
        &repository,
    )
    .await?;
    Ok((image, pushed))
}
