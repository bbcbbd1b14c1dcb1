//! Metrics as CloudWatch Embedded Metric Format (EMF) log lines: one JSON line on stdout
//! per invocation (per request locally), which CloudWatch Logs turns into metrics. No SDK
//! call and no background task: a handler only adds to counters in memory, and the line is
//! formatted and written when the invocation ends.
//!
//! [`scope`] runs one invocation with its [`Correlation`] (request id, X-Ray trace id) in
//! a task-local; [`count`], [`add`], [`observe`] and [`timed`] record into it from anywhere
//! below (handlers, store, outbox, worker) and do nothing outside a scope (unit tests, the
//! migrate command). Names and units are the closed [`Metric`] enum: a typo cannot create a
//! new (paid) custom metric. The only dimension is `Service`; the ids and the function name
//! are plain properties, never dimensions (each value of a dimension is a metric of its own).
//!
//! `METRICS=off` (read once, at start) keeps the ids, which the outbox carries to the mail,
//! and drops the rest: nothing is recorded or timed, and no line is written.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::io::Write as _;

use crate::config::{ConfigError, Env, MetricsSettings, ProcessEnv};

/// Every metric the store emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Orders committed (an idempotent replay is not a new order).
    OrdersPlaced,
    /// Lines of the orders placed.
    OrderLines,
    /// Units of the orders placed.
    UnitsSold,
    /// Orders refused with `out_of_stock`.
    OutOfStock,
    /// Orders and registrations answered from their Idempotency-Key.
    IdempotentReplays,
    Registrations,
    LoginsOk,
    /// Wrong email or password.
    LoginsFailed,
    /// Refused by the login rate limits.
    LoginsThrottled,
    /// Mails sent, every kind (welcome, order confirmation, cancellation).
    MailsSent,
    /// Sends that failed and go back to the queue for another try.
    MailsFailed,
    /// Messages moved to the dead letters, once each: a failure on the last delivery the
    /// queue allows, or a malformed message a Redis stream takes at once.
    MailsDeadLettered,
    /// 1 on the first invocation of an execution environment (of the process locally).
    ColdStart,
    /// The whole invocation, as this code sees it.
    Latency,
    /// Time spent waiting for a database connection from the pool.
    PoolWait,
    /// Time spent in database statements (every statement through `db::Executor`).
    DatabaseTime,
    /// Orders and stock changes run again after a serialization failure or deadlock.
    TransactionRetries,
    /// Outbox row written → queue acknowledged (each message published).
    PublishLag,
    /// Outbox row written → mail sent (each mail sent).
    MailLag,
}

impl Metric {
    pub const ALL: [Metric; 19] = [
        Self::OrdersPlaced,
        Self::OrderLines,
        Self::UnitsSold,
        Self::OutOfStock,
        Self::IdempotentReplays,
        Self::Registrations,
        Self::LoginsOk,
        Self::LoginsFailed,
        Self::LoginsThrottled,
        Self::MailsSent,
        Self::MailsFailed,
        Self::MailsDeadLettered,
        Self::ColdStart,
        Self::Latency,
        Self::PoolWait,
        Self::DatabaseTime,
        Self::TransactionRetries,
        Self::PublishLag,
        Self::MailLag,
    ];

