#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real `list-products` binary configured as the SAM template configures every HTTP
//! function: no JWT_SECRET or DATABASE_URL, only secret ARNs read through the (fake)
//! Parameters and Secrets extension and the proxy's host/port/name. The extension is
//! served only during INVOKE in AWS, so the function loads them on its first request:
//! this checks that deferred start-up answers, and reads the secrets once per environment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::domain::{Cents, Description, ProductName, Sku, Stock};
use common::store::products::{self, NewProduct};
use serde_json::{Value, json};
use testkit::lambda::{Answer, Environment, FakeRuntime, lambda_command, spawn_function};
use testkit::postgres::{Client, OwnPostgres, create_database, drop_database, test_database};
use testkit::process::Killed;

/// A fresh migrated database holding one product, on the test cluster.
struct Database {
    admin: Client,
    name: String,
    host: String,
    port: u16,
}

async fn database_with_a_product(tag: &str) -> Database {
    let (admin_url, host, port) = test_database();
    database_with_a_product_on(&admin_url, host, port, tag).await
}

async fn database_with_a_product_on(admin_url: &str, host: String, port: u16, tag: &str) -> Database {
    let (admin, name) = create_database(admin_url, &format!("list_products_{tag}")).await;
    let pool = common::db::pool(&format!("host={host} port={port} user=postgres dbname={name}"), 1).unwrap();
    common::db::migrate(&pool).await.unwrap();
    let new = NewProduct {
        name: ProductName::parse("Lambda Game".into()).unwrap(),
        description: Description::parse("listed through the real binary".into()).unwrap(),
        price: Cents::parse(1234).unwrap(),
        sku: Sku::parse("LAMBDA-BIN-1".into()).unwrap(),
        stock: Stock::parse(7).unwrap(),
    };
    products::create(&**pool.get().await.unwrap(), &new).await.unwrap();
    pool.close();
    Database { admin, name, host, port }
}

fn list_products_event() -> Value {
    let fixture = format!("{}/../../events/list-products.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap()
}

/// The next answer of the function: `id`'s, a 200 listing the product.
async fn assert_listed(runtime: &mut FakeRuntime, id: &str) {
    let Answer { id: got, body: response, .. } = runtime.answer().await;
    assert_eq!(got, id, "{response}");
    assert_eq!(response["statusCode"], 200, "{id}: {response}");
    let body: Value = serde_json::from_str(response["body"].as_str().expect("body")).unwrap();
    assert_eq!(body[0]["sku"], "LAMBDA-BIN-1", "{body}");
    assert_eq!(body[0]["price"], 1234, "{body}");
}

#[tokio::test]
async fn http_function_loads_its_secrets_through_the_extension_once() {
    let Database { admin, name: db, host, port } = database_with_a_product("lambda").await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let secrets = HashMap::from([
        ("arn:jwt".to_owned(), json!("a-jwt-signing-key-of-more-than-32-bytes-0123456789")),
        ("arn:db".to_owned(), json!({"username": "postgres", "password": "trust-auth-ignores-it"})),
    ]);
    let event = list_products_event();
    let events = vec![("one".to_owned(), event.clone()), ("two".to_owned(), event)];
    let mut lambda = Environment::start("list-products", events, secrets, seen.clone()).await.unwrap();

    let mut command = lambda.command(env!("CARGO_BIN_EXE_list-products"), (&host, port, &db));
    let child = spawn_function(command.env("JWT_SECRET_ARN", "arn:jwt")).unwrap();

    for id in ["one", "two"] {
        assert_listed(&mut lambda.runtime, id).await;
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    // Told of the JWT key, it still reads only what it uses: it verifies no token.
    assert_eq!(seen, vec!["arn:db".to_owned()], "each secret it uses is read once, and no other");

    drop(child);
    drop_database(&admin, &db).await;
}

/// The binary with its configuration in the environment (as locally), not the extension.
fn spawn_configured_in_env(runtime: std::net::SocketAddr, database_url: &str) -> Killed {
    spawn_function(
        lambda_command(env!("CARGO_BIN_EXE_list-products"), "list-products", runtime)
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", "a-jwt-signing-key-of-more-than-32-bytes-0123456789"),
    )
    .unwrap()
}

/// Longer than the pool's idle-check threshold (1 s), as a freeze between invocations
/// that lets a connection die is.
const FROZEN_FOR: Duration = Duration::from_millis(1500);

/// Lambda freezes an environment between invocations; RDS Proxy drops idle clients, and a
/// failover ends every connection. The frozen function's connection dies, the next
/// invocation arrives, the environment thaws: that invocation must still answer 200.
#[tokio::test]
async fn a_connection_that_died_while_frozen_costs_no_invocation() {
    let Database { admin, name: db, host, port } = database_with_a_product("frozen").await;
    let event = list_products_event();
    let mut runtime = FakeRuntime::start("list-products", vec![("warm".to_owned(), event.clone())]).await.unwrap();
    let child = spawn_configured_in_env(runtime.address, &format!("host={host} port={port} user=postgres dbname={db}"));
    assert_listed(&mut runtime, "warm").await;

    for round in ["thawed-1", "thawed-2", "thawed-3"] {
        child.signal("-STOP");
        let terminated: i64 = admin
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db],
            )
            .await
            .unwrap()
            .get(0);
        assert!(terminated >= 1, "{round}: the function held no connection");
        runtime.invoke(round, event.clone());
        tokio::time::sleep(FROZEN_FOR).await;
        child.signal("-CONT");
        assert_listed(&mut runtime, round).await;
    }

    drop(child);
    drop_database(&admin, &db).await;
}

