//! Fakes of what Lambda provides around a function binary, for tests that run the real
//! binaries: the Runtime API (invocations in, answers out, extension registration) and
//! the Parameters and Secrets extension. Included with `#[path]` by the tests of the
//! function crates (a file under `tests/support/` is not a test target of its own).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

/// The session token the fake extension insists on.
pub const TOKEN: &str = "fake-session-token";

pub async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// The extension: `secretsmanager/get` answers the ids in `secrets` (as `SecretString`)
/// when called with [`TOKEN`]; every requested id is recorded in `seen`.
pub async fn fake_extension(secrets: HashMap<String, Value>, seen: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    type Shared = (Arc<HashMap<String, Value>>, Arc<Mutex<Vec<String>>>);
    async fn secret(
        State((secrets, seen)): State<Shared>,
        headers: HeaderMap,
        Query(query): Query<HashMap<String, String>>,
    ) -> impl IntoResponse {
        let id = query.get("secretId").cloned().unwrap_or_default();
        seen.lock().unwrap().push(id.clone());
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

#[derive(Clone)]
struct Runtime {
    feed: Feed,
    results: mpsc::UnboundedSender<(String, Value)>,
}

/// Invocations for a running fake Runtime API, after those it was started with.
#[derive(Clone)]
pub struct Feed {
    /// (request id, event), served from the end.
    pending: Arc<Mutex<Vec<(String, Value)>>>,
    more: Arc<Notify>,
}

impl Feed {
    #[allow(dead_code, reason = "not every test that includes this file invokes after start")]
    pub fn invoke(&self, id: &str, event: Value) {
        self.pending.lock().unwrap().insert(0, (id.to_owned(), event));
        self.more.notify_one();
    }
}

/// The Runtime API. `next` hands out `events` in order, then those given to the returned
/// [`Feed`] (waiting for them); each answer arrives on the returned channel as
/// `(request id, body)`, errors as `("<id> ERROR", ..)`. Extension registration
/// (lambda_runtime's graceful-shutdown helper) is accepted.
pub async fn fake_runtime(
    events: Vec<(String, Value)>,
) -> (SocketAddr, mpsc::UnboundedReceiver<(String, Value)>, Feed) {
    async fn next(State(rt): State<Runtime>) -> impl IntoResponse {
        let (id, event) = loop {
            let popped = rt.feed.pending.lock().unwrap().pop();
            match popped {
                Some(invocation) => break invocation,
                None => rt.feed.more.notified().await,
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
        headers.insert("lambda-runtime-deadline-ms", "99999999999999".parse().unwrap());
        headers.insert(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:eu-west-1:123456789012:function:test".parse().unwrap(),
        );
        headers.insert("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".parse().unwrap());
        (headers, event.to_string())
    }
    async fn response(State(rt): State<Runtime>, Path(id): Path<String>, body: String) -> StatusCode {
        let _ = rt.results.send((id, serde_json::from_str(&body).unwrap_or(Value::String(body))));
        StatusCode::ACCEPTED
    }
    async fn error(State(rt): State<Runtime>, Path(id): Path<String>, body: String) -> StatusCode {
        let _ = rt.results.send((format!("{id} ERROR"), Value::String(body)));
        StatusCode::ACCEPTED
    }
    async fn init_error(State(rt): State<Runtime>, body: String) -> StatusCode {
        let _ = rt.results.send(("init ERROR".to_owned(), Value::String(body)));
        StatusCode::ACCEPTED
    }
    async fn register() -> impl IntoResponse {
        let body = json!({"functionName": "test", "functionVersion": "$LATEST", "handler": "bootstrap"});
        ([("lambda-extension-identifier", "fake-extension-id")], body.to_string())
    }
    async fn extension_next() -> StatusCode {
        std::future::pending::<()>().await;
        StatusCode::OK
    }
    let (results, receiver) = mpsc::unbounded_channel();
    let feed =
        Feed { pending: Arc::new(Mutex::new(events.into_iter().rev().collect())), more: Arc::new(Notify::new()) };
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route("/2020-01-01/extension/register", post(register))
        .route("/2020-01-01/extension/event/next", get(extension_next))
        .with_state(Runtime { feed: feed.clone(), results });
    (serve(router).await, receiver, feed)
}

/// `binary` started as Lambda starts a function: against the Runtime API at `runtime`, as
/// `name`, without the local configuration a developer's environment may hold
/// (`DATABASE_URL`, `JWT_SECRET`, `ADMIN_*`). The caller adds its configuration and spawns.
pub fn lambda_command(binary: &str, name: &str, runtime: SocketAddr) -> Command {
    let mut command = Command::new(binary);
    command
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env_remove("ADMIN_EMAIL")
        .env_remove("ADMIN_PASSWORD")
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// The database as the template describes it: host, port and name, with the credentials
/// (`arn:db`) read through the secrets extension at `extension`. No TLS: the test cluster
/// has none (in AWS the template sets `require`).
pub fn database_through_extension<'a>(
    command: &'a mut Command,
    extension: SocketAddr,
    host: &str,
    port: u16,
    db: &str,
) -> &'a mut Command {
    command
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", extension.port().to_string())
        .env("DB_HOST", host)
        .env("DB_PORT", port.to_string())
        .env("DB_NAME", db)
        .env("DB_SSLMODE", "disable")
        .env("DB_SECRET_ARN", "arn:db")
}

/// A child process killed (and reaped) when dropped, also when the test panics.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Host and port of `TEST_DATABASE_URL` (set by `make test`).
pub fn test_database() -> (String, String, u16) {
    let url = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL is not set: run `make test`, or point it at a Postgres role with CREATEDB");
    let pg: tokio_postgres::Config = url.parse().unwrap();
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => panic!("TEST_DATABASE_URL must name a TCP host"),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    (url, host, port)
}
