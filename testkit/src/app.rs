//! A test app per test: a fresh database copied from the migrated template, the local
//! server's router served on a loopback port, and an HTTP client that speaks to it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::AppState;
use common::auth::Jwt;
use common::config::{Config, Limits};
use common::db::Pool;
use common::domain::{Role, UserId};
use common::queue::Publisher;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::postgres::{as_application, connect, fresh_database};

pub const JWT_SECRET: &[u8] = b"test-secret-with-at-least-32-bytes-of-entropy";
/// A password that satisfies the registration rules.
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub address: SocketAddr,
    pub state: AppState,
    /// The owner's URL of this app's database, for a test's own connections.
    pub database_url: String,
    /// What the server connects with: on a fresh database, the application role, as the
    /// functions in AWS, so every test proves the role's grants suffice.
    server_url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(None, Limits::default()).await
    }

    /// A test app whose register publishes the welcome email with `publisher`.
    pub async fn spawn_with_publisher(publisher: Option<Arc<dyn Publisher>>) -> Self {
        Self::spawn_with(publisher, Limits::default()).await
    }

    /// A test app throttling logins and registrations with `limits`.
    pub async fn spawn_with(publisher: Option<Arc<dyn Publisher>>, limits: Limits) -> Self {
        let database_url = fresh_database().await;
        let server_url = as_application(&database_url);
        Self::spawn_on(database_url, server_url, publisher, limits).await
    }

    /// A test app on an existing, migrated database, connecting with `database_url`.
    pub async fn spawn_on_database(database_url: String) -> Self {
        Self::spawn_on(database_url.clone(), database_url, None, Limits::default()).await
    }

    /// A second server process on the same database, as another Lambda instance would be.
    pub async fn sibling(&self) -> Self {
        self.sibling_via(self.server_url.clone()).await
    }

    /// This app as a client connecting from `ip` sees it (on Linux every 127.x.y.z is a
    /// loopback address a client can bind), to act as callers on different networks.
    pub fn client_at(&self, ip: [u8; 4]) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(IpAddr::from(ip)));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self {
            address: self.address,
            state: self.state.clone(),
            database_url: self.database_url.clone(),
            server_url: self.server_url.clone(),
            client,
        }
    }

    /// A second server process on this app's database that reaches it through
    /// `database_url` (a proxy in front of the same server, say).
    pub async fn sibling_via(&self, server_url: String) -> Self {
        Self::spawn_on(self.database_url.clone(), server_url, self.state.publisher.clone(), self.state.limits).await
    }

    async fn spawn_on(
        database_url: String,
        server_url: String,
        publisher: Option<Arc<dyn Publisher>>,
        limits: Limits,
    ) -> Self {
        let config = Config {
            database_url: server_url.clone(),
            db_pool_size: 16,
            jwt_secret: JWT_SECRET.to_vec(),
            jwt_ttl: Duration::from_secs(3600),
            limits,
        };
        let mut state = AppState::new(&config).expect("app state");
        if let Some(publisher) = publisher {
            state = state.with_publisher(publisher);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(gamestore::serve(listener, state.clone(), std::future::pending()));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { address, state, database_url, server_url, client }
    }

    pub fn jwt(&self) -> Arc<Jwt> {
        self.state.jwt.clone()
    }

    /// The server's pool (the application role's, on a fresh database).
    pub fn pool(&self) -> &Pool {
        &self.state.db
    }

    /// A pool of the database's owner, for what only `migrate` may do.
    pub fn owner_pool(&self) -> Pool {
        common::db::pool(&self.database_url, 2).expect("owner pool")
    }

    /// Sends a request with a raw body and optional headers.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> TestResponse {
        let mut request = Request::builder().method(method).uri(format!("http://{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).expect("request");
        let response = self.client.request(request).await.expect("HTTP request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("response body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("response is not JSON: {status} {}", String::from_utf8_lossy(&bytes)))
        };
        assert!(
            headers.get(header::CONTENT_TYPE).is_none_or(|ct| ct == "application/json"),
            "non-JSON content type {:?}",
            headers.get(header::CONTENT_TYPE)
        );
        TestResponse { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send(Method::GET, path, &headers, Vec::new()).await
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> TestResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        self.send(Method::POST, path, &headers, body.to_string().into_bytes()).await
    }

    pub async fn register(&self, email: &str, password: &str) -> TestResponse {
        self.post("/api/v1/auth/register", &json!({"email": email, "password": password}), None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.post("/api/v1/auth/login", &json!({"email": email, "password": password}), None).await
    }

    /// Inserts a user directly (no hashing cost) and returns a token for it.
    pub async fn user_token(&self, role: Role) -> String {
        self.user(role).await.1
    }

    /// [`Self::user_token`], with the user's address: (email, token).
    pub async fn user(&self, role: Role) -> (String, String) {
        let email = crate::unique_email("user");
        let id: i64 = self
            .query_one(
                "INSERT INTO users (email, password_hash, role) VALUES ($1, 'unusable', $2) RETURNING id",
                &[&email, &role.as_str()],
            )
            .await;
        (email, self.jwt().issue(UserId::new(id), role).expect("issue token"))
    }

    /// [`Self::user_token`] for `count` users of `role`.
    pub async fn user_tokens(&self, role: Role, count: usize) -> Vec<String> {
        let mut tokens = Vec::with_capacity(count);
        for _ in 0..count {
            tokens.push(self.user_token(role).await);
        }
        tokens
    }

    /// Creates a product through the API as an admin and returns its id.
    pub async fn product(&self, sku: &str, price: i64, stock: i64) -> i64 {
        let admin = self.user_token(Role::Admin).await;
        let response = self
            .post(
                "/api/v1/products",
                &json!({"name": format!("Game {sku}"), "description": "test", "price": price, "sku": sku, "stock": stock}),
                Some(&admin),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        response.body["id"].as_i64().expect("product id")
    }

    pub async fn query_one<T>(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let client = self.pool().get().await.expect("connection");
        client.query_one(sql, params).await.expect("query").get(0)
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await
    }

    /// Splits the product's stock into 16 buckets, as contended orders do.
    pub async fn split(&self, product_id: i64) {
        let buckets: i32 = self.query_one("SELECT split_stock($1, 16)", &[&product_id]).await;
        assert_eq!(buckets, 16);
    }

    /// Deadlocks Postgres detected in this test's database so far, counting those of every
    /// connection the `pools` hold: each of them flushes its statistics first (a backend
    /// flushes them on its own only about once a second).
    pub async fn deadlocks(&self, pools: &[&Pool]) -> i64 {
        for pool in pools {
            let mut connections = Vec::new();
            for _ in 0..pool.status().max_size {
                connections.push(pool.get().await.expect("connection"));
            }
            for connection in &connections {
                // Takes effect when the backend goes idle, before this statement is answered.
                connection.execute("SELECT pg_stat_force_next_flush()", &[]).await.expect("flush statistics");
            }
        }
        let direct = connect(&self.database_url).await;
        direct
            .query_one("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()", &[])
            .await
            .expect("deadlock count")
            .get(0)
    }

    pub async fn buckets(&self, product_id: i64) -> i64 {
        self.query_one("SELECT count(*) FROM product_stock WHERE product_id = $1", &[&product_id]).await
    }

    pub async fn stock(&self, product_id: i64) -> i64 {
        self.query_one(
            "SELECT coalesce(sum(stock), 0)::BIGINT FROM product_stock WHERE product_id = $1",
            &[&product_id],
        )
        .await
    }
}
