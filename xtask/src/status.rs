//! `cargo xtask status`: the stacks, the service's tasks and rollout, the running image, the URL.
//! `--json` prints one document whose fields are documented in README.md and kept stable.

use std::path::Path;

use anyhow::{Context, Result};
use aws_sdk_cloudformation::primitives::DateTimeFormat;
use serde_json::{json, Value};

use crate::flags;
use crate::project::StackKind;
use crate::session::Session;
use crate::ui::Ui;
use crate::{fakecloud, registry, service, stack};

pub async fn run(root: &Path, cmd: flags::Status) -> Result<()> {
    let s = Session::open(root, &cmd.target, Ui::new()).await?;
    let report = collect(&s).await?;
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

async fn collect(s: &Session) -> Result<Value> {
    let mut stacks = Vec::new();
    let mut outputs = Default::default();
    for kind in StackKind::ALL {
        let name = s.env.stack_name(kind);
        let found = stack::describe(&s.clients.cfn, &name).await?;
        if kind == StackKind::Ecs {
            outputs = found.as_ref().map(stack::outputs).unwrap_or_default();
        }
        let (status, updated) = match &found {
            Some(st) => (
                stack::status_of(Some(st)).map(str::to_owned),
                st.last_updated_time()
                    .or(st.creation_time())
                    .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()),
            ),
            None => (None, None),
        };
        stacks.push(json!({ "name": name, "kind": kind.name(), "status": status.unwrap_or_else(|| "NOT_DEPLOYED".into()), "lastUpdated": updated }));
    }
    let mut svc = Value::Null;
    if let Some(service::StackService { cluster, name, .. }) =
        service::StackService::from_outputs(&outputs)
    {
        let d = service::describe(&s.clients.ecs, &cluster, &name).await?;
        let primary = d
            .deployments()
            .iter()
            .find(|x| x.status() == Some("PRIMARY"));
        let task_definition = d.task_definition().map(str::to_owned);
        let image = match &task_definition {
            Some(td) => s
                .clients
                .ecs
                .describe_task_definition()
                .task_definition(td)
                .send()
                .await
                .map_err(crate::aws::aws_error)
                .with_context(|| format!("cannot describe the service's task definition {td}"))?
                .task_definition()
                .and_then(|t| t.container_definitions().first()?.image())
                .map(str::to_owned),
            None => None,
        };
        let pinned = image.as_deref().and_then(registry::pinned_parts);
        let digest = pinned.map(|(_, digest)| digest.to_owned());
        // Whether tasks that start now can still pull the image, and which build it is.
        let tags = match pinned {
            Some((repository, digest)) => {
                Some(registry::tags_of(&s.clients.ecr, repository, digest).await?)
            }
            None => None,
        };
        svc = json!({
            "cluster": cluster,
            "name": name,
            "desired": d.desired_count(),
            "running": d.running_count(),
            "pending": d.pending_count(),
            "deployments": d.deployments().len(),
            "rolloutState": primary.and_then(|p| p.rollout_state()).map(|r| r.as_str().to_owned()),
            "taskDefinition": task_definition,
            "image": image,
            "digest": digest,
            "imageInEcr": tags.as_ref().map(Option::is_some),
            "imageTags": tags.flatten().unwrap_or_default(),
        });
    }
    let local_url = match (s.local, outputs.get("LoadBalancerArn")) {
        (true, Some(arn)) => fakecloud::load_balancer_url(arn).await.ok(),
        _ => None,
    };
    Ok(json!({
        "environment": s.env.name,
        "project": s.env.project,
        "stacks": stacks,
        "service": svc,
        "url": outputs.get("ServiceUrl"),
        "localUrl": local_url,
    }))
}

