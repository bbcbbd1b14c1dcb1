//! Fakes of what Lambda provides around a function binary, for the tests that run the real
//! binaries and for `bench`'s cold-start and warm-latency figures: the Runtime API
//! (invocations in, answers out, extension registration) and the Parameters and Secrets
//! extension. Panic-free: `bench` reports its errors.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::process::Killed;

/// The session token the fake extension insists on.
pub const TOKEN: &str = "fake-session-token";

/// A router served on a loopback port until this is dropped.
pub struct Served {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(router: Router) -> io::Result<Served> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Served { address, task })
}

/// The extension: `secretsmanager/get` answers the ids in `secrets` (as `SecretString`)
/// when called with [`TOKEN`]; every requested id is recorded in `seen`.
pub async fn fake_extension(secrets: HashMap<String, Value>, seen: Arc<Mutex<Vec<String>>>) -> io::Result<Served> {
    type Shared = (Arc<HashMap<String, Value>>, Arc<Mutex<Vec<String>>>);
    async fn secret(
        State((secrets, seen)): State<Shared>,
        headers: HeaderMap,
        Query(query): Query<HashMap<String, String>>,
    ) -> impl IntoResponse {
        let id = query.get("secretId").cloned().unwrap_or_default();
        seen.lock().unwrap_or_else(PoisonError::into_inner).push(id.clone());
        if headers.get("x-aws-parameters-secrets-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
            return (StatusCode::UNAUTHORIZED, "missing token".to_owned());
        }
        match secrets.get(&id) {
            Some(value) => (StatusCode::OK, json!({"ARN": id, "SecretString": value.to_string()}).to_string()),
            None => (StatusCode::BAD_REQUEST, "ResourceNotFoundException".to_owned()),
        }
    }
    let state: Shared = (Arc::new(secrets), seen);
    serve(Router::new().route("/secretsmanager/get", get(secret)).with_state(state)).await
}

/// One answer of the function: `id` is the request id, `"<id> ERROR"` for an error it
/// reported (`"init ERROR"` for a failed start), `body` its JSON (else the text), `at`
/// when it arrived.
#[derive(Debug)]
pub struct Answer {
    pub id: String,
    pub body: Value,
    pub at: Instant,
}

/// Invocations waiting for the function's next `GET .../invocation/next`.
#[derive(Clone, Default)]
struct Feed {
    /// (request id, event), served from the end.
    pending: Arc<Mutex<Vec<(String, Value)>>>,
    more: Arc<Notify>,
}

#[derive(Clone)]
struct Shared {
    function: String,
    feed: Feed,
    answers: mpsc::UnboundedSender<Answer>,
    polls: mpsc::UnboundedSender<Instant>,
}

/// The Runtime API of one execution environment. `next` hands out the invocations in the
/// order given (waiting for them); every answer arrives on [`answers`](Self::answers), and
/// the time of every `next` call on [`polls`](Self::polls). Extension registration
/// (lambda_runtime's graceful-shutdown helper) is accepted. Served until dropped.
pub struct FakeRuntime {
    pub address: SocketAddr,
    pub answers: mpsc::UnboundedReceiver<Answer>,
    pub polls: mpsc::UnboundedReceiver<Instant>,
    feed: Feed,
    _served: Served,
}

impl FakeRuntime {
    /// The Runtime API for the function `function`, handing out `events` first.
    pub async fn start(function: &str, events: Vec<(String, Value)>) -> io::Result<Self> {
        let (answers, answers_rx) = mpsc::unbounded_channel();
        let (polls, polls_rx) = mpsc::unbounded_channel();
        let feed = Feed::default();
        let shared = Shared { function: function.to_owned(), feed: feed.clone(), answers, polls };
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/2020-01-01/extension/register", post(register))
            .route("/2020-01-01/extension/event/next", get(extension_next))
            .with_state(shared);
        let served = serve(router).await?;
        let runtime = Self { address: served.address, answers: answers_rx, polls: polls_rx, feed, _served: served };
        for (id, event) in events {
            runtime.invoke(&id, event);
        }
        Ok(runtime)
    }

    /// Queues an invocation after those already waiting.
    pub fn invoke(&self, id: &str, event: Value) {
        self.feed.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(0, (id.to_owned(), event));
        self.feed.more.notify_one();
    }

    /// The function's next answer; fails the test when none comes within two minutes
    /// (a cold debug binary on a busy machine is slow, a hung one never answers).
    #[allow(clippy::expect_used, reason = "test helper: no answer fails the test")]
    pub async fn answer(&mut self) -> Answer {
        let answer = tokio::time::timeout(Duration::from_secs(120), self.answers.recv()).await;
        answer.expect("the function answered").expect("channel open")
    }
}

