//! Lambda figures without Lambda: a fake Runtime API on 127.0.0.1 that the real function
//! binary talks to. Cold init is process spawn → its first `GET .../invocation/next`; warm
//! latency is handing out an event on `/next` → the function's `POST .../response`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

use crate::Error;
use crate::stats::{ms, percentile};

pub struct Options {
    pub bin: PathBuf,
    pub event: String,
    pub starts: usize,
    pub warm: usize,
}

type Body = BoxBody<Bytes, Infallible>;

enum Signal {
    Next(Instant),
    Response { status: u16, at: Instant, body: Bytes },
}

struct Fake {
    signals: mpsc::UnboundedSender<Signal>,
    events: Mutex<mpsc::UnboundedReceiver<(String, Bytes)>>,
    function: String,
}

fn empty(status: u16) -> Response<Body> {
    let mut resp = Response::new(Empty::new().boxed());
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp
}

async fn handle(fake: Rc<Fake>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if method == hyper::Method::POST && path == "/2020-01-01/extension/register" {
        // lambda_runtime's graceful-shutdown helper registers an internal extension first.
        let body = json!({ "functionName": fake.function, "functionVersion": "$LATEST", "handler": "bootstrap" });
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
        resp.headers_mut()
            .insert("lambda-extension-identifier", hyper::header::HeaderValue::from_static("bench-ext-1"));
        return Ok(resp);
    }
    if path == "/2020-01-01/extension/event/next" {
        // Real Lambda holds this until SHUTDOWN; nothing is ever delivered here.
        std::future::pending::<()>().await;
    }
    if method == hyper::Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        let _ = fake.signals.send(Signal::Next(Instant::now()));
        let next = fake.events.lock().await.recv().await;
        let Some((id, body)) = next else {
            std::future::pending::<()>().await;
            return Ok(empty(500));
        };
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() + 30_000)
            .unwrap_or_default();
        let mut resp = Response::new(Full::new(body).boxed());
        let headers = resp.headers_mut();
        let arn = format!("arn:aws:lambda:eu-west-1:123456789012:function:{}", fake.function);
        for (name, value) in [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", arn),
            ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".to_owned()),
            ("content-type", "application/json".to_owned()),
        ] {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        return Ok(resp);
    }
    if method == hyper::Method::POST && path.starts_with("/2018-06-01/runtime/") {
        let at = Instant::now();
        let ok = path.ends_with("/response");
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        // An HTTP function answers with its statusCode; any other function's answer on
        // /response is a success (200 here), an answer on /error is 0.
        let status = if ok {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("statusCode").and_then(|s| s.as_u64()))
                .map_or(200, |s| s as u16)
        } else {
            0
        };
        let _ = fake.signals.send(Signal::Response { status, at, body });
        return Ok(empty(202));
    }
    Ok(empty(404))
}

/// One execution environment: the fake API plus the function process.
struct Env {
    child: Child,
    signals: mpsc::UnboundedReceiver<Signal>,
    events: mpsc::UnboundedSender<(String, Bytes)>,
    spawned: Instant,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Only the process this bench spawned, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

async fn start(opts: &Options, function: &str) -> Result<Env, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (sig_tx, signals) = mpsc::unbounded_channel();
    let (events, ev_rx) = mpsc::unbounded_channel();
    let fake = Rc::new(Fake { signals: sig_tx, events: Mutex::new(ev_rx), function: function.to_owned() });
    let server = tokio::task::spawn_local(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = fake.clone();
            tokio::task::spawn_local(async move {
                let svc = service_fn(move |req| handle(fake.clone(), req));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    let spawned = Instant::now();
    let child = Command::new(&opts.bin)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Env { child, signals, events, spawned, server })
}

impl Env {
    async fn next_signal(&mut self) -> Result<Signal, Error> {
        match tokio::time::timeout(Duration::from_secs(10), self.signals.recv()).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("fake Runtime API closed".into()),
            Err(_) => {
                let exited = self.child.try_wait().ok().flatten();
                Err(format!("function did not call the Runtime API within 10 s (exit: {exited:?})").into())
            }
        }
    }

    async fn wait_next(&mut self) -> Result<Instant, Error> {
        loop {
            if let Signal::Next(at) = self.next_signal().await? {
                return Ok(at);
            }
        }
    }

    /// Hands out one event and waits for its answer: (latency, HTTP status in the answer).
    async fn invoke(&mut self, id: usize, event: &str) -> Result<(Duration, u16), Error> {
        let sent = Instant::now();
        self.events.send((format!("bench-{id}"), Bytes::from(event.to_owned())))?;
        loop {
            if let Signal::Response { status, at, body } = self.next_signal().await? {
                if status == 0 {
                    return Err(format!("function reported an error: {}", String::from_utf8_lossy(&body)).into());
                }
                return Ok((at - sent, status));
            }
        }
    }

    fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

pub async fn run(opts: Options) -> Result<serde_json::Value, Error> {
    let function = opts.bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "function".into());
    let size = std::fs::metadata(&opts.bin)?.len();
    let mut cold_us = Vec::new();
    let mut rss_kb = Vec::new();
    let mut first_status = Vec::new();
    let mut warm_us = Vec::new();
    let mut warm_statuses = std::collections::BTreeMap::<u16, u64>::new();
    for i in 0..opts.starts.max(1) {
        let mut env = start(&opts, &function).await?;
        let first_next = env.wait_next().await?;
        cold_us.push((first_next - env.spawned).as_micros() as u64);
        let (_, status) = env.invoke(0, &opts.event).await?;
        first_status.push(status);
        env.wait_next().await?;
        if let Some(kb) = env.rss_kb() {
            rss_kb.push(kb);
        }
        // Warm invocations in the last environment only: one environment, one request at a time.
        if i + 1 == opts.starts.max(1) {
            for n in 0..opts.warm {
                let (lat, status) = env.invoke(n + 1, &opts.event).await?;
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
