//! `cargo xtask destroy`: delete the ecs stack, then ecr and vpc. The ECR repository and the log
//! groups outlive their stacks (`DeletionPolicy: Retain`): they are deleted, with their images and
//! logs, only with `--delete-images` and `--delete-logs`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::aws::aws_error;
use crate::project::StackKind;
use crate::session::Session;
use crate::stack;
use crate::ui::Ui;
use crate::{flags, logs};

pub async fn run(root: &Path, cmd: flags::Destroy) -> Result<()> {
    let s = Session::open(root, &cmd.target, Ui::new()).await?;
    let names: Vec<String> = StackKind::ALL
        .iter()
        .map(|k| s.env.stack_name(*k))
        .collect();
    if !cmd.yes {
        let what = format!(
            "Delete stacks {} of environment {:?}{}{}?",
            names.join(", "),
            s.env.name,
            if cmd.delete_images {
                " AND the ECR repository with all its images"
            } else {
                ""
            },
            if cmd.delete_logs {
                " AND all its CloudWatch logs"
            } else {
                ""
            }
        );
        match s.ui.confirm(&what).await {
            Some(true) => {}
            Some(false) => bail!("destroy cancelled: nothing was deleted"),
            None => bail!("destroy deletes the environment's stacks and there is no terminal to confirm on: pass --yes"),
        }
    }
    // The stack's output, or the name the ecr template gives it (the stack may be gone already).
    let repository = s
        .outputs(StackKind::Ecr)
        .await?
        .remove("RepositoryName")
        .unwrap_or_else(|| s.env.prefix());

    if s.local {
        stop_local_tasks(&s).await?;
    }
    delete(&s, StackKind::Ecs).await?;
    tokio::try_join!(delete(&s, StackKind::Ecr), delete(&s, StackKind::Vpc))?;

    let images = crate::registry::count_images(&s.clients.ecr, &repository).await?;
    match (cmd.delete_images, images) {
        (_, None) => println!("ECR repository {repository} is already gone"),
        (true, Some(n)) => {
            s.clients
                .ecr
                .delete_repository()
                .repository_name(&repository)
                .force(true)
                .send()
                .await
                .map_err(aws_error)
                .with_context(|| format!("cannot delete ECR repository {repository}"))?;
            println!("deleted ECR repository {repository} and its {n} image(s)");
        }
        (false, Some(n)) => println!(
            "kept ECR repository {repository} with its {n} image(s): `cargo xtask destroy{} --delete-images` deletes it",
            s.flag_suffix()
        ),
    }

    let prefix = logs::environment_groups_prefix(&s.env.prefix());
    let mut groups = logs::groups_under(&s.clients.logs, &prefix).await?;
    if s.local {
        groups.extend(crate::fakecloud::task_output_groups(&s.clients.logs, &prefix).await?);
    }
    match (cmd.delete_logs, groups.len()) {
        (_, 0) => {}
        (true, n) => {
            logs::delete_groups(&s.clients.logs, &groups).await?;
            println!("deleted {n} CloudWatch log group(s) under {prefix}");
        }
        (false, n) => println!(
            "kept {n} CloudWatch log group(s) under {prefix} (events expire after the retention set when \
             they were written): `cargo xtask destroy{} --delete-logs` deletes them",
            s.flag_suffix()
        ),
    }
    Ok(())
}

/// fakecloud deletes a service but leaves its task containers running: stop them first.
async fn stop_local_tasks(s: &Session) -> Result<()> {
    let Some(svc) = s.deployed_service().await? else {
        return Ok(());
    };
    let service = &svc.name;
    let spinner = s.ui.spinner("local tasks");
    spinner.set(format!("stopping the tasks of {service}"));
    let stopped = crate::fakecloud::stop_service_tasks(&s.clients.ecs, &svc.cluster, service).await;
    spinner
        .finish(
            stopped,
            |_| format!("stopped the tasks of {service}"),
            "failed",
        )
        .map(drop)
}

async fn delete(s: &Session, kind: StackKind) -> Result<()> {
    let name = s.env.stack_name(kind);
    let spinner = s.ui.spinner(format!("delete {name}"));
    let deleted = stack::destroy(
        &s.clients.cfn,
        &name,
        kind.name(),
        s.poll.max(Duration::from_millis(200)),
        &spinner,
    )
    .await;
    spinner
        .finish(
            deleted,
            |&d| if d { "deleted" } else { "not deployed" }.into(),
            "failed",
        )
        .map(drop)
}
