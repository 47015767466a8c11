//! Waiting for the ECS service to be stable: one deployment, running = desired (the definition
//! AWS's own `services-stable` waiter uses), reporting service events and circuit-breaker failures.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_cloudformation::types::ResourceStatus;
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

/// The ECS service an ecs stack made, as the stack's outputs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackService {
    pub cluster: String,
    pub name: String,
    pub log_group: Option<String>,
}

impl StackService {
    /// `None` when the outputs name no service (the stack is not deployed, or not yet).
    pub fn from_outputs(outputs: &std::collections::BTreeMap<String, String>) -> Option<Self> {
        Some(StackService {
            cluster: outputs.get("ClusterName")?.clone(),
            name: outputs.get("ServiceName")?.clone(),
            log_group: outputs.get("LogGroupName").cloned(),
        })
    }
}

/// The service an ecs stack is making or has made, found through the stack's resources: its
/// outputs exist only once the stack settles, and a failed first create never gets any. Deleted
/// resources (a `ROLLBACK_COMPLETE` stack's) do not count; `None` when there is no stack either.
pub async fn locate(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Option<StackService>> {
    let out = match cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if crate::stack::no_such_stack(&e) => return Ok(None),
        Err(e) => {
            return Err(aws_error(e))
                .with_context(|| format!("cannot list the resources of stack {stack}"))
        }
    };
    let physical = |ty: &str| {
        out.stack_resources()
            .iter()
            .filter(|r| r.resource_status() != Some(&ResourceStatus::DeleteComplete))
            .find(|r| r.resource_type() == Some(ty))
            .and_then(|r| r.physical_resource_id())
            .filter(|id| !id.is_empty())
    };
    // Either may be an ARN; ECS takes the name in every call we make.
    let name = |id: &str| id.rsplit('/').next().unwrap_or(id).to_owned();
    Ok(
        match (physical("AWS::ECS::Cluster"), physical("AWS::ECS::Service")) {
            (Some(cluster), Some(service)) => Some(StackService {
                cluster: name(cluster),
                name: name(service),
                log_group: physical("AWS::Logs::LogGroup").map(str::to_owned),
            }),
            _ => None,
        },
    )
}

/// What `watch` saw of a rollout, to explain its failure afterwards: a failed first create
/// deletes the cluster, and with it the stopped tasks, before the deploy can look at them.
#[derive(Debug, Default)]
pub struct Witness {
    service: Mutex<Option<StackService>>,
    reasons: Mutex<Vec<String>>,
}

impl Witness {
    /// The service, once the stack had made it.
    pub fn service(&self) -> Option<StackService> {
        self.service.lock().unwrap().clone()
    }

    /// Why tasks stopped during the rollout.
    pub fn reasons(&self) -> Vec<String> {
        self.reasons.lock().unwrap().clone()
    }

    fn record(&self, reasons: Vec<String>) {
        let mut all = self.reasons.lock().unwrap();
        all.extend(reasons);
        tidy(&mut all);
    }
}

/// Reasons as we show them: sorted, each once, three at most.
fn tidy(reasons: &mut Vec<String>) {
    reasons.sort();
    reasons.dedup();
    reasons.truncate(3);
}