    /// The metric's name in CloudWatch and the line's member holding its value.
    pub fn name(self) -> &'static str {
        match self {
            Self::OrdersPlaced => "OrdersPlaced",
            Self::OrderLines => "OrderLines",
            Self::UnitsSold => "UnitsSold",
            Self::OutOfStock => "OutOfStock",
            Self::IdempotentReplays => "IdempotentReplays",
            Self::Registrations => "Registrations",
            Self::LoginsOk => "LoginsOk",
            Self::LoginsFailed => "LoginsFailed",
            Self::LoginsThrottled => "LoginsThrottled",
            Self::MailsSent => "MailsSent",
            Self::MailsFailed => "MailsFailed",
            Self::MailsDeadLettered => "MailsDeadLettered",
            Self::ColdStart => "ColdStart",
            Self::Latency => "Latency",
            Self::PoolWait => "PoolWait",
            Self::DatabaseTime => "DatabaseTime",
            Self::TransactionRetries => "TransactionRetries",
            Self::PublishLag => "PublishLag",
            Self::MailLag => "MailLag",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Latency | Self::PoolWait | Self::DatabaseTime | Self::PublishLag | Self::MailLag => "Milliseconds",
            _ => "Count",
        }
    }

    /// Lags are kept one value per message (a batch of mails has several); the others sum.
    fn per_event(self) -> bool {
        matches!(self, Self::PublishLag | Self::MailLag)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which request a log line, a metric line or a mail belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    pub request_id: String,
    /// The X-Ray trace id (`1-5759e988-bd862e3fe1be46a994272793`), without `Parent`/`Sampled`.
    pub trace_id: String,
}

impl Correlation {
    /// From a Lambda context's `xray_trace_id` or an `X-Amzn-Trace-Id` header when there is
    /// one (`Root=1-...;Parent=...;Sampled=0`), else a new id in X-Ray's format.
    pub fn new(request_id: String, trace_header: Option<&str>) -> Self {
        let trace_id = trace_header.and_then(trace_root).unwrap_or_else(new_trace_id);
        Self { request_id, trace_id }
    }
}

impl Correlation {
    /// The request id and trace id of `caused_by`, as the outbox row stores them (none
    /// outside a request).
    pub fn ids(caused_by: Option<&Self>) -> (Option<&str>, Option<&str>) {
        (caused_by.map(|c| c.request_id.as_str()), caused_by.map(|c| c.trace_id.as_str()))
    }

    /// New ids, for work no request started (the local worker's batches).
    pub fn generated() -> Self {
        Self::new(uuid::Uuid::new_v4().to_string(), None)
    }
}

/// The `Root` of an X-Ray trace header, when it is a well-formed trace id.
fn trace_root(header: &str) -> Option<String> {
    let root = header.split(';').find_map(|part| part.trim().strip_prefix("Root="))?;
    let well_formed = root.len() == 35
        && root.starts_with("1-")
        && root.as_bytes()[10] == b'-'
        && root.chars().enumerate().all(|(i, c)| matches!(i, 1 | 10) || c.is_ascii_hexdigit());
    well_formed.then(|| root.to_owned())
}

/// `1-{epoch seconds, 8 hex}-{96 random bits, 24 hex}`, as X-Ray makes them.
fn new_trace_id() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("1-{:08x}-{}", seconds & 0xffff_ffff, &random[..24])
}

struct Invocation {
    correlation: Correlation,
    /// `None` when metrics are off.
    values: Option<Mutex<Values>>,
}

/// What one invocation recorded: a sum per metric, in place, and the lags one value each.
/// No allocation until a lag is observed.
#[derive(Default, Clone)]
struct Values {
    sums: [Option<f64>; Metric::ALL.len()],
    lags: Vec<(Metric, f64)>,
}

impl Values {
    fn record(&mut self, metric: Metric, value: f64) {
        if metric.per_event() {
            // EMF holds at most 100 values per metric.
            if self.lags.iter().filter(|(m, _)| *m == metric).count() < 100 {
                self.lags.push((metric, value));
            }
        } else {
            let sum = &mut self.sums[metric.index()];
            *sum = Some(sum.unwrap_or(0.0) + value);
        }
    }

    fn recorded(&self, metric: Metric) -> bool {
        self.sums[metric.index()].is_some() || self.lags.iter().any(|(m, _)| *m == metric)
    }
}

tokio::task_local! {
    static CURRENT: Arc<Invocation>;
}

static SETTINGS: OnceLock<MetricsSettings> = OnceLock::new();
static WARM: AtomicBool = AtomicBool::new(false);

