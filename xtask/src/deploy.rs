//! `cargo xtask deploy`: vpc + ecr (concurrently) → image → ecs (image pinned by digest) → a
//! stable service, then the URL and the time each phase took.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::flags;
use crate::preflight::Expectations;
use crate::project::{Environment, StackKind};
use crate::registry::{self, human_bytes};
use crate::session::Session;
use crate::stack::{self, ChangeRow, Deployed, Import, Outcome, Replacement, Stack};
use crate::ui::{format_duration, Ui};
use crate::{fakecloud, push_image, service};

pub async fn run(root: &Path, cmd: flags::Deploy) -> Result<()> {
    let started = Instant::now();
    let started_ms = crate::aws::now_ms();
    let docker = crate::docker::connect().await?;
    let ui = Ui::new();
    let mut phases: Vec<(&str, Duration, String)> = Vec::new();

    // Everything that needs no AWS first: a broken image stops here.
    let t = Instant::now();
    let env = Environment::load(root, &cmd.target.env)?;
    let expect = Expectations::of(&env)?;
    let image = push_image::prepare(root, &docker, &ui, &env, &expect, cmd.preflight).await?;
    let image_note = if image.built {
        "built"
    } else {
        "already built"
    };
    phases.push((
        "image + pre-flight",
        t.elapsed(),
        format!("{} ({image_note})", image.local_ref),
    ));

    let s = Session::with_env(root, env, &cmd.target, ui).await?;
    let ask = !cmd.yes && !s.local;
    // Without a terminal there is nobody to ask: the change sets run (the table is printed).
    let ui = &s.ui;
    let approve =
        |stack: &Stack, rows: &[ChangeRow]| -> futures_util::future::BoxFuture<'_, bool> {
            let question = question(stack, rows);
            Box::pin(async move { !ask || ui.confirm(&question).await.unwrap_or(true) })
        };
    let settings = stack::Settings {
        poll: s.poll,
        wait_if_busy: !cmd.no_wait,
        approve: &approve,
    };
    s.check_cloudfront_quota().await?;
    adopt_kept_repository(&s, &settings).await?;
    let t = Instant::now();
    let (vpc, ecr) = tokio::try_join!(
        deploy_stack(&s, StackKind::Vpc, &[], &settings),
        deploy_stack(&s, StackKind::Ecr, &[], &settings),
    )?;
    phases.push((
        "vpc + ecr stacks",
        t.elapsed(),
        format!("vpc {}, ecr {}", describe(&vpc), describe(&ecr)),
    ));

    let t = Instant::now();
    let pushed = push_image::push(&s, &docker, &image).await?;
    phases.push((
        "push",
        t.elapsed(),
        format!("{} pushed", human_bytes(pushed.bytes_pushed)),
    ));

    let t = Instant::now();
    let extra = s
        .ecs_parameters(pushed.pinned_uri(), &image.cpu_architecture)
        .await?;
    let witness = service::Witness::default();
    let ecs =
        match deploy_ecs_watching_the_service(&s, &extra, &settings, started_ms, &witness).await {
            Ok(ecs) => ecs,
            // On AWS a rollout the circuit breaker stops fails the stack update itself.
            Err(e) => return Err(explain_failed_rollout(&s, e, started_ms, &witness).await),
        };
    phases.push(("ecs stack", t.elapsed(), describe(&ecs).to_owned()));

    let t = Instant::now();
    let missing_output = |key: &str| {
        anyhow::anyhow!(
            "stack {} has no {key} output: deploy it again",
            s.env.stack_name(StackKind::Ecs)
        )
    };
    let service::StackService {
        cluster,
        name: service_name,
        ..
    } = service::StackService::from_outputs(&ecs.outputs)
        .ok_or_else(|| missing_output("ClusterName or ServiceName"))?;
    let stability = if s.local {
        if ecs.outcome == Outcome::Updated {
            fakecloud::replace_service_tasks(&s.clients.ecs, &s.ui, &cluster, &service_name)
                .await?;
        }
        service::Stability::CountsOnly
    } else {
        service::Stability::OneDeployment
    };
    let stable = service::wait_stable(
        &s.clients.ecs,
        &s.ui,
        &cluster,
        &service_name,
        s.poll,
        Duration::from_secs(20 * 60),
        stability,
    )
    .await;
    if let Err(e) = stable {
        return Err(explain_failed_rollout(&s, e, started_ms, &witness).await);
    }
    // The service runs the image now: from here on the lifecycle policy keeps it (until more
    // than ImagesToKeep later deploys succeeded), whatever is pushed after it. The deploy itself
    // succeeded, so a failure here is a warning; the next deploy tries again.
    let marked =
        registry::mark_deployed(&s.clients.ecr, &pushed, std::time::SystemTime::now()).await;
    if let Err(e) = &marked {
        s.ui.line(format!(
            "warning: the service runs the new image, but tagging it as deployed failed ({}): the \
             repository's lifecycle policy may expire it once enough newer images are pushed; allow \
             ecr:BatchGetImage and ecr:PutImage and deploy again",
            crate::ui::one_line(e)
        ));
    }
    if marked.is_ok() && pushed.already_there && ecs.outcome != Outcome::NoChanges {
        warn_if_expiring(&s, &pushed, &ecr.outputs).await;
    }
    phases.push((
        "service stable",
        t.elapsed(),
        match marked {
            Ok(Some(tag)) => format!("{service_name} in {cluster}, image tagged {tag}"),
            _ => format!("{service_name} in {cluster}"),
        },
    ));

    let local_url = if s.local {
        let t = Instant::now();
        let health_path = &expect.health_path;
        let url = fakecloud::wait_for_url(
            &s.ui,
            ecs.outputs
                .get("LoadBalancerArn")
                .ok_or_else(|| missing_output("LoadBalancerArn"))?,
            health_path,
        )
        .await?;
        phases.push((
            "local health check",
            t.elapsed(),
            format!("{url}{health_path} answered 200"),
        ));
        Some(url)
    } else {
        None
    };

    let changed = [&vpc, &ecr, &ecs]
        .iter()
        .filter(|d| d.outcome != Outcome::NoChanges)
        .count();
    println!();
    println!("{:<20} {:>8}  result", "phase", "time");
    for (name, took, note) in &phases {
        println!("{name:<20} {:>8}  {note}", format_duration(*took));
    }
    println!("{:<20} {:>8}", "total", format_duration(started.elapsed()));
    println!();
    if changed == 0 && pushed.already_there {
        println!("Nothing to do: every stack was up to date and ECR already had the image.");
    }
    println!("stacks changed: {changed}");
    println!("pushed: {} bytes", pushed.bytes_pushed);
    println!("image: {}", pushed.pinned_uri());
    if let Some(url) = ecs.outputs.get("ServiceUrl") {
        println!("service url: {url}");
    }
    if let Some(url) = local_url {
        println!("url: {url}");
    }
    Ok(())
}