/// Follow the service of the ecs stack `stack` while a deploy of it runs (until dropped): print
/// its new events (all of them when the deploy creates it) and, whenever its deployments count
/// more failed tasks, record why tasks stopped since `since_ms`. Errors are retried quietly: the
/// deploy this accompanies reports failures itself.
pub async fn watch(
    cfn: &aws_sdk_cloudformation::Client,
    ecs: &aws_sdk_ecs::Client,
    ui: &Ui,
    stack: &str,
    since_ms: i64,
    poll: Duration,
    witness: &Witness,
) -> std::convert::Infallible {
    let mut feed = EventFeed::default();
    // Whether a look found no service (or no stack): one found after that is this deploy's.
    let mut seen_absent = false;
    let mut failed_tasks = 0;
    loop {
        let svc = match witness.service() {
            Some(svc) => Some(svc),
            None => {
                let Ok(found) = locate(cfn, stack).await else {
                    // Unknown (throttled, say): neither absent nor found.
                    tokio::time::sleep(poll).await;
                    continue;
                };
                match &found {
                    None => seen_absent = true,
                    // Made by this deploy: its events are all news.
                    Some(_) if seen_absent => feed = EventFeed::everything(),
                    Some(_) => {}
                }
                witness.service.lock().unwrap().clone_from(&found);
                found
            }
        };
        if let Some(svc) = svc {
            if let Ok(service) = describe(ecs, &svc.cluster, &svc.name).await {
                feed.show(ui, &service);
                let failed: i32 = service.deployments().iter().map(|d| d.failed_tasks()).sum();
                if failed > 0 && failed != failed_tasks {
                    witness.record(stopped_reasons(ecs, &svc.cluster, &svc.name, since_ms).await);
                }
                failed_tasks = failed;
            }
        }
        tokio::time::sleep(poll).await;
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

/// Why the service's tasks that stopped since `since_ms` stopped (ECS keeps stopped tasks for
/// about an hour; older failures would only mislead).
async fn stopped_reasons(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    since_ms: i64,
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
        .filter(|t| {
            t.stopped_at()
                .is_none_or(|at| at.to_millis().unwrap_or(0) >= since_ms)
        })
        .filter_map(|t| t.stopped_reason())
        .map(str::to_owned)
        .collect();
    tidy(&mut reasons);
    reasons
}

/// What a failed rollout left behind.
#[derive(Debug, Default)]
pub struct PostMortem {
    /// Why the recently stopped tasks stopped.
    pub reasons: Vec<String>,
    /// The service's last log lines.
    pub log_lines: Vec<String>,
}

impl PostMortem {
    /// Add what a `Witness` saw while the tasks could still be looked at.
    pub fn add_reasons(&mut self, seen: Vec<String>) {
        self.reasons.extend(seen);
        tidy(&mut self.reasons);
    }
}

/// Why the service's tasks stopped and what it logged last (since `since_ms`); best effort.
pub async fn post_mortem(
    ecs: &aws_sdk_ecs::Client,
    logs: &aws_sdk_cloudwatchlogs::Client,
    cluster: &str,
    service: &str,
    log_group: Option<&str>,
    since_ms: i64,
) -> PostMortem {
    let log_lines = match log_group {
        Some(group) => crate::logs::last_lines(logs, group, since_ms, 15).await,
        None => vec![],
    };
    PostMortem {
        reasons: stopped_reasons(ecs, cluster, service, since_ms).await,
        log_lines,
    }
}

/// `message`, followed by what the stopped tasks say when they say anything, and the fix when
/// we recognise what they say.
pub fn with_reasons(message: String, reasons: &[String]) -> String {
    if reasons.is_empty() {
        return message;
    }
    let said = format!("{message}. Stopped tasks say: {}", reasons.join("; "));
    match reasons
        .iter()
        .find_map(|r| crate::fixes::for_stopped_task(r))
    {
        Some(fix) => format!("{said}. {fix}"),
        None => said,
    }
}

/// The service's events not shown yet, oldest first. The first look only marks where "new" starts.
#[derive(Debug, Default)]
pub struct EventFeed {
    /// The newest event id already seen; `Some("")` when the service had no events at first look.
    seen: Option<String>,
}

impl EventFeed {
    /// A feed whose first look shows every event, for a service this deploy created.
    pub fn everything() -> EventFeed {
        EventFeed {
            seen: Some(String::new()),
        }
    }

    pub fn fresh(&mut self, service: &Service) -> Vec<String> {
        let events = service.events();
        let mut fresh: Vec<String> = match &self.seen {
            None => vec![],
            Some(seen) => events
                .iter()
                .take_while(|e| e.id() != Some(seen.as_str()))
                .filter_map(|e| e.message().map(str::to_owned))
                .collect(),
        };
        fresh.reverse();
        if let Some(newest) = events.first().and_then(|e| e.id()) {
            self.seen = Some(newest.to_owned());
        } else if self.seen.is_none() {
            self.seen = Some(String::new());
        }
        fresh
    }

    /// Print the events not shown yet, one line each.
    pub fn show(&mut self, ui: &Ui, service: &Service) {
        for message in self.fresh(service) {
            ui.line(format!("  svc  {message}"));
        }
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
    let underway = crate::interrupt::underway(format!("ECS service {service} is rolling out"));
    let started = Instant::now();
    let mut feed = EventFeed::default();
    loop {
        let svc = describe(ecs, cluster, service).await?;
        feed.show(ui, &svc);
        match assess(&svc, mode) {
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
                bail!("ECS service {service}: {why}");
            }
            Assessment::Waiting(status) => {
                underway.update(format!("ECS service {service} is rolling out ({status})"));
                spinner.set(status);
            }
        }
        if started.elapsed() > timeout {
            spinner.failed("not stable");
            bail!(
                "ECS service {service} did not become stable within {} min: check `cargo xtask status` and \
                 `cargo xtask logs`",
                timeout.as_secs() / 60
            );
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::mock_sdk;
    use aws_sdk_ecs::types::Deployment;
    use aws_smithy_mocks::mock;

    #[tokio::test]
    async fn a_post_mortem_reads_stopped_tasks_and_the_last_log_lines() {
        use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput;
        use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
        use aws_sdk_ecs::operation::{
            describe_tasks::DescribeTasksOutput, list_tasks::ListTasksOutput,
        };
        use aws_sdk_ecs::types::{DesiredStatus, Task};

        let list = mock!(aws_sdk_ecs::Client::list_tasks)
            .match_requests(|r| {
                r.desired_status() == Some(&DesiredStatus::Stopped)
                    && r.service_name() == Some("demo-dev")
            })
            .then_output(|| {
                ListTasksOutput::builder()
                    .task_arns("t1")
                    .task_arns("t2")
                    .build()
            });
        let stopped = |reason: &str, at_ms: i64| {
            Task::builder()
                .stopped_reason(reason)
                .stopped_at(aws_sdk_ecs::primitives::DateTime::from_millis(at_ms))
                .build()
        };
        let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(move || {
            DescribeTasksOutput::builder()
                .tasks(stopped("Essential container in task exited", 50))
                .tasks(stopped("Essential container in task exited", 60))
                .tasks(stopped("an older failure, before this deploy", 41))
                .build()
        });
        let events = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
            .match_requests(|r| {
                r.log_group_name() == Some("/ecs/demo-dev") && r.start_time() == Some(42)
            })
            .then_output(|| {
                FilterLogEventsOutput::builder()
                    .events(
                        FilteredLogEvent::builder()
                            .event_id("1")
                            .timestamp(50)
                            .message("thread 'main' panicked: DATABASE_URL is not set")
                            .build(),
                    )
                    .build()
            });
        let ecs = mock_sdk!(aws_sdk_ecs, [&list, &tasks]);
        let logs = mock_sdk!(aws_sdk_cloudwatchlogs, [&events]);

        let found = post_mortem(
            &ecs,
            &logs,
            "demo-dev",
            "demo-dev",
            Some("/ecs/demo-dev"),
            42,
        )
        .await;
        assert_eq!(found.reasons, ["Essential container in task exited"]);
        assert_eq!(
            found.log_lines,
            ["thread 'main' panicked: DATABASE_URL is not set"]
        );
    }

    /// The ecs stack's cluster, service and log group as CloudFormation lists them, in these states.
    fn stack_resources(states: [ResourceStatus; 3]) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_cloudformation::Client::describe_stack_resources)
            .match_requests(|r| r.stack_name() == Some("demo-dev-ecs"))
            .then_output(move || listed(states.clone()))
    }

    /// DescribeStackResources' answer: the cluster, service and log group, in these states.
    fn listed(
        states: [ResourceStatus; 3],
    ) -> aws_sdk_cloudformation::operation::describe_stack_resources::DescribeStackResourcesOutput
    {
        use aws_sdk_cloudformation::operation::describe_stack_resources::DescribeStackResourcesOutput;
        use aws_sdk_cloudformation::types::StackResource;
        let made = [
            ("AWS::ECS::Cluster", "demo-dev"),
            ("AWS::ECS::Service", SERVICE_ARN),
            ("AWS::Logs::LogGroup", "/ecs/demo-dev/1234"),
        ];
        let resources = made
            .iter()
            .zip(states)
            .map(|((ty, id), status)| {
                StackResource::builder()
                    .resource_type(*ty)
                    .physical_resource_id(*id)
                    .resource_status(status)
                    .build()
            })
            .collect();
        DescribeStackResourcesOutput::builder()
            .set_stack_resources(Some(resources))
            .build()
    }

    const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:111122223333:service/demo-dev/demo-dev";

    #[tokio::test]
    async fn the_stack_resources_locate_the_service_unless_deleted() {
        let made = stack_resources([
            ResourceStatus::CreateComplete,
            ResourceStatus::CreateInProgress,
            ResourceStatus::CreateComplete,
        ]);
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&made]);
        assert_eq!(
            locate(&cfn, "demo-dev-ecs").await.unwrap(),
            Some(StackService {
                cluster: "demo-dev".into(),
                name: "demo-dev".into(),
                log_group: Some("/ecs/demo-dev/1234".into()),
            })
        );
        // A failed first create, rolled back: only the retained log group is left.
        let rolled_back = stack_resources([
            ResourceStatus::DeleteComplete,
            ResourceStatus::DeleteComplete,
            ResourceStatus::DeleteSkipped,
        ]);
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&rolled_back]);
        assert_eq!(locate(&cfn, "demo-dev-ecs").await.unwrap(), None);
    }

    /// Watch the stack `demo-dev-ecs` for half a second, polling every 10 ms; what it saw.
    async fn watch_a_while(
        cfn: &aws_sdk_cloudformation::Client,
        ecs: &aws_sdk_ecs::Client,
    ) -> Witness {
        let witness = Witness::default();
        let ui = Ui::new();
        let watching = watch(
            cfn,
            ecs,
            &ui,
            "demo-dev-ecs",
            0,
            Duration::from_millis(10),
            &witness,
        );
        // Watches until dropped, like beside a deploy.
        assert!(tokio::time::timeout(Duration::from_millis(500), watching)
            .await
            .is_err());
        witness
    }

    #[tokio::test]
    async fn the_watch_records_why_tasks_stopped_while_the_cluster_still_exists() {
        use aws_sdk_ecs::operation::{
            describe_services::DescribeServicesOutput, describe_tasks::DescribeTasksOutput,
            list_tasks::ListTasksOutput,
        };
        use aws_sdk_ecs::types::Task;
        let made = stack_resources([
            ResourceStatus::CreateComplete,
            ResourceStatus::CreateInProgress,
            ResourceStatus::CreateComplete,
        ]);
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&made]);
        // The circuit breaker counts two failed tasks.
        let described = mock!(aws_sdk_ecs::Client::describe_services)
            .match_requests(|r| r.cluster() == Some("demo-dev") && r.services() == ["demo-dev"])
            .then_output(|| {
                DescribeServicesOutput::builder()
                    .services(service(
                        0,
                        1,
                        vec![Deployment::builder().failed_tasks(2).build()],
                    ))
                    .build()
            });
        let listed = mock!(aws_sdk_ecs::Client::list_tasks)
            .then_output(|| ListTasksOutput::builder().task_arns("t1").build());
        let pull_failed =
            "CannotPullContainerError: pull image manifest has been retried 5 time(s)";
        let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(move || {
            DescribeTasksOutput::builder()
                .tasks(Task::builder().stopped_reason(pull_failed).build())
                .build()
        });
        let ecs = mock_sdk!(aws_sdk_ecs, [&described, &listed, &tasks]);

        let witness = watch_a_while(&cfn, &ecs).await;
        assert_eq!(witness.service().map(|s| s.name), Some("demo-dev".into()));
        assert_eq!(witness.reasons(), [pull_failed]);
        // Asked once: the failed-task count did not change after the first look.
        assert_eq!(tasks.num_calls(), 1);

        let mut found = PostMortem::default();
        found.add_reasons(witness.reasons());
        found.add_reasons(vec![pull_failed.into()]);
        assert_eq!(found.reasons, [pull_failed]);
    }

    #[tokio::test]
    async fn the_watch_finds_a_service_the_deploy_creates() {
        use aws_sdk_cloudformation::operation::describe_stack_resources::DescribeStackResourcesError;
        use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
        // No stack yet (a change set not executed), then one being created, its service too.
        let appearing = mock!(aws_sdk_cloudformation::Client::describe_stack_resources)
            .sequence()
            .error(|| {
                DescribeStackResourcesError::generic(crate::mock::service_error(
                    "ValidationError",
                    "Stack with id demo-dev-ecs does not exist",
                ))
            })
            .output(|| {
                listed([
                    ResourceStatus::CreateComplete,
                    ResourceStatus::CreateInProgress,
                    ResourceStatus::CreateComplete,
                ])
            })
            .repeatedly()
            .build();
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&appearing]);
        let described = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
            DescribeServicesOutput::builder()
                .services(service(0, 1, vec![]))
                .build()
        });
        let ecs = mock_sdk!(aws_sdk_ecs, [&described]);

        let witness = watch_a_while(&cfn, &ecs).await;
        assert_eq!(
            witness.service().and_then(|s| s.log_group),
            Some("/ecs/demo-dev/1234".into())
        );
        // Found once, then followed by name.
        assert_eq!(appearing.num_calls(), 2);
        assert!(described.num_calls() > 1);
    }

    #[test]
    fn a_service_the_deploy_created_shows_all_its_events() {
        use aws_sdk_ecs::types::ServiceEvent;
        let created = Service::builder()
            .events(
                ServiceEvent::builder()
                    .id("1")
                    .message("has started 1 tasks")
                    .build(),
            )
            .build();
        assert_eq!(
            EventFeed::everything().fresh(&created),
            ["has started 1 tasks"]
        );
        assert!(EventFeed::default().fresh(&created).is_empty());
    }

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
    fn the_stack_outputs_name_the_service() {
        let outputs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(
            StackService::from_outputs(&outputs(&[
                ("ClusterName", "c"),
                ("ServiceName", "s"),
                ("LogGroupName", "/ecs/s"),
            ])),
            Some(StackService {
                cluster: "c".into(),
                name: "s".into(),
                log_group: Some("/ecs/s".into())
            })
        );
        assert_eq!(
            StackService::from_outputs(&outputs(&[("ClusterName", "c")])),
            None
        );
    }

    #[test]
    fn the_event_feed_shows_only_new_events_oldest_first() {
        use aws_sdk_ecs::types::ServiceEvent;
        // ECS lists events newest first.
        let with_events = |ids: &[&str]| {
            Service::builder()
                .set_events(Some(
                    ids.iter()
                        .map(|id| {
                            ServiceEvent::builder()
                                .id(*id)
                                .message(format!("event {id}"))
                                .build()
                        })
                        .collect(),
                ))
                .build()
        };
        let mut feed = EventFeed::default();
        assert!(
            feed.fresh(&with_events(&["2", "1"])).is_empty(),
            "old events are history"
        );
        assert_eq!(
            feed.fresh(&with_events(&["4", "3", "2", "1"])),
            ["event 3", "event 4"]
        );
        assert!(feed.fresh(&with_events(&["4", "3", "2", "1"])).is_empty());

        let mut quiet = EventFeed::default();
        assert!(quiet.fresh(&with_events(&[])).is_empty());
        assert_eq!(quiet.fresh(&with_events(&["1"])), ["event 1"]);
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
    fn stopped_reasons_that_do_not_explain_themselves_get_a_fix() {
        for (reason, fix) in [
            (
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref \
                 1.dkr.ecr.us-east-1.amazonaws.com/demo-dev@sha256:ab: not found",
                "pushes it again",
            ),
            (
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource \
                 retrieval failed: unable to retrieve ecr registry auth: ... dial tcp 10.0.2.1:443: i/o timeout",
                "VPC endpoints",
            ),
            ("OutOfMemoryError: Container killed due to memory usage", "raise Memory"),
            ("exec /app: exec format error", "CpuArchitecture"),
            (
                "You've reached the limit on the number of vCPUs you can run concurrently",
                "Fargate On-Demand vCPU resource count",
            ),
        ] {
            let said = with_reasons("rollout failed".into(), &[reason.into()]);
            assert!(said.ends_with(crate::fixes::for_stopped_task(reason).unwrap()), "{said}");
            assert!(said.contains(fix), "{reason}: {said}");
        }
        assert_eq!(
            crate::fixes::for_stopped_task("Essential container in task exited"),
            None
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
