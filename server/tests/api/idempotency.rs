//! `Idempotency-Key` on POST /orders: a retry replays the first order, never charges twice.

use std::sync::Arc;

use common::domain::Role;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use testkit::app::{TestApp, TestResponse};

async fn order_with_key(app: &TestApp, token: &str, key: &str, body: &Value) -> TestResponse {
    let auth = format!("Bearer {token}");
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str()), ("idempotency-key", key)];
    app.send(Method::POST, "/api/v1/orders", &headers, body.to_string().into_bytes()).await
}

#[tokio::test]
async fn a_retry_replays_the_first_order() {
    let app = TestApp::spawn().await;
    let product = app.product("IDEM-1", 500, 10).await;
    let user = app.user_token(Role::User).await;
    let body = json!({"product_id": product, "quantity": 2});

    let first = order_with_key(&app, &user, "checkout-42", &body).await;
    let retry = order_with_key(&app, &user, "checkout-42", &body).await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.headers.get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(app.stock(product).await, 8);
    assert_eq!(app.count("orders").await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_conflict() {
    let app = TestApp::spawn().await;
    let product = app.product("IDEM-2", 500, 10).await;
    let user = app.user_token(Role::User).await;
    order_with_key(&app, &user, "k1", &json!({"product_id": product})).await;

    let other = order_with_key(&app, &user, "k1", &json!({"product_id": product, "quantity": 3})).await;

    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.code(), "idempotency_key_reused");
    assert_eq!(app.stock(product).await, 9);
    // The same lines written differently are the same request.
    let same = order_with_key(&app, &user, "k1", &json!({"items": [{"product_id": product, "quantity": 1}]})).await;
    assert_eq!(same.status, StatusCode::CREATED);
}

#[tokio::test]
async fn keys_belong_to_their_user_and_expire_after_a_day() {
    let app = TestApp::spawn().await;
    let product = app.product("IDEM-3", 500, 10).await;
    let (ann, bob) = (app.user_token(Role::User).await, app.user_token(Role::User).await);
    let body = json!({"product_id": product});

    let for_ann = order_with_key(&app, &ann, "shared-key", &body).await;
    let for_bob = order_with_key(&app, &bob, "shared-key", &body).await;
    assert_ne!(for_ann.body["order_id"], for_bob.body["order_id"]);
    assert_eq!(app.stock(product).await, 8);

    let client = app.pool().get().await.expect("connection");
    client
        .execute("UPDATE idempotency_keys SET created_at = now() - INTERVAL '25 hours'", &[])
        .await
        .expect("age keys");
    let after_expiry = order_with_key(&app, &ann, "shared-key", &body).await;
    assert_eq!(after_expiry.status, StatusCode::CREATED);
    assert_ne!(after_expiry.body["order_id"], for_ann.body["order_id"]);
    assert!(after_expiry.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.stock(product).await, 7);
}

#[tokio::test]
async fn unusable_keys_are_rejected() {
    let app = TestApp::spawn().await;
    let product = app.product("IDEM-4", 500, 10).await;
    let user = app.user_token(Role::User).await;
    for key in ["", "   ", &"k".repeat(256), "tab\there"] {
        let response = order_with_key(&app, &user, key, &json!({"product_id": product})).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{key:?}");
        assert_eq!(response.field(), "Idempotency-Key");
    }
    assert_eq!(app.stock(product).await, 10);
}

/// Twenty copies of one request race with one key: one order, charged once, and every
/// copy answered with that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_retries_charge_once() {
    let app = Arc::new(TestApp::spawn().await);
    let product = app.product("IDEM-RACE", 500, 100).await;
    let user = app.user_token(Role::User).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, user, barrier) = (app.clone(), user.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                order_with_key(&app, &user, "double-click", &json!({"product_id": product, "quantity": 3})).await
            })
        })
        .collect();
    let mut order_ids = Vec::new();
    for task in tasks {
        let response = task.await.expect("task");
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        order_ids.push(response.body["order_id"].as_i64().expect("order id"));
    }
    order_ids.dedup();
    assert_eq!(order_ids.len(), 1, "{order_ids:?}");
    assert_eq!(app.stock(product).await, 97);
    assert_eq!(app.count("orders").await, 1);
}

async fn register_with_key(app: &TestApp, key: &str, email: &str) -> TestResponse {
    let headers = [("content-type", "application/json"), ("idempotency-key", key)];
    let body = json!({"email": email, "password": testkit::app::PASSWORD});
    app.send(Method::POST, "/api/v1/auth/register", &headers, body.to_string().into_bytes()).await
}

#[tokio::test]
async fn a_retried_registration_replays_the_first() {
    let app = TestApp::spawn().await;

    let first = register_with_key(&app, "signup-1", "nia@example.com").await;
    let retry = register_with_key(&app, "signup-1", "NIA@example.com").await;

    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(retry.status, StatusCode::CREATED, "{:?}", retry.body);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.headers.get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(app.count("users").await, 1);
    assert_eq!(app.count("outbox").await, 1, "one welcome mail queued");

    let other_email = register_with_key(&app, "signup-1", "someone-else@example.com").await;
    assert_eq!(other_email.status, StatusCode::CONFLICT);
    assert_eq!(other_email.code(), "idempotency_key_reused");
    // Without a key, registering the same email again is the usual conflict.
    assert_eq!(app.register("nia@example.com", testkit::app::PASSWORD).await.code(), "email_taken");
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_registrations_with_one_key_create_one_user() {
    let app = Arc::new(TestApp::spawn().await);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { register_with_key(&app, "double-submit", "oli@example.com").await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let response = task.await.expect("task");
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        ids.push(response.body["user"]["id"].as_i64().expect("id"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.count("users").await, 1);
    assert_eq!(app.count("outbox").await, 1);
}