async fn deploy_stack(
    s: &Session,
    kind: StackKind,
    extra: &[(&str, String)],
    settings: &stack::Settings<'_>,
) -> Result<Deployed> {
    let stack = s.stack(kind, extra)?;
    let spinner = s.ui.spinner(format!("stack {}", stack.name));
    let deployed = stack::deploy(&s.clients.cfn, &stack, settings, &spinner).await;
    spinner.finish(deployed, |d| describe(d).into(), "failed")
}

/// Deploy the ecs stack, watching its service meanwhile (see `service::watch`): on AWS the
/// rollout happens inside the stack update, and the service's events are what tells a slow
/// rollout from a stuck one.
async fn deploy_ecs_watching_the_service(
    s: &Session,
    extra: &[(&str, String)],
    settings: &stack::Settings<'_>,
    since_ms: i64,
    witness: &service::Witness,
) -> Result<Deployed> {
    let stack = s.env.stack_name(StackKind::Ecs);
    let watch = service::watch(
        &s.clients.cfn,
        &s.clients.ecs,
        &s.ui,
        &stack,
        since_ms,
        s.poll,
        witness,
    );
    tokio::select! {
        deployed = deploy_stack(s, StackKind::Ecs, extra, settings) => deployed,
        never = watch => match never {},
    }
}

/// After a failed rollout (CloudFormation's or ours): the service's last log lines since
/// `since_ms` above the error, and the stopped tasks' reasons in it.
async fn explain_failed_rollout(
    s: &Session,
    error: anyhow::Error,
    since_ms: i64,
    witness: &service::Witness,
) -> anyhow::Error {
    let located = match s.deployed_service().await {
        Ok(Some(svc)) => Some(svc),
        _ => witness.service(),
    };
    let Some(svc) = located else {
        return error;
    };
    let group = svc.log_group.as_deref();
    let mut found = service::post_mortem(
        &s.clients.ecs,
        &s.clients.logs,
        &svc.cluster,
        &svc.name,
        group,
        since_ms,
    )
    .await;
    found.add_reasons(witness.reasons());
    if !found.log_lines.is_empty() {
        s.ui.line(format!(
            "last log lines of the service (log group {}):",
            group.unwrap_or_default()
        ));
        for line in &found.log_lines {
            s.ui.line(format!("  {line}"));
        }
    }
    if found.reasons.is_empty() {
        error
    } else {
        anyhow::anyhow!(service::with_reasons(
            crate::ui::one_line(&error),
            &found.reasons
        ))
    }
}

