//! Dead database connections cost no request. The real `gamestore serve` process is frozen
//! (SIGSTOP, as Lambda freezes an environment between invocations) while its connections
//! die, requests queue up, and it is thawed: every queued request must be answered as if
//! nothing happened. The pool's idle check (`common::db`) replaces connections that sat
//! unused for over a second; without it the first requests after the thaw ran on dead
//! connections and answered 503 (an order 502 `commit_unknown`).

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::domain::Role;
use http::{Method, StatusCode};
use serde_json::json;

use testkit::app::{JWT_SECRET, PASSWORD, TestApp};
use testkit::postgres::{OwnPostgres, connect};
use testkit::process::{Killed, free_port};

/// Requests sent while the server is frozen, per round.
const QUEUED: usize = 30;
/// Longer than the pool's idle-check threshold (1 s), as any real freeze is.
const FROZEN_FOR: Duration = Duration::from_millis(1500);

/// The `gamestore serve` child process, killed when dropped (also when a test panics).
struct Server {
    child: Killed,
    address: SocketAddr,
}

impl Server {
    async fn start(database_url: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_gamestore"))
            .args(["serve", "--port", &port.to_string()])
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", std::str::from_utf8(JWT_SECRET).expect("ASCII secret"))
            .env("RUST_LOG", "error")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gamestore serve");
        let server = Self { child: Killed(child), address: SocketAddr::from(([127, 0, 0, 1], port)) };
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(server.address).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("gamestore serve did not listen on {}", server.address);
    }

    fn signal(&self, signal: &str) {
        self.child.signal(signal);
    }
}

/// What the queued requests need: a product to read and order, an account to sign in to.
#[derive(Clone)]
struct Fixture {
    product: i64,
    email: String,
    token: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let product = app.product("CONN-1", 100, 100_000).await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(app.register(&email, PASSWORD).await.status, StatusCode::CREATED);
    Fixture { product, email, token: app.user_token(Role::User).await }
}

