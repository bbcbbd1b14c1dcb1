//! An order whose connection is lost while it runs may or may not have committed: the answer
//! says so (502 `commit_unknown`, no `Retry-After`), and a retry with the same
//! `Idempotency-Key` charges once whichever way it went.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::domain::Role;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use testkit::app::{TestApp, TestResponse};

async fn order_with_key(app: &TestApp, token: &str, key: &str, body: &Value) -> TestResponse {
    let auth = format!("Bearer {token}");
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str()), ("idempotency-key", key)];
    app.send(Method::POST, "/api/v1/orders", &headers, body.to_string().into_bytes()).await
}

fn assert_commit_unknown(response: &TestResponse) {
    assert_eq!(response.status, StatusCode::BAD_GATEWAY, "{:?}", response.body);
    assert_eq!(response.code(), "commit_unknown");
    assert!(response.headers.get("retry-after").is_none(), "a blind retry is what this answer must not invite");
}

/// Polls `sql` (one bigint) until it returns a row, for at most 10 seconds.
async fn wait_for(app: &TestApp, sql: &str) -> i64 {
    let client = app.pool().get().await.expect("connection");
    for _ in 0..500 {
        if let Some(row) = client.query_opt(sql, &[]).await.expect("poll") {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {sql}");
}

/// The backend running the order is terminated while the statement waits for a stock row:
/// nothing committed, the answer says the outcome is unknown, and the retry with the same
/// key places the order once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_backend_dies_mid_statement_is_commit_unknown_and_charged_once() {
    let app = Arc::new(TestApp::spawn().await);
    let product = app.product("CUT-1", 700, 10).await;
    app.split(product).await;
    let user = app.user_token(Role::User).await;
    let body = json!({"product_id": product, "quantity": 2});

    // Another transaction holds every bucket, so the order blocks inside its statement.
    let mut locker = app.pool().get().await.expect("connection");
    let locker = locker.transaction().await.expect("begin");
    locker.execute("SELECT 1 FROM product_stock WHERE product_id = $1 FOR UPDATE", &[&product]).await.expect("lock");
    let order = tokio::spawn({
        let (app, user, body) = (app.clone(), user.clone(), body.clone());
        async move { order_with_key(&app, &user, "cut-1", &body).await }
    });
    let pid = wait_for(
        &app,
        "SELECT pid::BIGINT FROM pg_stat_activity \
          WHERE datname = current_database() AND pid <> pg_backend_pid() \
            AND wait_event_type = 'Lock' AND query LIKE '%place_order%'",
    )
    .await;
    let pid = i32::try_from(pid).expect("pid");
    let terminated: bool = app.query_one("SELECT pg_terminate_backend($1)", &[&pid]).await;
    assert!(terminated);
    locker.rollback().await.expect("release the buckets");

    assert_commit_unknown(&order.await.expect("order task"));
    assert_eq!(app.count("orders").await, 0, "the terminated statement was rolled back");
    assert_eq!(app.stock(product).await, 10);

    let retry = order_with_key(&app, &user, "cut-1", &body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{:?}", retry.body);
    assert!(retry.headers.get("idempotent-replayed").is_none(), "nothing to replay: the first did not commit");
    let again = order_with_key(&app, &user, "cut-1", &body).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, retry.body);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.stock(product).await, 8);
}

/// The order commits, then the connection breaks before its answer arrives (a network fault
/// between the function and the database): the same answer, and the retry with the same key
/// gets the committed order back instead of buying again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_committed_but_unanswered_is_commit_unknown_and_replayed_by_its_key() {
    let app = TestApp::spawn().await;
    let proxy = Proxy::start(&app.database_url).await;
    let via_proxy = Arc::new(app.sibling_via(proxy.url.clone()).await);
    let product = app.product("CUT-2", 700, 10).await;
    let user = app.user_token(Role::User).await;
    let body = json!({"product_id": product, "quantity": 3});
    // Opens the proxied connection the order will use, while answers still pass.
    assert_eq!(via_proxy.get(&format!("/api/v1/products/{product}"), None).await.status, StatusCode::OK);

    proxy.drop_answers(true);
    let order = tokio::spawn({
        let (via_proxy, user, body) = (via_proxy.clone(), user.clone(), body.clone());
        async move { order_with_key(&via_proxy, &user, "cut-2", &body).await }
    });
    // Seen from another connection, so committed.
    let committed = wait_for(&app, "SELECT id FROM orders").await;
    proxy.cut();

    assert_commit_unknown(&order.await.expect("order task"));
    proxy.drop_answers(false);
    let retry = order_with_key(&via_proxy, &user, "cut-2", &body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{:?}", retry.body);
    assert_eq!(retry.headers.get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(retry.body["order_id"], committed);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.stock(product).await, 7);
}

/// A TCP proxy in front of the test's Postgres that can stop passing the server's answers on
/// and then cut every connection: what a client sees when the network fails after the server
/// has acted.
struct Proxy {
    url: String,
    drop_answers: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(database_url: &str) -> Self {
        let config = tokio_postgres::Config::from_str(database_url).expect("database URL");
        let host = match config.get_hosts() {
            [tokio_postgres::config::Host::Tcp(host)] => host.clone(),
            other => panic!("expected one TCP host, got {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let upstream: SocketAddr = format!("{host}:{port}").parse().expect("an IP address and port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let local = listener.local_addr().expect("local address");
        let url = database_url.replacen(&upstream.to_string(), &local.to_string(), 1);
        assert_ne!(url, database_url, "the URL names {upstream} explicitly");

        let drop_answers = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn({
            let (drop_answers, connections) = (drop_answers.clone(), connections.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(upstream).await else { continue };
                    let task = tokio::spawn(relay(client, server, drop_answers.clone()));
                    connections.lock().expect("connections").push(task.abort_handle());
                }
            }
        });
        Self { url, drop_answers, connections }
    }

    /// While on, what the server sends is read and thrown away.
    fn drop_answers(&self, on: bool) {
        self.drop_answers.store(on, Ordering::SeqCst);
    }

    /// Closes every connection made so far, on both sides.
    fn cut(&self) {
        for connection in self.connections.lock().expect("connections").drain(..) {
            connection.abort();
        }
    }
}

async fn relay(client: TcpStream, server: TcpStream, drop_answers: Arc<AtomicBool>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let requests = tokio::io::copy(&mut from_client, &mut to_server);
    let answers = async {
        let mut buffer = [0u8; 8192];
        loop {
            let read = from_server.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<_, std::io::Error>(());
            }
            if !drop_answers.load(Ordering::SeqCst) {
                to_client.write_all(&buffer[..read]).await?;
            }
        }
    };
    // Either side closing ends both; the sockets close when this task ends or is aborted.
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}