async fn next(State(rt): State<Shared>) -> impl IntoResponse {
    let _ = rt.polls.send(Instant::now());
    let (id, event) = loop {
        let popped = rt.feed.pending.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match popped {
            Some(invocation) => break invocation,
            None => rt.feed.more.notified().await,
        }
    };
    let mut headers = HeaderMap::new();
    if let Ok(id) = HeaderValue::from_str(&id) {
        headers.insert("lambda-runtime-aws-request-id", id);
    }
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_static("99999999999999"));
    let arn = format!("arn:aws:lambda:eu-west-1:123456789012:function:{}", rt.function);
    if let Ok(arn) = HeaderValue::from_str(&arn) {
        headers.insert("lambda-runtime-invoked-function-arn", arn);
    }
    headers.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (headers, event.to_string())
}

/// `at` is taken before the body is read: `bench`'s warm latency ends when the answer
/// arrives.
async fn response(State(rt): State<Shared>, Path(id): Path<String>, request: Request) -> StatusCode {
    let at = Instant::now();
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    let _ = rt.answers.send(Answer { id, body, at });
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    let _ = rt.answers.send(Answer { id: format!("{id} ERROR"), body: Value::String(body), at: Instant::now() });
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Shared>, body: String) -> StatusCode {
    let _ = rt.answers.send(Answer { id: "init ERROR".to_owned(), body: Value::String(body), at: Instant::now() });
    StatusCode::ACCEPTED
}

async fn register(State(rt): State<Shared>) -> impl IntoResponse {
    let body = json!({"functionName": rt.function, "functionVersion": "$LATEST", "handler": "bootstrap"});
    ([("lambda-extension-identifier", "fake-extension-id")], body.to_string())
}

/// Real Lambda holds this until SHUTDOWN; nothing is ever delivered here.
async fn extension_next() -> StatusCode {
    std::future::pending::<()>().await;
    StatusCode::OK
}

/// `binary` started as Lambda starts a function: against the Runtime API at `runtime`, as
/// `name`, its standard output discarded. The caller adds its configuration.
pub fn function_command(binary: impl AsRef<OsStr>, name: &str, runtime: SocketAddr) -> Command {
    let mut command = Command::new(binary);
    command
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// [`function_command`] without the local configuration a developer's environment may
/// hold (`DATABASE_URL`, `JWT_SECRET`, `ADMIN_*`), as the tests of the deployed shape want.
pub fn lambda_command(binary: &str, name: &str, runtime: SocketAddr) -> Command {
    let mut command = function_command(binary, name, runtime);
    command.env_remove("DATABASE_URL").env_remove("JWT_SECRET").env_remove("ADMIN_EMAIL").env_remove("ADMIN_PASSWORD");
    command
}

/// What Lambda provides around a function deployed as the SAM template configures it: the
/// Runtime API and the Parameters and Secrets extension (serving `secrets`, recording the
/// ids asked for in `seen`).
pub struct Environment {
    pub runtime: FakeRuntime,
    pub extension: Served,
    function: String,
}

impl Environment {
    pub async fn start(
        function: &str,
        events: Vec<(String, Value)>,
        secrets: HashMap<String, Value>,
        seen: Arc<Mutex<Vec<String>>>,
    ) -> io::Result<Self> {
        let extension = fake_extension(secrets, seen).await?;
        let runtime = FakeRuntime::start(function, events).await?;
        Ok(Self { runtime, extension, function: function.to_owned() })
    }

    /// [`lambda_command`] for `binary` in this environment, its database as the template
    /// describes it: `(host, port, name)`, with the credentials (`arn:db`) read through the
    /// extension. No TLS: the test cluster has none (in AWS the template sets `require`).
    pub fn command(&self, binary: &str, (host, port, db): (&str, u16, &str)) -> Command {
        let mut command = lambda_command(binary, &self.function, self.runtime.address);
        command
            .env("AWS_SESSION_TOKEN", TOKEN)
            .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", self.extension.address.port().to_string())
            .env("DB_HOST", host)
            .env("DB_PORT", port.to_string())
            .env("DB_NAME", db)
            .env("DB_SSLMODE", "disable")
            .env("DB_SECRET_ARN", "arn:db");
        command
    }
}

/// Starts the function `command` describes, killed when the guard drops.
pub fn spawn_function(command: &mut Command) -> io::Result<Killed> {
    command.spawn().map(Killed)
}
