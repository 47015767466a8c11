//! Stack events as a stream with a cursor: each poll returns only the events not seen yet,
//! oldest first, and renders them as progress lines.

use anyhow::{Context, Result};
use aws_sdk_cloudformation::types::StackEvent;
use aws_sdk_cloudformation::Client;

/// Remembers the newest event already shown.
#[derive(Debug, Default)]
pub struct Cursor {
    last_seen: Option<String>,
}

impl Cursor {
    /// Start after the stack's current newest event, so only events caused by us are shown.
    pub async fn at_latest(cfn: &Client, stack: &str) -> Result<Cursor> {
        let page = cfn
            .describe_stack_events()
            .stack_name(stack)
            .send()
            .await
            .with_context(|| format!("cannot read the events of stack {stack}"))?;
        Ok(Cursor {
            last_seen: page
                .stack_events()
                .first()
                .and_then(|e| e.event_id())
                .map(str::to_owned),
        })
    }

    /// The events that happened since the last poll, oldest first.
    pub async fn poll(&mut self, cfn: &Client, stack: &str) -> Result<Vec<StackEvent>> {
        let mut fresh = Vec::new();
        let mut token = None;
        // A deploy rarely produces more than a page between two polls; stop after a few pages anyway.
        for _ in 0..5 {
            let page = cfn
                .describe_stack_events()
                .stack_name(stack)
                .set_next_token(token)
                .send()
                .await
                .with_context(|| format!("cannot read the events of stack {stack}"))?;
            let (new, reached) = take_new(page.stack_events(), self.last_seen.as_deref());
            fresh.extend(new);
            token = page.next_token().map(str::to_owned);
            if reached || token.is_none() {
                break;
            }
        }
        fresh.reverse();
        if let Some(newest) = fresh.last().and_then(|e| e.event_id()) {
            self.last_seen = Some(newest.to_owned());
        }
        Ok(fresh)
    }
}

/// From a newest-first page, the events newer than `last_seen` (still newest first), and whether
/// `last_seen` was found on this page.
pub fn take_new(page: &[StackEvent], last_seen: Option<&str>) -> (Vec<StackEvent>, bool) {
    let mut new = Vec::new();
    for event in page {
        if last_seen.is_some() && event.event_id() == last_seen {
            return (new, true);
        }
        new.push(event.clone());
    }
    (new, false)
}

/// `  vpc   PublicSubnet1  AWS::EC2::Subnet  CREATE_COMPLETE`, plus the reason on failures.
pub fn format_event(label: &str, event: &StackEvent) -> String {
    let status = event.resource_status().map(|s| s.as_str()).unwrap_or("?");
    let mut line = format!(
        "  {label:<4} {:<28} {:<42} {status}",
        event.logical_resource_id().unwrap_or("?"),
        event.resource_type().unwrap_or("?"),
    );
    if let Some(reason) = event
        .resource_status_reason()
        .filter(|_| status.contains("FAILED"))
    {
        line.push_str(&format!("\n         └ {reason}"));
    }
    line
}

/// What a stack operation is waiting on, from its events so far (oldest first): a resource still
/// in progress (a slow kind first, with what to expect of it), and how many more are.
fn waiting_on(events: &[StackEvent]) -> Option<String> {
    // (logical id, type) of the resources in progress, in the order they started.
    let mut busy: Vec<(&str, &str)> = Vec::new();
    for e in events {
        let (Some(id), Some(ty), Some(status)) = (
            e.logical_resource_id(),
            e.resource_type(),
            e.resource_status(),
        ) else {
            continue;
        };
        if is_the_stack(e) {
            continue;
        }
        let at = busy.iter().position(|(b, _)| *b == id);
        match (status.as_str().ends_with("_IN_PROGRESS"), at) {
            (true, None) => busy.push((id, ty)),
            (false, Some(i)) => {
                busy.remove(i);
            }
            _ => {}
        }
    }
    let (id, ty) = busy
        .iter()
        .find(|(_, ty)| slow_kind(ty).is_some())
        .or(busy.first())?;
    let more = match busy.len() - 1 {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Some(match slow_kind(ty) {
        Some(expect) => format!("waiting on {id}{more} ({expect})"),
        None => format!("waiting on {id}{more}"),
    })
}

/// `state` (what the progress line said so far), followed by what the stack waits on, if known.
pub fn with_wait(state: String, events: &[StackEvent]) -> String {
    match waiting_on(events) {
        Some(waiting) => format!("{state}: {waiting}"),
        None => state,
    }
}

/// What to expect of a resource type that keeps a stack waiting for minutes on AWS.
fn slow_kind(resource_type: &str) -> Option<&'static str> {
    Some(match resource_type {
        "AWS::CloudFront::Distribution" => "CloudFront distributions take several minutes",
        "AWS::ElasticLoadBalancingV2::LoadBalancer" => "load balancers take a few minutes",
        "AWS::EC2::VPCEndpoint" => "interface endpoints take a minute or two",
        "AWS::ECS::Service" => "CloudFormation waits for its new tasks to pass their health checks",
        _ => return None,
    })
}

