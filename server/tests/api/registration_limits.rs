//! Registrations per network: counted before the password hash, shared across server
//! instances, refused past the limit with nothing created, replays not counted.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;

use testkit::app::{PASSWORD, TestApp, TestResponse};

fn retry_after(response: &TestResponse) -> u64 {
    response.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn the_eleventh_registration_from_one_network_is_refused() {
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    for i in 0..10 {
        let server = if i % 2 == 0 { &first } else { &second };
        let response = server.register(&format!("user{i}@example.com"), PASSWORD).await;
        assert_eq!(response.status, StatusCode::CREATED, "registration {i}: {:?}", response.body);
    }

    let refused = second.register("user10@example.com", PASSWORD).await;

    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "too_many_registrations");
    let wait = retry_after(&refused);
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    assert_eq!(first.count("users").await, 10);
    assert_eq!(first.count("outbox").await, 10, "no welcome mail for the refused one");
    assert_eq!(
        first.client_at([127, 0, 0, 2]).register("user10@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );

    // When the hour has passed, the first network registers again.
    let db = first.pool().get().await.expect("connection");
    db.execute("UPDATE rate_limits SET expires_at = now() - INTERVAL '1 second'", &[]).await.expect("age");
    assert_eq!(first.register("user11@example.com", PASSWORD).await.status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_from_one_network_create_at_most_ten() {
    let first = Arc::new(TestApp::spawn().await);
    let second = Arc::new(first.sibling().await);
    let attempts: Vec<_> = (0..30)
        .map(|i| {
            let server = if i % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move { server.register(&format!("burst{i}@example.com"), PASSWORD).await })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        let response = attempt.await.expect("task");
        match response.status {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(response.code(), "too_many_registrations"),
            other => panic!("unexpected {other}: {:?}", response.body),
        }
    }

    assert_eq!(created, 10);
    assert_eq!(first.count("users").await, 10);
    assert_eq!(first.count("outbox").await, 10);
}

async fn register_with_key(app: &TestApp, key: &str, email: &str) -> TestResponse {
    let headers = [("content-type", "application/json"), ("idempotency-key", key)];
    let body = json!({"email": email, "password": PASSWORD});
    app.send(Method::POST, "/api/v1/auth/register", &headers, body.to_string().into_bytes()).await
}

/// A retry of a registration that succeeded costs no hash and no mail: it is not counted.
#[tokio::test]
async fn replayed_registrations_are_not_counted() {
    let app = TestApp::spawn().await;
    assert_eq!(register_with_key(&app, "signup", "wes@example.com").await.status, StatusCode::CREATED);
    for _ in 0..15 {
        let replay = register_with_key(&app, "signup", "wes@example.com").await;
        assert_eq!(replay.status, StatusCode::CREATED, "{:?}", replay.body);
        assert_eq!(replay.headers.get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
    }
    for i in 1..10 {
        assert_eq!(app.register(&format!("new{i}@example.com"), PASSWORD).await.status, StatusCode::CREATED);
    }
    assert_eq!(app.register("new10@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    // A replay still answers past the limit; a new key does not.
    assert_eq!(register_with_key(&app, "signup", "wes@example.com").await.status, StatusCode::CREATED);
    assert_eq!(register_with_key(&app, "other", "xan@example.com").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.count("users").await, 10);
}
