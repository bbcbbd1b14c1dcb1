//! Login throttling: per email and per client address, shared across server instances,
//! and the same for unknown emails as for real ones.

use http::StatusCode;

use crate::helpers::{PASSWORD, TestApp, TestResponse};

fn retry_after(response: &TestResponse) -> u64 {
    response.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn five_failures_block_the_email_even_for_the_right_password() {
    let app = TestApp::spawn().await;
    app.register("kim@example.com", PASSWORD).await;
    for attempt in 1..=5 {
        let response = app.login("kim@example.com", "wrong password").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }

    let blocked = app.login("kim@example.com", PASSWORD).await;

    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.code(), "too_many_attempts");
    let wait = retry_after(&blocked);
    assert!((1..=900).contains(&wait), "Retry-After {wait}");
    // Another account from the same address is unaffected.
    app.register("lee@example.com", PASSWORD).await;
    assert_eq!(app.login("lee@example.com", PASSWORD).await.status, StatusCode::OK);

    // When the window has passed, the right password works again.
    let db = app.pool().get().await.expect("connection");
    db.execute("UPDATE login_failures SET window_start = now() - INTERVAL '16 minutes'", &[]).await.expect("age");
    assert_eq!(app.login("kim@example.com", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_emails_are_throttled_the_same_way() {
    let app = TestApp::spawn().await;
    app.register("real@example.com", PASSWORD).await;
    let mut real = Vec::new();
    let mut ghost = Vec::new();
    for _ in 0..6 {
        real.push(app.login("real@example.com", "wrong password").await);
        ghost.push(app.login("ghost@example.com", "wrong password").await);
    }
    for (real, ghost) in real.iter().zip(&ghost) {
        assert_eq!(real.status, ghost.status);
        assert_eq!(real.body, ghost.body);
    }
    assert_eq!(real[5].status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_success_resets_the_count() {
    let app = TestApp::spawn().await;
    app.register("max@example.com", PASSWORD).await;
    for round in 0..3 {
        for _ in 0..4 {
            assert_eq!(app.login("max@example.com", "wrong password").await.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(app.login("max@example.com", PASSWORD).await.status, StatusCode::OK, "round {round}");
    }
}

#[tokio::test]
async fn one_address_trying_many_emails_is_blocked() {
    let app = TestApp::spawn().await;
    for i in 0..20 {
        let response = app.login(&format!("spray{i}@example.com"), "guess").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let next = app.login("spray-new@example.com", "guess").await;
    assert_eq!(next.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_count_is_shared_between_server_instances() {
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    first.register("ivy@example.com", PASSWORD).await;
    for attempt in 0..5 {
        let server = if attempt % 2 == 0 { &first } else { &second };
        assert_eq!(server.login("ivy@example.com", "wrong password").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(second.login("ivy@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.login("ivy@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
}
