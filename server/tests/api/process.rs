//! The `gamestore` process: refuses to start without a strong JWT secret, and drains
//! in-flight requests on shutdown.

use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use testkit::app::TestApp;

fn serve_with_secret(secret: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gamestore"));
    command
        .args(["serve", "--port", "0"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("RUST_LOG", "error")
        .env("NO_COLOR", "1")
        .env_remove("JWT_SECRET");
    if let Some(secret) = secret {
        command.env("JWT_SECRET", secret);
    }
    command.output().expect("run gamestore")
}

#[test]
fn no_or_short_jwt_secret_stops_the_process() {
    for secret in [None, Some("too-short-secret")] {
        let output = serve_with_secret(secret);
        assert!(!output.status.success(), "{secret:?} started");
        let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
        assert!(log.contains("JWT_SECRET"), "{secret:?}: {log}");
    }
}

/// A request whose body is still arriving when the shutdown signal comes is answered; the
/// server stops accepting new connections and returns once it is done.
#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let app = TestApp::spawn().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gamestore::serve(listener, app.state.clone(), async move {
        let _ = stopped.await;
    }));

    let body = br#"{"email":"drain@example.com","password":"correct horse battery"}"#;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&body[..10]).await.expect("write part of the body");
    tokio::time::sleep(Duration::from_millis(100)).await;

    stop.send(()).expect("signal shutdown");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(address).await.is_err(), "still accepting after shutdown");

    stream.write_all(&body[10..]).await.expect("write the rest");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read response");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let finished = tokio::time::timeout(Duration::from_secs(3), server).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "server did not stop after draining");
    assert_eq!(app.count("users").await, 1);
}

/// With the database unreachable the API answers 503 with Retry-After, not 500, and a
/// request that needs no database still works.
#[tokio::test]
async fn database_down_is_503() {
    let config = common::config::Config {
        database_url: "postgres://nobody@127.0.0.1:1/unreachable".into(),
        db_pool_size: 2,
        jwt_secret: testkit::app::JWT_SECRET.to_vec(),
        jwt_ttl: Duration::from_secs(60),
        limits: common::config::Limits::default(),
    };
    let state = common::AppState::new(&config).expect("state");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(gamestore::serve(listener, state, std::future::pending()));

    for path in ["/api/v1/products", "/api/v1/products/1"] {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 503"), "{path}: {response}");
        assert!(response.to_ascii_lowercase().contains("retry-after: 1"), "{response}");
        assert!(response.contains(r#""code":"service_unavailable""#), "{response}");
    }
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
