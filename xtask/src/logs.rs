//! `cargo xtask logs`: the service's CloudWatch logs, oldest first, optionally following.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::aws::{aws_error, now_ms};
use crate::flags;
use crate::project::StackKind;
use crate::session::Session;
use crate::ui::Ui;

pub async fn run(root: &Path, cmd: flags::Logs) -> Result<()> {
    let since = parse_since(&cmd.since)?;
    let s = Session::open(root, &cmd.target, Ui::new()).await?;
    let group = s
        .deployed_service()
        .await?
        .and_then(|svc| svc.log_group)
        .with_context(|| {
            format!(
                "the ecs stack {} is not deployed: run `cargo xtask deploy{}` first",
                s.env.stack_name(StackKind::Ecs),
                s.flag_suffix()
            )
        })?;
    let logs = &s.clients.logs;
    let mut start = now_ms() - since.as_millis() as i64;
    let mut seen = Seen::default();
    let mut told_empty = false;
    loop {
        let lines = match read(logs, &group, start, &mut seen).await {
            // fakecloud creates the group only when a task stops and hands over its output.
            Err(Missing) if s.local => {
                if !told_empty {
                    eprintln!(
                        "log group {group} has no events yet (fakecloud forwards a task's output when it stops)"
                    );
                    told_empty = true;
                }
                vec![]
            }
            Err(Missing) => bail!(
                "log group {group} does not exist although stack {} created it: deploy again to restore it",
                s.env.stack_name(StackKind::Ecs)
            ),
            Ok(lines) => lines,
            Err(Failed(e)) => return Err(e),
        };
        for (at, line) in &lines {
            start = start.max(*at - 1000);
            println!("{line}");
        }
        // Older events are never asked for again: a long follow keeps only the ids it may meet.
        seen.forget_before(start);
        if !cmd.follow {
            return Ok(());
        }
        // `start` trails the newest event by a second: late events with an earlier timestamp are
        // caught, and `seen` drops the repeats.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The last `n` lines the service logged since `since_ms` (best effort: none when they cannot be read).
pub async fn last_lines(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    since_ms: i64,
    n: usize,
) -> Vec<String> {
    let mut lines: Vec<String> = read(logs, group, since_ms, &mut Seen::default())
        .await
        .map(|l| l.into_iter().map(|(_, line)| line).collect())
        .unwrap_or_default();
    lines.drain(..lines.len().saturating_sub(n));
    lines
}

enum ReadError {
    Missing,
    Failed(anyhow::Error),
}
use ReadError::{Failed, Missing};

/// The ids of the events already printed, with their timestamps.
#[derive(Default)]
struct Seen(HashMap<String, i64>);

impl Seen {
    /// False when the event was seen before.
    fn insert(&mut self, id: &str, at: i64) -> bool {
        self.0.insert(id.to_owned(), at).is_none()
    }

    fn forget_before(&mut self, ms: i64) {
        self.0.retain(|_, at| *at >= ms);
    }
}

/// Every event of `group` from `start_ms` on, oldest first, as (timestamp, line); events whose id
/// is in `seen` are skipped and new ids are added to it.
async fn read(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    start_ms: i64,
    seen: &mut Seen,
) -> Result<Vec<(i64, String)>, ReadError> {
    // Whole pages: this operation's paginator has no item stream.
    let pages: Vec<aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput> =
        logs.filter_log_events()
            .log_group_name(group)
            .start_time(start_ms)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception())
                {
                    Missing
                } else {
                    Failed(aws_error(e).context(format!("cannot read log group {group}")))
                }
            })?;
    let mut lines = Vec::new();
    for e in pages.iter().flat_map(|page| page.events()) {
        let at = e.timestamp().unwrap_or_default();
        if seen.insert(e.event_id().unwrap_or_default(), at) {
            let line = e.message().unwrap_or_default().trim_end().to_owned();
            lines.push((at, line));
        }
    }
    // Stable: events of one timestamp keep the order CloudWatch gave them.
    lines.sort_by_key(|(at, _)| *at);
    Ok(lines)
}

/// Where an environment's log groups live: `/ecs/<project>-<env>/<stack id>`, one group per ecs
/// stack ever created (they outlive their stacks; see infra/ecs.yaml).
pub fn environment_groups_prefix(env_prefix: &str) -> String {
    format!("/ecs/{env_prefix}/")
}

/// The names of the log groups under `prefix`.
pub async fn groups_under(
    logs: &aws_sdk_cloudwatchlogs::Client,
    prefix: &str,
) -> Result<Vec<String>> {
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix(prefix)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error)
        .with_context(|| format!("cannot list the log groups under {prefix}"))?;
    Ok(groups
        .iter()
        .filter_map(|g| g.log_group_name())
        .map(str::to_owned)
        .collect())
}

/// Delete log groups, events and all (one already gone is fine).
pub async fn delete_groups(logs: &aws_sdk_cloudwatchlogs::Client, names: &[String]) -> Result<()> {
    for name in names {
        match logs.delete_log_group().log_group_name(name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(e) => {
                return Err(aws_error(e)).with_context(|| format!("cannot delete log group {name}"))
            }
        }
    }
    Ok(())
}

