//! Lambda figures without Lambda: the real function binary against the workspace's fake
//! Runtime API (`testkit::lambda`) on 127.0.0.1. Cold init is process spawn → its first
//! `GET .../invocation/next`; warm latency is handing out an event on `/next` → the
//! function's `POST .../response`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::lambda::{Answer, FakeRuntime, function_command, spawn_function};
use testkit::process::Killed;

use crate::Error;
use crate::stats::{ms, percentile};

pub struct Options {
    pub bin: PathBuf,
    pub event: String,
    pub starts: usize,
    pub warm: usize,
}

/// Replaced in the event text by the invocation's own number, and its source address
/// (`requestContext.http.sourceIp`) moved to a network of its own: what a create or a
/// registration needs to succeed every time rather than price its 409 or 429.
const SEQUENCE: &str = "REPLACE_WITH_SEQUENCE";

/// The event of invocation `n`.
fn numbered(event: &str, n: usize) -> Result<Value, Error> {
    let mut event: Value = serde_json::from_str(&event.replace(SEQUENCE, &n.to_string()))?;
    if let Some(ip) = event.pointer_mut("/requestContext/http/sourceIp") {
        *ip = Value::String(format!("10.{}.{}.1", (n >> 8) & 0xff, n & 0xff));
    }
    Ok(event)
}

/// How long the function may stay silent before the run fails.
const SILENCE: Duration = Duration::from_secs(10);

/// One execution environment: the fake API plus the function process. Fields drop in
/// order: the function (only the process this bench spawned) before its Runtime API.
struct Env {
    child: Killed,
    runtime: FakeRuntime,
    spawned: Instant,
}

async fn start(bin: &Path, function: &str) -> Result<Env, Error> {
    let runtime = FakeRuntime::start(function, Vec::new()).await?;
    let spawned = Instant::now();
    let child = spawn_function(
        function_command(bin, function, runtime.address)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
            .stdin(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    Ok(Env { child, runtime, spawned })
}

impl Env {
    fn silent(&mut self) -> Error {
        let exited = self.child.0.try_wait().ok().flatten();
        format!("function did not call the Runtime API within 10 s (exit: {exited:?})").into()
    }

    /// When the function next asked for an invocation.
    async fn wait_next(&mut self) -> Result<Instant, Error> {
        match tokio::time::timeout(SILENCE, self.runtime.polls.recv()).await {
            Ok(Some(at)) => Ok(at),
            Ok(None) => Err("fake Runtime API closed".into()),
            Err(_) => Err(self.silent()),
        }
    }

    /// Hands out one event and waits for its answer: (latency, HTTP status in the answer).
    async fn invoke(&mut self, id: usize, event: Value) -> Result<(Duration, u16), Error> {
        let sent = Instant::now();
        self.runtime.invoke(&format!("bench-{id}"), event);
        let Answer { id, body, at } = match tokio::time::timeout(SILENCE, self.runtime.answers.recv()).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return Err("fake Runtime API closed".into()),
            Err(_) => return Err(self.silent()),
        };
        if id.ends_with(" ERROR") {
            let body = body.as_str().map_or_else(|| body.to_string(), str::to_owned);
            return Err(format!("function reported an error: {body}").into());
        }
        // An HTTP function answers with its statusCode; any other function's answer is a
        // success (200 here).
        let status = body.get("statusCode").and_then(Value::as_u64).map_or(200, |s| s as u16);
        Ok((at - sent, status))
    }

    fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

pub async fn run(opts: Options) -> Result<serde_json::Value, Error> {
    let function = opts.bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "function".into());
    let size = std::fs::metadata(&opts.bin)?.len();
    // Parsed once, unless each invocation gets its own number.
    let fixed: Option<Value> =
        if opts.event.contains(SEQUENCE) { None } else { Some(serde_json::from_str(&opts.event)?) };
    let mut invocations = 0..;
    let mut next_event = || match &fixed {
        Some(event) => Ok(event.clone()),
        None => numbered(&opts.event, invocations.next().unwrap_or_default()),
    };
    let mut cold_us = Vec::new();
    let mut rss_kb = Vec::new();
    let mut first_status = Vec::new();
    let mut warm_us = Vec::new();
    let mut warm_statuses = std::collections::BTreeMap::<u16, u64>::new();
    for i in 0..opts.starts.max(1) {
        let mut env = start(&opts.bin, &function).await?;
        let first_next = env.wait_next().await?;
        cold_us.push((first_next - env.spawned).as_micros() as u64);
        let (_, status) = env.invoke(0, next_event()?).await?;
        first_status.push(status);
        env.wait_next().await?;
        if let Some(kb) = env.rss_kb() {
            rss_kb.push(kb);
        }
        // Warm invocations in the last environment only: one environment, one request at a time.
        if i + 1 == opts.starts.max(1) {
            for n in 0..opts.warm {
                let (lat, status) = env.invoke(n + 1, next_event()?).await?;
                warm_us.push(lat.as_micros() as u64);
                *warm_statuses.entry(status).or_default() += 1;
                env.wait_next().await?;
            }
        }
    }
    cold_us.sort_unstable();
    rss_kb.sort_unstable();
    warm_us.sort_unstable();
    Ok(json!({
        "function": function,
        "size_bytes": size,
        "size_mb": size as f64 / 1_048_576.0,
        "starts": cold_us.len(),
        "cold_init_p50_ms": percentile(&cold_us, 50.0).map(ms),
        "cold_init_p90_ms": percentile(&cold_us, 90.0).map(ms),
        "first_invocation_statuses": first_status,
        "rss_mb": percentile(&rss_kb, 50.0).map(|kb| kb as f64 / 1024.0),
        "rss_max_mb": rss_kb.last().map(|kb| *kb as f64 / 1024.0),
        "warm_invocations": warm_us.len(),
        "warm_statuses": warm_statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "warm_p50_ms": percentile(&warm_us, 50.0).map(ms),
        "warm_p99_ms": percentile(&warm_us, 99.0).map(ms),
    }))
}