/// A TCP relay in front of Postgres that can drop its connections silently, as a proxy or
/// NAT does when it times a connection out while the Lambda environment is frozen (its
/// FIN never reaches the frozen guest): the backend goes away, the client's socket still
/// looks open, and only its next write learns otherwise (a reset).
struct SilentDropper {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
}

impl SilentDropper {
    async fn start(host: &str, port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_port = listener.local_addr().unwrap().port();
        let (cut, _) = tokio::sync::watch::channel(0);
        let upstream = format!("{host}:{port}");
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {
                            drop(server);
                            // Closing a socket with unread input sends a reset.
                            let _ = client.peek(&mut [0u8; 1]).await;
                        }
                    }
                });
            }
        });
        Self { port: relay_port, cut }
    }

    fn drop_connections(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }
}

/// The connection died without the function being told (see [`SilentDropper`]): the
/// fast check (`is_closed`) cannot see it, and the invocation must still answer 200.
#[tokio::test]
async fn a_connection_dropped_silently_costs_no_invocation() {
    let Database { admin, name: db, host, port } = database_with_a_product("dropped").await;
    let relay = SilentDropper::start(&host, port).await;
    let event = list_products_event();
    let mut runtime = FakeRuntime::start("list-products", vec![("warm".to_owned(), event.clone())]).await.unwrap();
    let child = spawn_configured_in_env(
        runtime.address,
        &format!("host=127.0.0.1 port={} user=postgres dbname={db}", relay.port),
    );
    assert_listed(&mut runtime, "warm").await;

    for round in ["after-drop-1", "after-drop-2"] {
        relay.drop_connections();
        tokio::time::sleep(FROZEN_FOR).await;
        runtime.invoke(round, event.clone());
        assert_listed(&mut runtime, round).await;
    }

    drop(child);
    drop_database(&admin, &db).await;
}

/// PostgreSQL (the test's own cluster) restarted while the function is frozen.
#[tokio::test]
async fn a_database_restart_while_frozen_costs_no_invocation() {
    let cluster = OwnPostgres::start();
    let Database { name: db, host, port, .. } =
        database_with_a_product_on(&cluster.url("postgres"), "127.0.0.1".to_owned(), cluster.port(), "restart").await;
    let event = list_products_event();
    let mut runtime = FakeRuntime::start("list-products", vec![("warm".to_owned(), event.clone())]).await.unwrap();
    let child = spawn_configured_in_env(runtime.address, &format!("host={host} port={port} user=postgres dbname={db}"));
    assert_listed(&mut runtime, "warm").await;

    for round in ["restarted-1", "restarted-2"] {
        child.signal("-STOP");
        cluster.pg_ctl("restart");
        runtime.invoke(round, event.clone());
        tokio::time::sleep(FROZEN_FOR).await;
        child.signal("-CONT");
        assert_listed(&mut runtime, round).await;
    }
}
