//! Bad input of every kind gets a clear 4xx JSON error, never a 500, and writes nothing.

use common::domain::Role;
use http::{Method, StatusCode};

use testkit::app::TestApp;

const TABLES: [&str; 5] = ["users", "products", "product_stock", "orders", "order_items"];

async fn row_counts(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push(app.count(table).await);
    }
    counts
}

/// Every JSON endpoint, with the token it needs.
async fn endpoints(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("/api/v1/auth/register", None),
        ("/api/v1/auth/login", None),
        ("/api/v1/products", Some(app.user_token(Role::Admin).await)),
        ("/api/v1/orders", Some(app.user_token(Role::User).await)),
    ]
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> (StatusCode, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(ct) = content_type {
        headers.push(("content-type", ct));
    }
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let response = app.send(Method::POST, path, &headers, body.to_vec()).await;
    (response.status, response.code().to_owned())
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = TestApp::spawn().await;
    let endpoints = endpoints(&app).await;
    let before = row_counts(&app).await;
    let bodies: [&[u8]; 7] = [b"", b"{", b"not json", b"{\"email\": }", b"[1, 2]", b"\"a string\"", b"{} trailing"];
    for (path, token) in &endpoints {
        for body in bodies {
            let (status, code) = post_raw(&app, path, token.as_deref(), Some("application/json"), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {:?}", String::from_utf8_lossy(body));
            assert_eq!(code, "malformed_json", "{path} {:?}", String::from_utf8_lossy(body));
        }
        let (status, _) = post_raw(&app, path, token.as_deref(), Some("application/json"), b"\xff\xfe{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} invalid UTF-8");
    }
    assert_eq!(row_counts(&app).await, before, "rows written for {TABLES:?}");
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::spawn().await;
    let endpoints = endpoints(&app).await;
    let before = row_counts(&app).await;
    for (path, token) in &endpoints {
        for content_type in
            [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/jsonp")]
        {
            let (status, code) = post_raw(&app, path, token.as_deref(), content_type, b"{}").await;
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path} {content_type:?}");
            assert_eq!(code, "unsupported_media_type");
        }
        let (status, _) = post_raw(&app, path, token.as_deref(), Some("application/json; charset=utf-8"), b"{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: charset parameter must be accepted");
    }
    assert_eq!(row_counts(&app).await, before, "rows written for {TABLES:?}");
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::spawn().await;
    let endpoints = endpoints(&app).await;
    let before = row_counts(&app).await;
    let big = format!("{{\"email\": \"{}@example.com\", \"password\": \"long enough\"}}", "a".repeat(64 * 1024));
    for (path, token) in &endpoints {
        let (status, code) = post_raw(&app, path, token.as_deref(), Some("application/json"), big.as_bytes()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(code, "payload_too_large");
    }
    assert_eq!(row_counts(&app).await, before, "rows written for {TABLES:?}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;

    let missing = app.get("/api/v1/nothing-here", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "route_not_found");

    let wrong_method = app.send(Method::DELETE, "/api/v1/products", &[], Vec::new()).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.code(), "method_not_allowed");
    let allow = wrong_method.headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let get_register = app.get("/api/v1/auth/register", None).await;
    assert_eq!(get_register.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;

    let generated = app.get("/api/v1/products", None).await;
    let id = generated.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(id.len(), 36, "{id}");

    let echoed = app.send(Method::GET, "/api/v1/products", &[("x-request-id", "trace-me-123")], Vec::new()).await;
    assert_eq!(echoed.headers.get("x-request-id").map(|v| v.as_bytes()), Some(&b"trace-me-123"[..]));
}
