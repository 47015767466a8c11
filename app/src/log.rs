//! Structured logs: one JSON object per line on stdout (CloudWatch Logs keeps each line as one event).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

/// One line for a served request. `trace_id` is the load balancer's `X-Amzn-Trace-Id` when the
/// request came through one: the same id is in its access logs and in X-Ray.
pub fn request(method: &str, path: &str, status: u16, elapsed: Duration, trace_id: Option<&str>) {
    let mut line = json!({
        "ts": now_rfc3339(),
        "level": "info",
        "msg": "request",
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
    });
    if let Some(id) = trace_id {
        line["trace_id"] = id.into();
    }
    emit(line);
}

/// One line for a lifecycle event (start, shutdown, ...).
pub fn event(level: &str, msg: &str) {
    emit(json!({ "ts": now_rfc3339(), "level": level, "msg": msg }));
}

fn emit(value: serde_json::Value) {
    let mut line = value.to_string();
    line.push('\n');
    // One write per line so concurrent requests never interleave inside a line.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// Current UTC time as RFC 3339 with milliseconds, without a date-time dependency.
pub fn now_rfc3339() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(since)
}

/// Format a duration since the Unix epoch as `YYYY-MM-DDThh:mm:ss.mmmZ`.
pub fn format_rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        assert_eq!(
            format_rfc3339(Duration::from_millis(1_709_210_096_789)),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(
            format_rfc3339(Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59.000Z"
        );
    }
}