/// Reads the settings once per process (at init, so a bad value stops it).
pub fn init(env: &impl Env) -> Result<(), ConfigError> {
    let settings = MetricsSettings::from_env(env)?;
    let _ = SETTINGS.set(settings);
    Ok(())
}

/// Runs `invocation` with its metrics and ids, then writes its EMF line on stdout.
pub async fn scope<F: Future>(correlation: Correlation, invocation: F) -> F::Output {
    let settings = SETTINGS.get_or_init(|| MetricsSettings::from_env(&ProcessEnv).unwrap_or_default());
    if !settings.enabled {
        return CURRENT.scope(Arc::new(Invocation { correlation, values: None }), invocation).await;
    }
    let started = Instant::now();
    let current = Arc::new(Invocation { correlation, values: Some(Mutex::new(Default::default())) });
    if !WARM.swap(true, Ordering::Relaxed) {
        record(&current, Metric::ColdStart, 1.0);
    }
    let output = CURRENT.scope(current.clone(), invocation).await;
    record(&current, Metric::Latency, millis(started));
    if let Some(values) = &current.values {
        // The invocation is over: its values are read in place, not copied.
        let values = values.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = line(settings, &current.correlation, &values, now_ms());
        // One write of the whole line, so it is never interleaved with a log line. A log
        // line that cannot be written has nowhere to report that.
        let _ = std::io::stdout().lock().write_all(&line);
    }
    output
}

/// The current invocation's ids, for the outbox message it writes.
pub fn correlation() -> Option<Correlation> {
    CURRENT.try_with(|current| current.correlation.clone()).ok()
}

/// Adds 1 to `metric`.
pub fn count(metric: Metric) {
    add(metric, 1.0);
}

/// Adds `value` to `metric` (or keeps it as one more observation of a lag).
pub fn add(metric: Metric, value: f64) {
    let _ = CURRENT.try_with(|current| record(current, metric, value));
}

/// One observation of a lag: from `since_ms` (milliseconds since the epoch) to now.
pub fn observe_since(metric: Metric, since_ms: Option<i64>) {
    if let Some(since) = since_ms {
        add(metric, (now_ms() - since).max(0) as f64);
    }
}

/// Awaits `future`, adding the time it took to `metric` (not even reading the clock when
/// nothing is recorded).
pub async fn timed<F: Future>(metric: Metric, future: F) -> F::Output {
    let recording = CURRENT.try_with(|current| current.values.is_some()).unwrap_or(false);
    let started = recording.then(Instant::now);
    let output = future.await;
    if let Some(started) = started {
        add(metric, millis(started));
    }
    output
}

fn record(current: &Invocation, metric: Metric, value: f64) {
    let Some(values) = &current.values else { return };
    if let Ok(mut values) = values.lock() {
        values.record(metric, value);
    }
}

fn millis(started: Instant) -> f64 {
    (started.elapsed().as_micros() as f64 / 1000.0).round()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// The EMF line, newline included: the `_aws` directive naming each metric recorded, the
/// `Service` dimension, each metric's value (a number, or an array for lags), and the ids as
/// properties. Written straight into one buffer (it was a `serde_json::Value` tree: a map
/// and strings per member, about 28 µs of server CPU per order with the write, bench/README.md
/// session 7); only the configured and request strings need JSON escaping.
fn line(settings: &MetricsSettings, correlation: &Correlation, values: &Values, timestamp: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(640);
    let _ = write!(out, "{{\"_aws\":{{\"Timestamp\":{timestamp},\"CloudWatchMetrics\":[{{\"Namespace\":");
    json_str(&mut out, &settings.namespace);
    out.extend_from_slice(b",\"Dimensions\":[[\"Service\"]],\"Metrics\":[");
    let recorded = || Metric::ALL.into_iter().filter(|m| values.recorded(*m));
    for (i, metric) in recorded().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(out, "{comma}{{\"Name\":\"{}\",\"Unit\":\"{}\"}}", metric.name(), metric.unit());
    }
    out.extend_from_slice(b"]}]}");
    for metric in recorded() {
        let _ = write!(out, ",\"{}\":", metric.name());
        match values.sums[metric.index()] {
            Some(sum) => json_number(&mut out, sum),
            None => {
                out.push(b'[');
                let lags = values.lags.iter().filter(|(m, _)| *m == metric);
                for (i, (_, value)) in lags.enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_number(&mut out, *value);
                }
                out.push(b']');
            }
        }
    }
    for (name, value) in [
        ("Service", &settings.service),
        ("Function", &settings.function),
        ("RequestId", &correlation.request_id),
        ("TraceId", &correlation.trace_id),
    ] {
        let _ = write!(out, ",\"{name}\":");
        json_str(&mut out, value);
    }
    out.extend_from_slice(b"}\n");
    out
}

