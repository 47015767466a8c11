//! Waiting for the ECS service to be stable: one deployment, running = desired (the definition
//! AWS's own `services-stable` waiter uses), reporting service events and circuit-breaker failures.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_ecs::types::{DeploymentRolloutState, Service};

use crate::aws::aws_error;
use crate::ui::Ui;

#[derive(Debug, PartialEq, Eq)]
pub enum Assessment {
    Stable,
    Waiting(String),
    Failed(String),
}

/// How strictly to judge stability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stability {
    /// AWS: one deployment left and running = desired.
    OneDeployment,
    /// fakecloud keeps superseded deployments listed: running = desired is all it can show.
    CountsOnly,
}

pub fn assess(service: &Service, mode: Stability) -> Assessment {
    let deployments = service.deployments();
    let (running, desired, pending) = (
        service.running_count(),
        service.desired_count(),
        service.pending_count(),
    );
    if let Some(failed) = deployments
        .iter()
        .find(|d| d.rollout_state() == Some(&DeploymentRolloutState::Failed))
    {
        return Assessment::Failed(format!(
            "the deployment failed and the circuit breaker is rolling back to the previous task definition: {}",
            failed.rollout_state_reason().unwrap_or("no reason given")
        ));
    }
    let settled = deployments.len() == 1 || mode == Stability::CountsOnly;
    if settled && running == desired {
        Assessment::Stable
    } else {
        Assessment::Waiting(format!(
            "{running}/{desired} running, {pending} pending, {} deployment(s)",
            deployments.len()
        ))
    }
}

/// The service as ECS reports it.
pub async fn describe(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> Result<Service> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("cannot describe ECS service {service} in cluster {cluster}"))?;
    out.services()
        .first()
        .cloned()
        .with_context(|| format!("ECS has no service {service} in cluster {cluster}"))
}

/// Why the service's recently stopped tasks stopped (ECS keeps them for about an hour).
pub async fn stopped_reasons(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Vec<String> {
    let Ok(listed) = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
    else {
        return vec![];
    };
    if listed.task_arns().is_empty() {
        return vec![];
    }
    let Ok(described) = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(listed.task_arns().to_vec()))
        .send()
        .await
    else {
        return vec![];
    };
    let mut reasons: Vec<String> = described
        .tasks()
        .iter()
        .filter_map(|t| t.stopped_reason())
        .map(str::to_owned)
        .collect();
    reasons.sort();
    reasons.dedup();
    reasons.truncate(3);
    reasons
}

fn with_reasons(message: String, reasons: &[String]) -> String {
    if reasons.is_empty() {
        message
    } else {
        format!("{message}. Stopped tasks say: {}", reasons.join("; "))
    }
}

/// Poll until the service is stable, printing its new events; gives up after `timeout`.
pub async fn wait_stable(
    ecs: &aws_sdk_ecs::Client,
    ui: &Ui,
    cluster: &str,
    service: &str,
    poll: Duration,
    timeout: Duration,
    mode: Stability,
) -> Result<()> {
    let spinner = ui.spinner("service");
    let started = Instant::now();
    let mut seen_events: Option<String> = None;
    loop {
        let described = describe(ecs, cluster, service).await?;
        let svc = &described;
        // Service events are newest first; show the ones we have not shown, oldest first.
        let fresh: Vec<_> = svc
            .events()
            .iter()
            .take_while(|e| seen_events.is_none() || e.id() != seen_events.as_deref())
            .collect();
        if seen_events.is_some() {
            for e in fresh.iter().rev() {
                spinner.note(format!("  svc  {}", e.message().unwrap_or_default()));
            }
        }
        if let Some(newest) = svc.events().first().and_then(|e| e.id()) {
            seen_events = Some(newest.to_owned());
        } else if seen_events.is_none() {
            seen_events = Some(String::new());
        }
        match assess(svc, mode) {
            Assessment::Stable => {
                spinner.done(format!(
                    "{}/{} tasks running",
                    svc.running_count(),
                    svc.desired_count()
                ));
                return Ok(());
            }
            Assessment::Failed(why) => {
                spinner.failed("rollout failed");
                let reasons = stopped_reasons(ecs, cluster, service).await;
                bail!(with_reasons(
                    format!("ECS service {service}: {why}"),
                    &reasons
                ));
            }
            Assessment::Waiting(status) => spinner.set(status),
        }
        if started.elapsed() > timeout {
            spinner.failed("not stable");
            let reasons = stopped_reasons(ecs, cluster, service).await;
            bail!(with_reasons(
                format!(
                    "ECS service {service} did not become stable within {} min: check `cargo xtask status` and \
                     `cargo xtask logs`",
                    timeout.as_secs() / 60
                ),
                &reasons
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::Deployment;

    fn service(running: i32, desired: i32, deployments: Vec<Deployment>) -> Service {
        Service::builder()
            .running_count(running)
            .desired_count(desired)
            .pending_count(desired - running)
            .set_deployments(Some(deployments))
            .build()
    }

    fn assess_one(s: &Service) -> Assessment {
        assess(s, Stability::OneDeployment)
    }

    fn deployment(state: DeploymentRolloutState) -> Deployment {
        Deployment::builder()
            .rollout_state(state)
            .rollout_state_reason("tasks failed to start")
            .build()
    }

    #[test]
    fn stable_means_one_deployment_and_all_tasks_running() {
        let one = || deployment(DeploymentRolloutState::InProgress);
        assert_eq!(assess_one(&service(1, 1, vec![one()])), Assessment::Stable);
        assert!(matches!(
            assess_one(&service(0, 1, vec![one()])),
            Assessment::Waiting(_)
        ));
        assert!(matches!(
            assess_one(&service(1, 1, vec![one(), one()])),
            Assessment::Waiting(_)
        ));
    }

    #[test]
    fn stopped_reasons_are_appended_when_known() {
        assert_eq!(with_reasons("x".into(), &[]), "x");
        assert_eq!(
            with_reasons(
                "x".into(),
                &[
                    "Essential container in task exited".into(),
                    "CannotPullContainerError".into()
                ]
            ),
            "x. Stopped tasks say: Essential container in task exited; CannotPullContainerError"
        );
    }

    #[test]
    fn a_failed_rollout_names_the_circuit_breaker() {
        let a = assess_one(&service(
            1,
            1,
            vec![deployment(DeploymentRolloutState::Failed)],
        ));
        let Assessment::Failed(why) = a else {
            panic!("{a:?}")
        };
        assert!(
            why.contains("circuit breaker") && why.contains("tasks failed to start"),
            "{why}"
        );
    }
}
