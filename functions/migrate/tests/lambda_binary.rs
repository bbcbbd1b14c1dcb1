#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real `migrate` binary as Lambda runs it: a fake Runtime API hands it two
//! invocations, a fake Parameters and Secrets extension serves the database and admin
//! secrets, and the database is a fresh one on the test PostgreSQL (`TEST_DATABASE_URL`).
//! Covers the AWS-only path end to end: secrets over the extension with the session token,
//! the connection built from DB_HOST/DB_PORT/DB_NAME + secret, migrations, first admin.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_postgres::NoTls;

const TOKEN: &str = "fake-session-token";

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// The extension: answers `secretsmanager/get` for two ids, only with the session token.
async fn fake_extension(seen: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    async fn secret(
        State(seen): State<Arc<Mutex<Vec<String>>>>,
        headers: HeaderMap,
        Query(query): Query<std::collections::HashMap<String, String>>,
    ) -> impl IntoResponse {
        let id = query.get("secretId").cloned().unwrap_or_default();
        seen.lock().unwrap().push(id.clone());
        if headers.get("x-aws-parameters-secrets-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
            return (StatusCode::UNAUTHORIZED, "missing token".to_owned());
        }
        let value = match id.as_str() {
            "arn:db" => json!({"username": "postgres", "password": "trust-auth-ignores-it", "engine": "postgres"}),
            "arn:admin" => json!({"email": "first-admin@example.com", "password": "first admin password"}),
            _ => return (StatusCode::BAD_REQUEST, "ResourceNotFoundException".to_owned()),
        };
        (StatusCode::OK, json!({"ARN": id, "SecretString": value.to_string()}).to_string())
    }
    serve(Router::new().route("/secretsmanager/get", get(secret)).with_state(seen)).await
}

#[derive(Clone)]
struct Runtime {
    pending: Arc<Mutex<Vec<String>>>,
    results: mpsc::UnboundedSender<(String, Value)>,
}

/// The Lambda Runtime API: `next` hands out the queued request ids (then waits forever),
/// responses and errors are reported on the channel.
async fn fake_runtime(runtime: Runtime) -> SocketAddr {
    async fn next(State(rt): State<Runtime>) -> impl IntoResponse {
        let id = rt.pending.lock().unwrap().pop();
        let Some(id) = id else {
            std::future::pending::<()>().await;
            unreachable!()
        };
        let headers = [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", "99999999999999".to_owned()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:migrate".to_owned(),
            ),
            ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".to_owned()),
        ];
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(name, value.parse().unwrap());
        }
        (map, "{}")
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
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(runtime);
    serve(router).await
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn migrate_binary_applies_migrations_and_creates_the_admin_once() {
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL is not set: run `make test`, or point it at a Postgres role with CREATEDB");
    let pg: tokio_postgres::Config = admin_url.parse().unwrap();
    let host = match &pg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[allow(unreachable_patterns)]
        _ => panic!("TEST_DATABASE_URL must use TCP"),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let (admin, connection) = tokio_postgres::connect(&admin_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let db = format!("migrate_lambda_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE \"{db}\"")).await.unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let extension = fake_extension(seen.clone()).await;
    let (tx, mut results) = mpsc::unbounded_channel();
    // Popped from the end: "first" is served first.
    let pending = Arc::new(Mutex::new(vec!["second".to_owned(), "first".to_owned()]));
    let runtime = fake_runtime(Runtime { pending, results: tx }).await;

    let child = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .env_remove("DATABASE_URL")
        .env_remove("ADMIN_EMAIL")
        .env_remove("ADMIN_PASSWORD")
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "migrate")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", extension.port().to_string())
        .env("DB_HOST", &host)
        .env("DB_PORT", port.to_string())
        .env("DB_NAME", &db)
        // The test cluster has no TLS; in AWS the template sets `require`.
        .env("DB_SSLMODE", "disable")
        .env("DB_SECRET_ARN", "arn:db")
        .env("ADMIN_SECRET_ARN", "arn:admin")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _child = Killed(child);

    let mut answers = Vec::new();
    for _ in 0..2 {
        let answer = tokio::time::timeout(Duration::from_secs(120), results.recv()).await;
        answers.push(answer.expect("the function answered").expect("channel open"));
    }
    let (first_id, first) = &answers[0];
    assert_eq!(first_id, "first", "{first}");
    let applied = first["applied_migrations"].as_array().expect("applied_migrations");
    assert!(applied.iter().any(|m| m.as_str().is_some_and(|m| m.starts_with("V1__"))), "{first}");
    assert_eq!(first["admin"], "created", "{first}");
    let (second_id, second) = &answers[1];
    assert_eq!(second_id, "second", "{second}");
    assert_eq!(second["applied_migrations"], json!([]), "{second}");
    assert_eq!(second["admin"], "present", "{second}");

    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&"arn:db".to_owned()) && seen.contains(&"arn:admin".to_owned()), "{seen:?}");

    let (client, connection) =
        tokio_postgres::connect(&format!("host={host} port={port} user=postgres dbname={db}"), NoTls).await.unwrap();
    tokio::spawn(connection);
    let admins: Vec<String> = client
        .query("SELECT email FROM users WHERE role = 'admin'", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(admins, vec!["first-admin@example.com".to_owned()]);
    drop(client);
    drop(_child);
    admin.batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)")).await.unwrap();
}
