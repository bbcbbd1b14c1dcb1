//! GET /api/v1/orders: the caller's own orders, newest first, paginated.

use common::domain::Role;
use http::StatusCode;
use serde_json::json;

use testkit::app::TestApp;

#[tokio::test]
async fn users_see_their_own_orders_newest_first() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.product("HIST-A", 300, 50).await, app.product("HIST-B", 700, 50).await);
    let (ann, bob) = (app.user_token(Role::User).await, app.user_token(Role::User).await);
    let mut anns = Vec::new();
    for quantity in 1..=5 {
        let order = app.post("/api/v1/orders", &json!({"product_id": a, "quantity": quantity}), Some(&ann)).await;
        anns.push(order.body["order_id"].as_i64().expect("id"));
    }
    let cart = app
        .post("/api/v1/orders", &json!({"items": [{"product_id": a}, {"product_id": b, "quantity": 2}]}), Some(&ann))
        .await;
    anns.push(cart.body["order_id"].as_i64().expect("id"));
    app.post("/api/v1/orders", &json!({"product_id": b}), Some(&bob)).await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/orders?limit=4".to_owned();
    loop {
        let page = app.get(&path, Some(&ann)).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let orders = page.body.as_array().expect("bare array").clone();
        if seen.is_empty() {
            assert_eq!(orders[0]["total"], 300 + 2 * 700);
            assert_eq!(orders[0]["items"].as_array().map(Vec::len), Some(2));
            assert_eq!(orders[1]["quantity"], 5);
            assert_eq!(orders[1]["total"], 1500);
        }
        seen.extend(orders.iter().map(|o| o["id"].as_i64().expect("id")));
        let Some(link) = page.headers.get("link") else { break };
        path = link.to_str().expect("ascii").trim_start_matches('<').split('>').next().expect("url").to_owned();
    }
    anns.reverse();
    assert_eq!(seen, anns);

    let bobs = app.get("/api/v1/orders", Some(&bob)).await;
    assert_eq!(bobs.body.as_array().map(Vec::len), Some(1));
    assert_eq!(bobs.body[0]["product_id"], b);
}

#[tokio::test]
async fn order_history_needs_a_token() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/orders", None).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.code(), "missing_token");
    let fresh = app.user_token(Role::User).await;
    let empty = app.get("/api/v1/orders", Some(&fresh)).await;
    assert_eq!(empty.body, json!([]));
}