/// The first failed resource and its reason, skipping the cascade of cancellations after it; or,
/// when no resource failed for a reason of its own, why the stack began to roll back (a change
/// to an export another stack imports fails the stack itself, not a resource).
pub fn first_failure(events: &[StackEvent]) -> Option<String> {
    let rollback_began = || {
        events.iter().find(|e| {
            is_the_stack(e)
                && e.resource_status()
                    .is_some_and(|s| s.as_str().ends_with("ROLLBACK_IN_PROGRESS"))
                && e.resource_status_reason().is_some()
        })
    };
    first_real_failure(events)
        .or_else(rollback_began)
        .or_else(|| events.iter().find(failed))
        .map(failure)
}

/// Whether the event is the stack's own, not one of its resources'.
pub fn is_the_stack(event: &StackEvent) -> bool {
    event.resource_type() == Some("AWS::CloudFormation::Stack")
}

/// A failed resource and its reason: `Logical (Type): reason`.
pub fn failure(event: &StackEvent) -> String {
    format!(
        "{} ({}): {}",
        event.logical_resource_id().unwrap_or("?"),
        event.resource_type().unwrap_or("?"),
        event.resource_status_reason().unwrap_or("no reason given")
    )
}

fn failed(e: &&StackEvent) -> bool {
    e.resource_status()
        .is_some_and(|s| s.as_str().ends_with("_FAILED"))
}

/// The first failed event whose reason is not a cancellation.
fn first_real_failure(events: &[StackEvent]) -> Option<&StackEvent> {
    let cancelled = |e: &&StackEvent| {
        e.resource_status_reason()
            .is_some_and(|r| r.contains("cancelled") || r.contains("canceled"))
    };
    events.iter().filter(failed).find(|e| !cancelled(e))
}