fn json_str(out: &mut Vec<u8>, value: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Counts and rounded milliseconds: finite, and printed without a fraction when integral.
fn json_number(out: &mut Vec<u8>, value: f64) {
    let value = if value.is_finite() { value } else { 0.0 };
    let _ = write!(out, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn trace_ids_are_taken_from_the_header_root_or_made() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(Correlation::new("r".into(), Some(header)).trace_id, "1-5759e988-bd862e3fe1be46a994272793");
        for bad in [None, Some("Root=1-zz;Sampled=1"), Some("Sampled=1"), Some("Root=<script>")] {
            let made = Correlation::new("r".into(), bad).trace_id;
            assert!(trace_root(&format!("Root={made}")).is_some(), "{made}");
        }
    }

    #[tokio::test]
    async fn one_invocation_sums_counters_and_keeps_each_lag() {
        let current = Arc::new(Invocation {
            correlation: Correlation { request_id: "req-1".into(), trace_id: new_trace_id() },
            values: Some(Mutex::new(Default::default())),
        });
        CURRENT
            .scope(current.clone(), async {
                count(Metric::OrdersPlaced);
                add(Metric::UnitsSold, 2.0);
                add(Metric::UnitsSold, 3.0);
                add(Metric::MailLag, 40.0);
                add(Metric::MailLag, 70.0);
            })
            .await;
        let settings = MetricsSettings {
            enabled: true,
            namespace: "GameStore".into(),
            service: "gamestore".into(),
            function: "create-order".into(),
        };
        let values =
            current.values.as_ref().map(|v| v.lock().map(|v| v.clone()).unwrap_or_default()).unwrap_or_default();
        let line = line(&settings, &current.correlation, &values, 1);
        assert_eq!(line.last(), Some(&b'\n'), "one line");
        let line: Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(line["OrdersPlaced"], 1.0);
        assert_eq!(line["UnitsSold"], 5.0);
        assert_eq!(line["MailLag"], json!([40, 70]));
        assert_eq!(line["RequestId"], "req-1");
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .map(|all| all.iter().filter_map(|m| m["Name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["OrdersPlaced", "UnitsSold", "MailLag"]);
        assert!(line.get("Registrations").is_none(), "only what was recorded: {line}");
    }

    #[test]
    fn the_line_escapes_what_it_did_not_write() {
        let settings = MetricsSettings {
            enabled: true,
            namespace: "Game\"Store".into(),
            service: "svc\\".into(),
            function: "f\n".into(),
        };
        let correlation = Correlation { request_id: "r\"}\u{1}\n".into(), trace_id: new_trace_id() };
        let mut values = Values::default();
        values.record(Metric::Latency, 1.5);
        let line = line(&settings, &correlation, &values, 1);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let line: Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(line["RequestId"], "r\"}\u{1}\n");
        assert_eq!(line["Function"], "f\n");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Game\"Store");
        assert_eq!(line["Latency"], 1.5);
    }

    #[test]
    fn outside_an_invocation_nothing_is_recorded() {
        count(Metric::OrdersPlaced);
        assert!(correlation().is_none());
    }
}