/// A deploy that went back to an image pushed long ago: say so when the repository's lifecycle
/// policy no longer keeps it (it keeps the `ImagesToKeep` most recently pushed deployed images).
async fn warn_if_expiring(
    s: &Session,
    pushed: &registry::Pushed,
    ecr_outputs: &std::collections::BTreeMap<String, String>,
) {
    let Some(keep) = ecr_outputs
        .get("ImagesToKeep")
        .and_then(|k| k.parse::<usize>().ok())
    else {
        return;
    };
    match registry::deployed_pushed_after(&s.clients.ecr, &pushed.repository, &pushed.digest).await
    {
        Ok(Some(after)) if after >= keep => s.ui.line(format!(
            "warning: the service runs {}, but {after} deployed images were pushed after it and the \
             repository's lifecycle policy keeps the last {keep}: it will expire the running image \
             within a day, and tasks started after that cannot pull it. Set ImagesToKeep above \
             {after} (stacks.ecr in {}) and deploy again",
            pushed.pinned_uri(),
            s.env.file_name()
        )),
        Ok(_) => {}
        Err(e) => s.ui.line(format!(
            "warning: cannot check that the lifecycle policy keeps the running image: {}",
            crate::ui::one_line(&e)
        )),
    }
}

/// The repository, as the ecr stack declares it, for an import.
pub fn repository_import(repository: String) -> Import {
    Import {
        logical_id: "Repository".into(),
        resource_type: "AWS::ECR::Repository".into(),
        identifier: ("RepositoryName".into(), repository),
    }
}

/// A repository kept by `destroy` would block creating the ecr stack again (its name is taken):
/// import it, images and all, into the new stack. fakecloud has no IMPORT: there, say how to go on.
async fn adopt_kept_repository(s: &Session, settings: &stack::Settings<'_>) -> Result<()> {
    let stack_name = s.env.stack_name(StackKind::Ecr);
    let current = stack::describe(&s.clients.cfn, &stack_name).await?;
    // Only a stack about to be created (none, or an empty shell an interrupted run left) clashes.
    if stack::plan(&stack_name, stack::status_of(current.as_ref())) != stack::Plan::Create {
        return Ok(());
    }
    let repository = s.env.prefix();
    if registry::find_repository(&s.clients.ecr, &repository)
        .await?
        .is_none()
    {
        return Ok(());
    }
    if s.local {
        anyhow::bail!(
            "ECR repository {repository} already exists outside stack {stack_name} (an earlier destroy kept it and its \
             images), and fakecloud cannot import it into the stack: delete it with \
             `cargo xtask destroy{} --delete-images` and deploy again",
            s.flag_suffix()
        );
    }
    let spinner = s.ui.spinner(format!("stack {stack_name}"));
    spinner.note(format!(
        "  ecr  repository {repository} was kept by an earlier destroy: importing it, with its images, into stack {stack_name}"
    ));
    let stack = s.stack(StackKind::Ecr, &[])?;
    let imported = stack::import(
        &s.clients.cfn,
        &stack,
        &[repository_import(repository)],
        settings,
        &spinner,
    )
    .await;
    spinner.finish(imported, |_| "imported".into(), "import failed")
}

/// The question before a change set runs, calling out what it replaces or removes.
fn question(stack: &Stack, rows: &[ChangeRow]) -> String {
    let count = |keep: &dyn Fn(&ChangeRow) -> bool| rows.iter().filter(|r| keep(r)).count();
    let destructive = count(&|r| r.ends_resource().is_some());
    let maybe = count(&|r| r.ends_resource().is_none() && r.replacement == Replacement::Maybe);
    let mut notes = Vec::new();
    if destructive > 0 {
        notes.push(format!("{destructive} replace or remove a resource"));
    }
    if maybe > 0 {
        notes.push(format!("{maybe} may replace one"));
    }
    format!(
        "Apply {} change(s) to stack {}{}?",
        rows.len(),
        stack.name,
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        }
    )
}

fn describe(d: &Deployed) -> &'static str {
    match d.outcome {
        Outcome::NoChanges => "no changes",
        Outcome::Created => "created",
        Outcome::Updated => "updated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_counts_replacements_and_removals() {
        let row = |action: &str, replacement| ChangeRow {
            logical_id: "X".into(),
            resource_type: "AWS::X".into(),
            action: action.into(),
            replacement,
        };
        let stack = Stack {
            name: "p-dev-ecs".into(),
            label: "ecs".into(),
            template: String::new(),
            parameters: Default::default(),
            tags: vec![],
        };
        assert_eq!(
            question(&stack, &[row("Add", Replacement::No)]),
            "Apply 1 change(s) to stack p-dev-ecs?"
        );
        assert_eq!(
            question(
                &stack,
                &[
                    row("Modify", Replacement::Yes),
                    row("Remove", Replacement::No),
                    row("Modify", Replacement::No),
                    row("Modify", Replacement::Maybe),
                ]
            ),
            "Apply 4 change(s) to stack p-dev-ecs (2 replace or remove a resource, 1 may replace one)?"
        );
    }

    #[test]
    fn the_kept_repository_can_be_imported_into_the_ecr_template() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/ecr.yaml");
        let template = std::fs::read_to_string(path).unwrap();
        let import = repository_import("demo-dev".into());
        let cut = stack::import_template(&template, std::slice::from_ref(&import)).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&cut).unwrap();
        assert_eq!(
            doc["Resources"][import.logical_id.as_str()]["Type"].as_str(),
            Some(import.resource_type.as_str())
        );
    }
}