/// The event of the first failed resource, skipping the cancellations after it.
pub fn first_failed(events: &[StackEvent]) -> Option<&StackEvent> {
    first_real_failure(events).or_else(|| events.iter().find(failed))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::ResourceStatus;

    pub fn event(id: &str, logical: &str, status: &str, reason: Option<&str>) -> StackEvent {
        StackEvent::builder()
            .event_id(id)
            .stack_id("arn:stack")
            .stack_name("s")
            .logical_resource_id(logical)
            .resource_type("AWS::EC2::Subnet")
            .resource_status(ResourceStatus::from(status))
            .set_resource_status_reason(reason.map(str::to_owned))
            .timestamp(aws_sdk_cloudformation::primitives::DateTime::from_secs(0))
            .build()
    }

    /// An event of resource `logical` of type `ty`.
    fn of_type(id: &str, logical: &str, ty: &str, status: &str) -> StackEvent {
        let mut e = event(id, logical, status, None);
        e.resource_type = Some(ty.into());
        e
    }

    #[test]
    fn the_wait_names_a_slow_resource_in_progress_and_what_to_expect() {
        const CF: &str = "AWS::CloudFront::Distribution";
        let mut events = vec![
            of_type("1", "s", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS"),
            event("2", "Subnet", "CREATE_IN_PROGRESS", None),
        ];
        assert_eq!(waiting_on(&events).as_deref(), Some("waiting on Subnet"));
        events.push(of_type("3", "Distribution", CF, "CREATE_IN_PROGRESS"));
        events.push(event("4", "Other", "CREATE_IN_PROGRESS", None));
        assert_eq!(
            waiting_on(&events).as_deref(),
            Some("waiting on Distribution and 2 more (CloudFront distributions take several minutes)")
        );
        events.push(of_type("5", "Distribution", CF, "CREATE_COMPLETE"));
        events.push(event("6", "Subnet", "CREATE_COMPLETE", None));
        assert_eq!(waiting_on(&events).as_deref(), Some("waiting on Other"));
        assert_eq!(
            with_wait("UPDATE_IN_PROGRESS".into(), &events),
            "UPDATE_IN_PROGRESS: waiting on Other"
        );
        events.push(event("7", "Other", "CREATE_FAILED", None));
        assert_eq!(waiting_on(&events), None);
        assert_eq!(
            with_wait("UPDATE_IN_PROGRESS".into(), &events),
            "UPDATE_IN_PROGRESS"
        );
    }

    #[test]
    fn takes_only_events_newer_than_the_cursor() {
        let page = [
            event("3", "C", "CREATE_COMPLETE", None),
            event("2", "B", "CREATE_COMPLETE", None),
            event("1", "A", "CREATE_COMPLETE", None),
        ];
        let (new, reached) = take_new(&page, Some("2"));
        assert!(reached);
        assert_eq!(
            new.iter()
                .map(|e| e.event_id().unwrap())
                .collect::<Vec<_>>(),
            ["3"]
        );
        let (all, reached) = take_new(&page, None);
        assert!(!reached);
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn the_first_real_failure_wins_over_cancellations() {
        // Oldest first, as `Cursor::poll` returns them.
        let events = [
            event("1", "Vpc", "CREATE_IN_PROGRESS", None),
            event(
                "2",
                "Subnet",
                "CREATE_FAILED",
                Some("The CIDR '10.0.0.0/8' is invalid."),
            ),
            event(
                "3",
                "Igw",
                "CREATE_FAILED",
                Some("Resource creation cancelled"),
            ),
        ];
        assert_eq!(
            first_failure(&events).unwrap(),
            "Subnet (AWS::EC2::Subnet): The CIDR '10.0.0.0/8' is invalid."
        );
        let only_cancelled = [event(
            "3",
            "Igw",
            "CREATE_FAILED",
            Some("Resource creation cancelled"),
        )];
        assert!(first_failure(&only_cancelled).unwrap().starts_with("Igw"));
        assert_eq!(first_failure(&events[..1]), None);
    }

    #[test]
    fn a_stack_that_fails_by_itself_says_why_it_rolls_back() {
        let in_use = "Export p-dev-VpcId cannot be updated as it is in use by p-dev-ecs";
        let rollback = |reason: &str| {
            let mut e = of_type(
                "9",
                "p-dev-vpc",
                "AWS::CloudFormation::Stack",
                "UPDATE_ROLLBACK_IN_PROGRESS",
            );
            e.resource_status_reason = Some(reason.into());
            e
        };
        let events = [
            event("1", "Vpc", "UPDATE_COMPLETE", None),
            rollback(in_use),
            event("10", "Vpc", "UPDATE_COMPLETE", None),
        ];
        assert_eq!(
            first_failure(&events).unwrap(),
            format!("p-dev-vpc (AWS::CloudFormation::Stack): {in_use}")
        );
        // A resource's own failure still comes first.
        let resource_failed = [
            event("1", "Subnet", "UPDATE_FAILED", Some("bad cidr")),
            rollback("The following resource(s) failed to update: [Subnet]."),
        ];
        assert!(first_failure(&resource_failed)
            .unwrap()
            .starts_with("Subnet"));
    }

    #[test]
    fn failure_lines_carry_the_reason() {
        let line = format_event(
            "vpc",
            &event("2", "Subnet", "CREATE_FAILED", Some("bad cidr")),
        );
        assert!(
            line.contains("Subnet")
                && line.contains("CREATE_FAILED")
                && line.ends_with("└ bad cidr"),
            "{line}"
        );
        let ok = format_event(
            "vpc",
            &event("1", "Subnet", "CREATE_COMPLETE", Some("ignored")),
        );
        assert!(!ok.contains("ignored"));
    }
}
