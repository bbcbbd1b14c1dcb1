//! What the log of a real `gamestore serve` (at `trace`, the most verbose level) holds after a
//! user registers, fails and succeeds to sign in, orders, and gets the welcome mail from
//! the log mailer, with a queue URL that carries a password: the masked address, and never
//! the address, the password, the token, the JWT secret or the queue's password.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::domain::Role;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use testkit::app::{JWT_SECRET, TestApp};

const EMAIL: &str = "Logged.Person@Example.com";
const PASSWORD: &str = "pw-that-must-not-be-logged";
const QUEUE_PASSWORD: &str = "queue-password-not-for-logs";

/// The server's stdout and stderr, collected as it runs.
pub(crate) struct Server {
    child: Child,
    log: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    fn start(app: &TestApp) -> Self {
        Self::start_with(app, "text")
    }

    /// A server logging in `format` (`text`, or `json` as in Lambda).
    pub(crate) fn start_with(app: &TestApp, format: &str) -> Self {
        Self::start_with_env(app, format, &[])
    }

    /// [`Server::start_with`], with these variables added to its environment.
    pub(crate) fn start_with_env(app: &TestApp, format: &str, env: &[(&str, &str)]) -> Self {
        let redis = testkit::services::redis_url();
        // Redis accepts any password for its password-less `default` user.
        let queue_url = redis.replacen("redis://", &format!("redis://default:{QUEUE_PASSWORD}@"), 1);
        let mut child = Command::new(env!("CARGO_BIN_EXE_gamestore"))
            .args(["serve", "--port", "0"])
            .env("DATABASE_URL", &app.database_url)
            .env("JWT_SECRET", std::str::from_utf8(JWT_SECRET).expect("ASCII secret"))
            .env("QUEUE_URL", queue_url)
            .env("QUEUE_STREAM", format!("log-test-{}", uuid::Uuid::new_v4().simple()))
            .env("QUEUE_WAIT_MS", "200")
            .env("MAILER", "log")
            .env("NO_COLOR", "1")
            .env_remove("MAIL_LOG")
            .env("RUST_LOG", "trace")
            .env("LOG_FORMAT", format)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gamestore serve");
        let log = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let outputs: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().expect("stdout")), Box::new(child.stderr.take().expect("stderr"))];
        for mut output in outputs {
            let log = log.clone();
            readers.push(std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = output.read(&mut chunk) {
                    log.lock().expect("log lock").push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            }));
        }
        Self { child, log, readers }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub(crate) async fn wait_for_log(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no {text:?} in the log:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process (ours, by its handle) and returns everything it wrote.
    pub(crate) fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            reader.join().expect("log reader");
        }
        self.log()
    }
}

pub(crate) async fn call(base: &str, path: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
    let (status, _, body) = call_with(base, path, body, token, &[]).await;
    (status, body)
}

/// A POST with extra `headers`; answers the status, the headers and the JSON body.
pub(crate) async fn call_with(
    base: &str,
    path: &str,
    body: Value,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Value) {
    send(Method::POST, base, path, Some(body), token, headers).await
}

/// A request of any method, with a JSON body when `body` is one.
pub(crate) async fn send(
    method: Method,
    base: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Value) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder().method(method).uri(format!("{base}{path}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map(|body| Bytes::from(body.to_string())).unwrap_or_default();
    let response = client.request(request.body(Full::new(body)).expect("request")).await.expect("call");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The server's address, from its start-up log line.
pub(crate) async fn base_url(server: &Server) -> String {
    let started = server.wait_for_log("serving the game store API").await;
    let address = started
        .lines()
        .find(|line| line.contains("serving the game store API"))
        .and_then(|line| line.split("address").nth(1))
        .and_then(|rest| rest.trim_start_matches(['=', '"', ':']).split(['"', ' ']).next())
        .unwrap_or_else(|| panic!("no listening address in the log:\n{started}"));
    format!("http://{address}")
}

#[tokio::test]
async fn logs_of_a_user_journey_hold_only_the_masked_address() {
    let app = TestApp::spawn().await;
    let server = Server::start(&app);
    let started = server.wait_for_log("serving the game store API").await;
    let address = started
        .split("address=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no listening address in the log:\n{started}"));
    let base = format!("http://{address}");

    let (status, body) =
        call(&base, "/api/v1/auth/register", json!({"email": EMAIL, "password": PASSWORD}), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let display_name = format!("Logged Person <{EMAIL}>");
    let (status, _) =
        call(&base, "/api/v1/auth/register", json!({"email": display_name, "password": PASSWORD}), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        call(&base, "/api/v1/auth/login", json!({"email": EMAIL, "password": "wrong password"}), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&base, "/api/v1/auth/login", json!({"email": EMAIL, "password": PASSWORD}), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    let admin = app.user_token(Role::Admin).await;
    let product = json!({"name": "Logged Game", "price": 100, "sku": "LOGGED-1", "stock": 5});
    let (status, body) = call(&base, "/api/v1/products", product, Some(&admin)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(&base, "/api/v1/orders", json!({"product_id": body["id"]}), Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.wait_for_log("welcome mail sent").await;

    let log = server.stop();
    let lower = log.to_lowercase();
    assert!(log.contains("mail sent (log mailer)"), "the log mailer did not run:\n{log}");
    assert!(log.contains(r#"{"_aws":"#) || log.contains(r#""_aws":{"#), "no metric line in the log:\n{log}");
    assert!(lower.contains("l***@example.com"), "no masked address in the log:\n{log}");
    let secrets = [
        ("the address", "logged.person@example.com".to_owned()),
        ("the address's local part", "logged.person".to_owned()),
        ("the password", PASSWORD.to_owned()),
        ("the token", token.to_lowercase()),
        ("the token's signature", token.rsplit('.').next().unwrap_or_default().to_lowercase()),
        ("the admin token", admin.to_lowercase()),
        ("the JWT secret", String::from_utf8_lossy(JWT_SECRET).to_lowercase()),
        ("the queue password", QUEUE_PASSWORD.to_owned()),
    ];
    for (what, secret) in secrets {
        assert!(!lower.contains(&secret), "{what} is in the log:\n{log}");
    }
}
