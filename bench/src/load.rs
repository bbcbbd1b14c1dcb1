//! The HTTP load generator: N keep-alive HTTP/1.1 connections, each sending its next
//! request as soon as the previous answer is read, for a fixed duration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastrand::Rng;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

use crate::Error;
use crate::stats::{ms, percentile};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// POST /api/v1/orders, random buyer token, product uniform in 1..=products.
    Orders,
    /// GET /api/v1/products?limit=50.
    List,
    /// GET of `--path`: a catalogue page, searched, filtered or sorted.
    Catalogue,
    /// POST /api/v1/auth/login as a random one of the bench users.
    Login,
    /// GET of a path no function serves: the server's JSON 404, no database work. The
    /// floor under every other scenario's cost.
    Floor,
}

pub struct Options {
    pub addr: SocketAddr,
    pub scenario: Scenario,
    pub connections: usize,
    pub duration: Duration,
    pub products: u64,
    pub tokens: Vec<String>,
    pub users: u64,
    pub password: String,
    /// The catalogue scenario's request path and query.
    pub path: String,
}

#[derive(Default)]
struct ConnStats {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    error_samples: Vec<String>,
}

fn request(opts: &Options, rng: &mut Rng) -> Result<Request<Full<Bytes>>, Error> {
    let builder = Request::builder().header("host", opts.addr.to_string());
    let req = match opts.scenario {
        Scenario::Orders => {
            let token = &opts.tokens[rng.usize(..opts.tokens.len())];
            let product = 1 + rng.u64(..opts.products.max(1));
            builder
                .method("POST")
                .uri("/api/v1/orders")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::from(format!("{{\"product_id\":{product}}}"))))?
        }
        Scenario::List => builder.method("GET").uri("/api/v1/products?limit=50").body(Full::new(Bytes::new()))?,
        Scenario::Catalogue => builder.method("GET").uri(opts.path.as_str()).body(Full::new(Bytes::new()))?,
        Scenario::Floor => builder.method("GET").uri("/api/v1/bench-floor").body(Full::new(Bytes::new()))?,
        Scenario::Login => {
            let user = 1 + rng.u64(..opts.users.max(1));
            let body = json!({ "email": format!("bench{user}@example.com"), "password": opts.password });
            builder
                .method("POST")
                .uri("/api/v1/auth/login")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?
        }
    };
    Ok(req)
}

fn expected_status(scenario: Scenario) -> u16 {
    match scenario {
        Scenario::Orders => 201,
        Scenario::List | Scenario::Catalogue | Scenario::Login => 200,
        Scenario::Floor => 404,
    }
}

fn note_error(stats: &mut ConnStats, err: impl std::fmt::Display) {
    stats.errors += 1;
    if stats.error_samples.len() < 3 {
        stats.error_samples.push(err.to_string());
    }
}

async fn connection(opts: Rc<Options>, seed: u64, deadline: Instant) -> ConnStats {
    let mut stats = ConnStats::default();
    let mut rng = Rng::with_seed(seed);
    // A request that has not finished by the deadline plus this grace is an error.
    let grace = Duration::from_secs(5);
    'connect: while Instant::now() < deadline {
        let stream = match TcpStream::connect(opts.addr).await {
            Ok(s) => s,
            Err(err) => {
                note_error(&mut stats, format!("connect: {err}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(err) => {
                note_error(&mut stats, format!("handshake: {err}"));
                continue;
            }
        };
        tokio::task::spawn_local(conn);
        while Instant::now() < deadline {
            let req = match request(&opts, &mut rng) {
                Ok(r) => r,
                Err(err) => {
                    note_error(&mut stats, err);
                    break 'connect;
                }
            };
            let start = Instant::now();
            let exchange = async {
                let resp = sender.send_request(req).await?;
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            };
            match tokio::time::timeout_at((deadline + grace).into(), exchange).await {
                Ok(Ok((status, body))) => {
                    *stats.statuses.entry(status).or_default() += 1;
                    if status == expected_status(opts.scenario) {
                        stats.latencies_us.push(start.elapsed().as_micros() as u64);
                    } else if stats.error_samples.len() < 3 {
                        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                        stats.error_samples.push(format!("{status}: {text}"));
                    }
                }
                Ok(Err(err)) => {
                    note_error(&mut stats, format!("request: {err}"));
                    continue 'connect;
                }
                Err(_) => {
                    note_error(&mut stats, "request timed out");
                    break 'connect;
                }
            }
        }
    }
    stats
}

/// Runs the load on the current (single-threaded) runtime and returns the JSON result.
pub async fn run(opts: Options) -> Result<serde_json::Value, Error> {
    let opts = Rc::new(opts);
    let local = tokio::task::LocalSet::new();
    let start = Instant::now();
    let deadline = start + opts.duration;
    let stats = local
        .run_until(async {
            let tasks: Vec<_> = (0..opts.connections)
                .map(|i| {
                    let seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1) ^ start.elapsed().as_nanos() as u64;
                    tokio::task::spawn_local(connection(opts.clone(), seed, deadline))
                })
                .collect();
            let mut all = Vec::with_capacity(tasks.len());
            for task in tasks {
                all.push(task.await);
            }
            all
        })
        .await;
    let elapsed = start.elapsed().as_secs_f64();

    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors = 0;
    let mut samples = Vec::new();
    for s in stats {
        match s {
            Ok(s) => {
                latencies.extend(s.latencies_us);
                for (k, v) in s.statuses {
                    *statuses.entry(k).or_default() += v;
                }
                errors += s.errors;
                samples.extend(s.error_samples);
            }
            Err(err) => {
                errors += 1;
                samples.push(format!("connection task: {err}"));
            }
        }
    }
    latencies.sort_unstable();
    samples.truncate(5);
    let ok = latencies.len() as u64;
    let total: u64 = statuses.values().sum();
    let pct = |p| percentile(&latencies, p).map(ms);
    Ok(json!({
        "scenario": format!("{:?}", opts.scenario).to_lowercase(),
        "connections": opts.connections,
        "seconds": opts.duration.as_secs_f64(),
        "elapsed_s": elapsed,
        "ok": ok,
        "rps": ok as f64 / elapsed,
        "responses": total,
        "bad_status": total - ok,
        "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "errors": errors,
        "error_samples": samples,
        "p50_ms": pct(50.0),
        "p90_ms": pct(90.0),
        "p99_ms": pct(99.0),
        "max_ms": latencies.last().copied().map(ms),
    }))
}