/// `count` requests of every kind at once (reads, logins, orders with an Idempotency-Key),
/// all expected to succeed; returns the (request, status) pairs that did not.
async fn burst(client: &TestApp, fixture: &Fixture, count: usize) -> Vec<(String, StatusCode, String)> {
    let mut tasks = Vec::new();
    for i in 0..count {
        let client = client.client_at([127, 0, 0, 1]);
        let (product, email, token) = (fixture.product, fixture.email.clone(), fixture.token.clone());
        tasks.push(tokio::spawn(async move {
            let (what, response, expected) = match i % 5 {
                0 => ("list", client.get("/api/v1/products", None).await, StatusCode::OK),
                1 => ("get", client.get(&format!("/api/v1/products/{product}"), None).await, StatusCode::OK),
                2 if i % 10 == 2 => ("login", client.login(&email, PASSWORD).await, StatusCode::OK),
                _ => {
                    let auth = format!("Bearer {token}");
                    let key = uuid::Uuid::new_v4().to_string();
                    let headers = [
                        ("content-type", "application/json"),
                        ("authorization", auth.as_str()),
                        ("idempotency-key", key.as_str()),
                    ];
                    let body = json!({"product_id": product, "quantity": 1}).to_string().into_bytes();
                    ("order", client.send(Method::POST, "/api/v1/orders", &headers, body).await, StatusCode::CREATED)
                }
            };
            (response.status != expected).then(|| (what.to_owned(), response.status, response.body.to_string()))
        }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        failed.extend(task.await.expect("request task"));
    }
    failed
}

/// Opens the server's pool, freezes it, lets `kill_connections` break every connection it
/// holds, queues [`QUEUED`] requests, thaws it: every request must succeed. Several rounds.
async fn survives_freeze<F, Fut>(app: &TestApp, server: &Server, mut kill_connections: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut client = app.client_at([127, 0, 0, 1]);
    client.address = server.address;
    let fixture = fixture(app).await;
    for round in 1..=3 {
        let failed = burst(&client, &fixture, QUEUED).await;
        assert!(failed.is_empty(), "round {round}, opening the pool: {failed:?}");

        server.signal("-STOP");
        kill_connections().await;
        let queued = tokio::spawn({
            let client = client.client_at([127, 0, 0, 1]);
            let fixture = fixture.clone();
            async move { burst(&client, &fixture, QUEUED).await }
        });
        tokio::time::sleep(FROZEN_FOR).await;
        server.signal("-CONT");
        let failed = queued.await.expect("queued requests");
        assert!(failed.is_empty(), "round {round}, after the thaw: {failed:?}");
    }
}

/// Every backend of the test's database terminated while the server is frozen: what RDS
/// Proxy's idle-client timeout or a failover does to a frozen Lambda environment's pool.
#[tokio::test]
async fn terminated_connections_cost_no_request() {
    let app = TestApp::spawn().await;
    let server = Server::start(&app.database_url).await;
    let database: String = app.query_one("SELECT current_database()", &[]).await;
    let admin_url = testkit::services::database_url();
    let admin = connect(&admin_url).await;
    survives_freeze(&app, &server, || async {
        let terminated = admin
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await
            .expect("terminate backends")
            .get::<_, i64>(0);
        assert!(terminated > 0, "the server held no connection");
    })
    .await;
}

/// PostgreSQL restarted while the server is frozen: every connection it held is gone.
#[tokio::test]
async fn a_database_restart_costs_no_request() {
    let cluster = OwnPostgres::start();
    let (admin, connection) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls).await.expect("connect");
    let admin_task = tokio::spawn(connection);
    admin.batch_execute("CREATE DATABASE gamestore").await.expect("create database");
    drop(admin);
    let _ = admin_task.await;
    let database_url = cluster.url("gamestore");
    let migrate = common::db::pool(&database_url, 1).expect("pool");
    common::db::migrate(&migrate).await.expect("migrate");
    migrate.close();

    // The in-process app only seeds; the requests go to the child process.
    let app = TestApp::spawn_on_database(database_url.clone()).await;
    let server = Server::start(&database_url).await;
    survives_freeze(&app, &server, || async { cluster.pg_ctl("restart") }).await;
}

/// A statement that runs into `statement_timeout` (here a lock held by another session,
/// standing in for a stuck query) answers a fast 503 with Retry-After, not 500 and not a
/// Lambda timeout; an order is 503 too, not 502 `commit_unknown`: the cancelled statement
/// rolled back, so nothing was bought and the retry Retry-After invites is safe.
#[tokio::test]
async fn a_statement_timeout_is_503_and_commits_nothing() {
    let app = TestApp::spawn().await;
    let product = app.product("SLOW-1", 100, 10).await;
    let token = app.user_token(Role::User).await;
    // DATABASE_URL's own statement_timeout wins over the pool's default (5 s).
    let separator = if app.database_url.contains('?') { '&' } else { '?' };
    let short = app.sibling_via(format!("{}{separator}options=-c%20statement_timeout%3D200ms", app.database_url)).await;

    let locker = connect(&app.database_url).await;
    locker.batch_execute("BEGIN; LOCK TABLE products IN ACCESS EXCLUSIVE MODE").await.expect("lock products");

    let list = short.get("/api/v1/products", None).await;
    let auth = format!("Bearer {token}");
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str()), ("idempotency-key", "slow")];
    let body = json!({"product_id": product, "quantity": 1}).to_string().into_bytes();
    let order = short.send(Method::POST, "/api/v1/orders", &headers, body.clone()).await;
    for (what, response) in [("list", &list), ("order", &order)] {
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {:?}", response.body);
        assert_eq!(response.code(), "service_unavailable", "{what}");
        assert_eq!(response.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]), "{what}");
    }

    locker.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(app.count("orders").await, 0, "the cancelled order rolled back");
    assert_eq!(app.stock(product).await, 10);
    let retried = short.send(Method::POST, "/api/v1/orders", &headers, body).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{:?}", retried.body);
}
