//! The `Schedule` event: invokes the function with EventBridge's "Scheduled Event" once
//! per period, the first one a period after start (as a new rule fires).

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::invoke::Invoker;
use crate::template::ScheduleSource;

pub async fn run(source: ScheduleSource, period: Duration, region: String, invoker: Invoker) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match invoker.invoke(&source.function, &event(&source.rule, &region)).await {
            Ok(answer) => tracing::info!(function = %source.function, %answer, "scheduled invocation"),
            Err(err) => tracing::warn!(error = %err, "scheduled invocation failed"),
        }
    }
}

pub fn event(rule: &str, region: &str) -> Value {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now.format(&Rfc3339).unwrap_or_default(),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:000000000000:rule/{rule}")],
        "detail": {},
    })
}