/// `30s`, `10m`, `2h`, `1d`.
pub fn parse_since(text: &str) -> Result<Duration> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .with_context(|| format!("--since {text:?}: expected a number and a unit, like 10m"))?;
    let secs = match unit {
        "s" => n,
        "m" | "" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--since {text:?}: the unit must be s, m, h or d (like 10m)"),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::mock_sdk;
    use aws_sdk_cloudwatchlogs::operation::filter_log_events::{
        FilterLogEventsError, FilterLogEventsOutput,
    };
    use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
    use aws_sdk_cloudwatchlogs::Client;
    use aws_smithy_mocks::mock;

    fn page(events: &[(&str, i64, &str)], next: Option<&str>) -> FilterLogEventsOutput {
        FilterLogEventsOutput::builder()
            .set_events(Some(
                events
                    .iter()
                    .map(|(id, at, msg)| {
                        FilteredLogEvent::builder()
                            .event_id(*id)
                            .timestamp(*at)
                            .message(format!("{msg}\n"))
                            .build()
                    })
                    .collect(),
            ))
            .set_next_token(next.map(str::to_owned))
            .build()
    }

    #[tokio::test]
    async fn last_lines_reads_every_page_and_keeps_the_newest() {
        let pages = mock!(Client::filter_log_events)
            .sequence()
            .output(|| page(&[("b", 20, "second"), ("a", 10, "first")], Some("t1")))
            .output(|| {
                page(
                    &[("c", 30, "third"), ("d", 40, "panicked at main.rs")],
                    None,
                )
            })
            .build();
        let logs = mock_sdk!(aws_sdk_cloudwatchlogs, [&pages]);
        let lines = last_lines(&logs, "/ecs/demo-dev", 0, 3).await;
        assert_eq!(lines, ["second", "third", "panicked at main.rs"]);
        assert_eq!(pages.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_follow_prints_each_event_once_and_forgets_ids_it_cannot_meet_again() {
        let polls = mock!(Client::filter_log_events)
            .sequence()
            .output(|| page(&[("a", 1_000, "first"), ("b", 5_000, "second")], None))
            // The next poll starts a second before the newest event: "b" comes again.
            .output(|| page(&[("b", 5_000, "second"), ("c", 5_500, "third")], None))
            .build();
        let logs = mock_sdk!(aws_sdk_cloudwatchlogs, [&polls]);
        let mut seen = Seen::default();
        let text = |lines: Vec<(i64, String)>| -> Vec<String> {
            lines.into_iter().map(|(_, line)| line).collect()
        };
        let first = read(&logs, "g", 0, &mut seen).await.ok().unwrap();
        assert_eq!(text(first), ["first", "second"]);
        seen.forget_before(4_000);
        assert_eq!(
            seen.0.len(),
            1,
            "the id of an event before the window is kept"
        );
        let second = read(&logs, "g", 4_000, &mut seen).await.ok().unwrap();
        assert_eq!(text(second), ["third"]);
    }

    #[tokio::test]
    async fn a_missing_group_is_told_apart_from_other_failures() {
        let missing = mock!(Client::filter_log_events).then_error(|| {
            FilterLogEventsError::ResourceNotFoundException(
                aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException::builder()
                    .message("The specified log group does not exist")
                    .build(),
            )
        });
        let logs = mock_sdk!(aws_sdk_cloudwatchlogs, [&missing]);
        assert!(matches!(
            read(&logs, "g", 0, &mut Seen::default()).await,
            Err(Missing)
        ));
        assert!(last_lines(&logs, "g", 0, 5).await.is_empty());
    }

    #[tokio::test]
    async fn an_environments_log_groups_are_listed_across_pages_and_deleted() {
        use aws_sdk_cloudwatchlogs::operation::delete_log_group::{
            DeleteLogGroupError, DeleteLogGroupOutput,
        };
        use aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsOutput;
        use aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException;
        use aws_sdk_cloudwatchlogs::types::LogGroup;
        let group = |name: &str| LogGroup::builder().log_group_name(name).build();
        let list = mock!(Client::describe_log_groups)
            .match_requests(|r| r.log_group_name_prefix() == Some("/ecs/p-dev/"))
            .sequence()
            .output(move || {
                DescribeLogGroupsOutput::builder()
                    .log_groups(group("/ecs/p-dev/1"))
                    .next_token("more")
                    .build()
            })
            .output(move || {
                DescribeLogGroupsOutput::builder()
                    .log_groups(group("/ecs/p-dev/2"))
                    .build()
            })
            .build();
        let delete = mock!(Client::delete_log_group)
            .match_requests(|r| r.log_group_name() == Some("/ecs/p-dev/1"))
            .then_output(|| DeleteLogGroupOutput::builder().build());
        let gone = mock!(Client::delete_log_group)
            .match_requests(|r| r.log_group_name() == Some("/ecs/p-dev/2"))
            .then_error(|| {
                DeleteLogGroupError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().build(),
                )
            });
        let logs = mock_sdk!(aws_sdk_cloudwatchlogs, [&list, &delete, &gone]);
        let prefix = environment_groups_prefix("p-dev");
        let names = groups_under(&logs, &prefix).await.unwrap();
        assert_eq!(names, vec!["/ecs/p-dev/1", "/ecs/p-dev/2"]);
        delete_groups(&logs, &names).await.unwrap();
        assert_eq!((delete.num_calls(), gone.num_calls()), (1, 1));
    }

    #[test]
    fn since_takes_common_units() {
        assert_eq!(parse_since("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_since("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_since("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_since("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_since("soon").is_err());
        assert!(parse_since("5y")
            .unwrap_err()
            .to_string()
            .contains("s, m, h or d"));
    }
}