/// The human-readable form of the same report.
pub fn render(r: &Value) -> String {
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "environment {} (project {})\n",
        text(&r["environment"]),
        text(&r["project"])
    );
    for st in r["stacks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<28} {:<22} {}\n",
            text(&st["name"]),
            text(&st["status"]),
            text(&st["lastUpdated"])
        ));
    }
    let svc = &r["service"];
    if svc.is_null() {
        out.push_str("service: not deployed\n");
    } else {
        out.push_str(&format!(
            "service {}: {}/{} running, {} pending, {} deployment(s), rollout {}\n",
            text(&svc["name"]),
            svc["running"],
            svc["desired"],
            svc["pending"],
            svc["deployments"],
            text(&svc["rolloutState"])
        ));
        out.push_str(&format!("image: {}\n", text(&svc["image"])));
        if svc["imageInEcr"] == false {
            out.push_str(
                "warning: ECR no longer holds this image (expired by the repository's lifecycle \
                 policy, or deleted): tasks that start now cannot pull it. Run `cargo xtask deploy` \
                 to push it again\n",
            );
        } else if let Some(tags) = svc["imageTags"].as_array().filter(|t| !t.is_empty()) {
            let tags: Vec<String> = tags.iter().map(text).collect();
            out.push_str(&format!("image tags: {}\n", tags.join(", ")));
            // A deploy tags the image once the service is stable on it; one stopped before that
            // (Ctrl-C during the rollout) leaves the running image to the count of recent pushes.
            let rolling_out = svc["rolloutState"] == "IN_PROGRESS";
            if !rolling_out && !registry::is_deployed(&tags) {
                out.push_str(
                    "warning: the running image is not tagged deployed- (its deploy stopped before \
                     the service was stable), so the lifecycle policy keeps it only while it is \
                     among the most recent pushes: run `cargo xtask deploy` to tag it\n",
                );
            }
        }
    }
    out.push_str(&format!("url: {}\n", text(&r["url"])));
    if !r["localUrl"].is_null() {
        out.push_str(&format!("local url: {}\n", text(&r["localUrl"])));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_stacks_service_and_urls() {
        let report = json!({
            "environment": "dev", "project": "p",
            "stacks": [{"name": "p-dev-vpc", "kind": "vpc", "status": "CREATE_COMPLETE", "lastUpdated": "2026-11-25T14:00:00Z"}],
            "service": {"name": "p-dev", "desired": 2, "running": 1, "pending": 1, "deployments": 2, "rolloutState": "IN_PROGRESS", "image": "r@sha256:ab"},
            "url": "https://d.cloudfront.net", "localUrl": null
        });
        let text = render(&report);
        assert!(
            text.contains("p-dev-vpc") && text.contains("CREATE_COMPLETE"),
            "{text}"
        );
        assert!(
            text.contains(
                "service p-dev: 1/2 running, 1 pending, 2 deployment(s), rollout IN_PROGRESS"
            ),
            "{text}"
        );
        assert!(
            text.contains("image: r@sha256:ab") && text.contains("url: https://d.cloudfront.net"),
            "{text}"
        );
        assert!(!text.contains("local url"));
        assert!(!text.contains("image tags"), "{text}");
    }

    #[test]
    fn renders_the_image_tags_or_warns_when_ecr_lost_the_image() {
        let report = |in_ecr: Value, tags: Value| {
            render(&json!({
                "environment": "dev", "project": "p", "stacks": [],
                "service": {"name": "p-dev", "desired": 1, "running": 1, "pending": 0, "deployments": 1,
                            "image": "r@sha256:ab", "imageInEcr": in_ecr, "imageTags": tags},
                "url": null, "localUrl": null
            }))
        };
        let text = report(
            json!(true),
            json!(["rev-hash", "deployed-20261126T004138Z-ab"]),
        );
        assert!(
            text.contains("image tags: rev-hash, deployed-20261126T004138Z-ab"),
            "{text}"
        );
        let untagged = report(json!(true), json!(["rev-hash"]));
        assert!(
            untagged.contains(
                "image tags: rev-hash\nwarning: the running image is not tagged deployed-"
            ) && untagged.contains("run `cargo xtask deploy` to tag it"),
            "{untagged}"
        );
        assert!(!text.contains("warning"), "{text}");
        let mid_rollout = render(&json!({
            "environment": "dev", "project": "p", "stacks": [],
            "service": {"name": "p-dev", "desired": 2, "running": 1, "pending": 1, "deployments": 2,
                        "rolloutState": "IN_PROGRESS", "image": "r@sha256:ab", "imageInEcr": true,
                        "imageTags": ["rev-hash"]},
            "url": null, "localUrl": null
        }));
        assert!(!mid_rollout.contains("warning"), "{mid_rollout}");
        let text = report(json!(false), json!([]));
        assert!(
            text.contains("warning: ECR no longer holds this image")
                && text.contains("cargo xtask deploy"),
            "{text}"
        );
    }
}
