//! `cargo xtask logs`: the service's CloudWatch logs, oldest first, optionally following.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::aws::aws_error;
use crate::flags;
use crate::project::StackKind;
use crate::session::Session;
use crate::ui::Ui;

pub async fn run(root: &Path, cmd: flags::Logs) -> Result<()> {
    let since = parse_since(&cmd.since)?;
    let s = Session::open(root, &cmd.target, Ui::new()).await?;
    let group = s
        .outputs(StackKind::Ecs)
        .await?
        .remove("LogGroupName")
        .with_context(|| {
            format!(
                "the ecs stack {} is not deployed: run `cargo xtask deploy{}` first",
                s.env.stack_name(StackKind::Ecs),
                s.flag_suffix()
            )
        })?;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&s.config);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let mut start = now_ms - since.as_millis() as i64;
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let mut token = None;
        let mut newest = start;
        loop {
            let out = logs
                .filter_log_events()
                .log_group_name(&group)
                .start_time(start)
                .set_next_token(token)
                .send()
                .await
                .map_err(aws_error)
                .with_context(|| format!("cannot read log group {group}"))?;
            let mut events: Vec<_> = out.events().to_vec();
            events.sort_by_key(|e| e.timestamp().unwrap_or_default());
            for e in events {
                let id = e.event_id().unwrap_or_default().to_owned();
                if !seen.insert(id) {
                    continue;
                }
                newest = newest.max(e.timestamp().unwrap_or_default());
                println!("{}", e.message().unwrap_or_default().trim_end());
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        if !cmd.follow {
            return Ok(());
        }
        // Overlap by a second: late events with an earlier timestamp are caught, `seen` drops repeats.
        start = newest - 1000;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
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
