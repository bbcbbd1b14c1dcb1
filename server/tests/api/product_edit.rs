//! PATCH /api/v1/products/{id}: edits from a version (ETag / If-Match), admin only.

use std::sync::Arc;

use common::domain::Role;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::app::{TestApp, TestResponse};

pub(crate) async fn patch(
    app: &TestApp,
    id: i64,
    body: &Value,
    token: Option<&str>,
    if_match: Option<&str>,
) -> TestResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    if let Some(tag) = if_match {
        headers.push(("if-match", tag));
    }
    app.send(Method::PATCH, &format!("/api/v1/products/{id}"), &headers, body.to_string().into_bytes()).await
}

pub(crate) fn etag(response: &TestResponse) -> String {
    response.headers.get("etag").expect("ETag").to_str().expect("ASCII ETag").to_owned()
}

#[tokio::test]
async fn an_admin_edits_from_the_etag_and_gets_the_next_one() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let id = app.product("EDIT-1", 1000, 5).await;
    let read = app.get(&format!("/api/v1/products/{id}"), None).await;
    let tag = etag(&read);

    let edited = patch(
        &app,
        id,
        &json!({"name": "Renamed", "description": "New text", "price": 1500, "sku": "EDIT-2"}),
        Some(&admin),
        Some(&tag),
    )
    .await;

    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    assert_eq!(edited.body["name"], "Renamed");
    assert_eq!(edited.body["description"], "New text");
    assert_eq!(edited.body["price"], 1500);
    assert_eq!(edited.body["sku"], "EDIT-2");
    assert_eq!(edited.body["stock"], 5);
    assert_ne!(etag(&edited), tag);
    let again = app.get(&format!("/api/v1/products/{id}"), None).await;
    assert_eq!(again.body, edited.body);
    assert_eq!(etag(&again), etag(&edited));

    // A field left out keeps its value.
    let price_only = patch(&app, id, &json!({"price": 1200}), Some(&admin), Some(&etag(&again))).await;
    assert_eq!(price_only.status, StatusCode::OK, "{:?}", price_only.body);
    assert_eq!(price_only.body["name"], "Renamed");
    assert_eq!(price_only.body["price"], 1200);
}

#[tokio::test]
async fn a_stale_or_missing_version_changes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let id = app.product("STALE-1", 1000, 5).await;
    let tag = etag(&app.get(&format!("/api/v1/products/{id}"), None).await);
    assert_eq!(patch(&app, id, &json!({"price": 1}), Some(&admin), Some(&tag)).await.status, StatusCode::OK);

    let stale = patch(&app, id, &json!({"price": 2}), Some(&admin), Some(&tag)).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED, "{:?}", stale.body);
    assert_eq!(stale.code(), "version_mismatch");
    let weak = patch(&app, id, &json!({"price": 2}), Some(&admin), Some(&format!("W/{tag}"))).await;
    assert_eq!(weak.status, StatusCode::PRECONDITION_FAILED);
    let missing = patch(&app, id, &json!({"price": 2}), Some(&admin), None).await;
    assert_eq!(missing.status, StatusCode::PRECONDITION_REQUIRED, "{:?}", missing.body);
    assert_eq!(missing.code(), "if_match_required");
    assert_eq!(app.get(&format!("/api/v1/products/{id}"), None).await.body["price"], 1);
}

#[tokio::test]
async fn edits_follow_the_create_rules() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let id = app.product("RULES-1", 1000, 5).await;
    app.product("TAKEN-1", 1000, 5).await;
    let tag = etag(&app.get(&format!("/api/v1/products/{id}"), None).await);
    let cases = [
        (json!({"name": "  "}), "name"),
        (json!({"price": -1}), "price"),
        (json!({"price": 1.5}), "price"),
        (json!({"sku": "has space"}), "sku"),
        (json!({"description": "nul\u{0}"}), "description"),
        (json!({"stock": 3}), "stock"),
    ];
    for (body, field) in cases {
        let response = patch(&app, id, &body, Some(&admin), Some(&tag)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{field}: {:?}", response.body);
        assert_eq!(response.field(), field);
    }
    let taken = patch(&app, id, &json!({"sku": "TAKEN-1"}), Some(&admin), Some(&tag)).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{:?}", taken.body);
    assert_eq!(taken.code(), "sku_taken");
    let unknown = patch(&app, id + 100, &json!({"price": 1}), Some(&admin), Some(&tag)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "product_not_found");
    let product = app.get(&format!("/api/v1/products/{id}"), None).await;
    assert_eq!((product.body["sku"].as_str(), product.body["price"].as_i64()), (Some("RULES-1"), Some(1000)));
    assert_eq!(etag(&product), tag);
}

#[tokio::test]
async fn only_admins_edit() {
    let app = TestApp::spawn().await;
    let user = app.user_token(Role::User).await;
    let id = app.product("AUTH-1", 1000, 5).await;
    let tag = etag(&app.get(&format!("/api/v1/products/{id}"), None).await);

    let anonymous = patch(&app, id, &json!({"price": 1}), None, Some(&tag)).await;
    assert_eq!((anonymous.status, anonymous.code()), (StatusCode::UNAUTHORIZED, "missing_token"));
    let as_user = patch(&app, id, &json!({"price": 1}), Some(&user), Some(&tag)).await;
    assert_eq!((as_user.status, as_user.code()), (StatusCode::FORBIDDEN, "admin_only"));
    assert_eq!(app.get(&format!("/api/v1/products/{id}"), None).await.body["price"], 1000);
}

/// The lost update: two admins edit from the same read at the same time. One edit wins,
/// the other is told the product changed; the winner's price is the one stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_edits_from_one_version_cannot_both_win() {
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.user_token(Role::Admin).await;
    for round in 0..10 {
        let id = app.product(&format!("LOST-{round}"), 1000, 5).await;
        let tag = etag(&app.get(&format!("/api/v1/products/{id}"), None).await);
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let edits = [2000, 3000].map(|price| {
            let (app, admin, tag, barrier) = (app.clone(), admin.clone(), tag.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                (price, patch(&app, id, &json!({"price": price}), Some(&admin), Some(&tag)).await)
            })
        });
        let mut winners = Vec::new();
        for edit in edits {
            let (price, response) = edit.await.expect("edit task");
            match response.status {
                StatusCode::OK => winners.push(price),
                StatusCode::PRECONDITION_FAILED => assert_eq!(response.code(), "version_mismatch"),
                other => panic!("round {round}: {other} {:?}", response.body),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(app.get(&format!("/api/v1/products/{id}"), None).await.body["price"], winners[0]);
    }
}
