//! Multi-item orders: all lines or none, named shortages, and no deadlock between carts
//! that list the same products in opposite orders.

use std::sync::Arc;

use common::domain::Role;
use http::StatusCode;
use serde_json::json;

use testkit::app::TestApp;

#[tokio::test]
async fn a_cart_buys_every_line_in_one_order() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.product("CART-A", 1000, 10).await, app.product("CART-B", 250, 10).await);
    let user = app.user_token(Role::User).await;

    let body =
        json!({"items": [{"product_id": b, "quantity": 2}, {"product_id": a}, {"product_id": b, "quantity": 1}]});
    let response = app.post("/api/v1/orders", &body, Some(&user)).await;

    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    let order = &response.body["order"];
    assert_eq!(order["total"], 1000 + 3 * 250);
    // Repeated products are merged into one line; lines come back in product id order.
    assert_eq!(
        order["items"],
        json!([
            {"product_id": a, "quantity": 1, "unit_price": 1000, "line_total": 1000},
            {"product_id": b, "quantity": 3, "unit_price": 250, "line_total": 750},
        ])
    );
    assert!(order.get("product_id").is_none(), "single-line fields on a cart: {order}");
    assert_eq!((app.stock(a).await, app.stock(b).await), (9, 7));
}

#[tokio::test]
async fn one_short_line_fails_the_whole_cart() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.product("ALL-A", 100, 10).await, app.product("ALL-B", 100, 1).await);
    let user = app.user_token(Role::User).await;

    let response = app
        .post(
            "/api/v1/orders",
            &json!({"items": [{"product_id": a, "quantity": 5}, {"product_id": b, "quantity": 2}]}),
            Some(&user),
        )
        .await;

    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(response.code(), "out_of_stock");
    assert_eq!(response.body["product_id"], b);
    assert_eq!((app.stock(a).await, app.stock(b).await), (10, 1));
    assert_eq!(app.count("orders").await, 0);

    let unknown =
        app.post("/api/v1/orders", &json!({"items": [{"product_id": a}, {"product_id": 987654}]}), Some(&user)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["product_id"], 987654);
    assert_eq!(app.stock(a).await, 10);
}

#[tokio::test]
async fn cart_rules() {
    let app = TestApp::spawn().await;
    let a = app.product("RULE-A", 100, 10).await;
    let user = app.user_token(Role::User).await;
    let many: Vec<_> = (0..51).map(|_| json!({"product_id": a})).collect();
    let cases = [
        (json!({"items": []}), "items"),
        (json!({"items": many}), "items"),
        (json!({"items": [{"product_id": a}], "product_id": a}), "items"),
        (json!({"items": "all"}), "items"),
        (json!({"items": [{"product_id": a}, {"quantity": 1}]}), "items[1].product_id"),
        (json!({"items": [{"product_id": a, "quantity": 0}]}), "items[0].quantity"),
        (json!({"items": [{"product_id": a, "quantity": 60}, {"product_id": a, "quantity": 60}]}), "quantity"),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/orders", &body, Some(&user)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {:?}", response.body);
        assert_eq!(response.field(), field, "{body}");
    }
    assert_eq!(app.stock(a).await, 10);
}

/// Carts [A, B] and [B, A] placed concurrently, many times: with locks taken in product id
/// order, none deadlocks (a deadlock would surface as a 500 or a retry storm), every order
/// succeeds and the stock adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposite_carts_do_not_deadlock() {
    const ROUNDS: usize = 10;
    const PAIRS: usize = 10;
    let app = Arc::new(TestApp::spawn().await);
    // Both products start in one bucket: the first contended carts split them (locking
    // every bucket of a product) while other carts wait on those buckets.
    let stock = (ROUNDS * PAIRS * 2) as i64;
    let (a, b) = (app.product("DL-A", 1, stock).await, app.product("DL-B", 1, stock).await);
    let mut tokens = Vec::new();
    for _ in 0..PAIRS * 2 {
        tokens.push(app.user_token(Role::User).await);
    }
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for (i, token) in tokens.iter().cloned().enumerate() {
            let app = app.clone();
            let cart = if i % 2 == 0 { [a, b] } else { [b, a] };
            tasks.push(tokio::spawn(async move {
                let body = json!({"items": [{"product_id": cart[0]}, {"product_id": cart[1]}]});
                app.post("/api/v1/orders", &body, Some(&token)).await.status
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("task"), StatusCode::CREATED, "round {round}");
        }
    }
    let placed = (ROUNDS * PAIRS * 2) as i64;
    assert_eq!(app.count("orders").await, placed);
    assert_eq!((app.stock(a).await, app.stock(b).await), (stock - placed, stock - placed));
}
