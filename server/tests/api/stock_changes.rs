//! POST /api/v1/products/{id}/stock: restocks and corrections, through the ledger.

use std::collections::HashMap;
use std::sync::Arc;

use common::domain::Role;
use http::StatusCode;
use serde_json::json;
use testkit::app::TestApp;

async fn ledger_sum(app: &TestApp, product: i64) -> i64 {
    app.query_one("SELECT coalesce(sum(delta), 0)::BIGINT FROM stock_movements WHERE product_id = $1", &[&product])
        .await
}

#[tokio::test]
async fn an_admin_adds_and_removes_stock_and_the_ledger_says_who_and_why() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let id = app.product("STOCK-1", 1000, 5).await;
    let path = format!("/api/v1/products/{id}/stock");

    let added = app.post(&path, &json!({"delta": 10, "reason": "delivery"}), Some(&admin)).await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    assert_eq!((added.body["id"].as_i64(), added.body["stock"].as_i64()), (Some(id), Some(15)));
    let removed = app.post(&path, &json!({"delta": -15, "reason": "water damage"}), Some(&admin)).await;
    assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.body);
    assert_eq!(removed.body["stock"], 0);
    assert_eq!(app.stock(id).await, 0);

    // The test's admin is the first user; app.product signs in as another.
    let who: i64 = app.query_one("SELECT min(id) FROM users", &[]).await;
    let client = app.pool().get().await.expect("connection");
    let rows = client
        .query(
            "SELECT delta, reason, user_id, created_at <= now() FROM stock_movements WHERE product_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .expect("ledger");
    let ledger: Vec<(i32, String, i64, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(ledger, vec![(10, "delivery".to_owned(), who, true), (-15, "water damage".to_owned(), who, true)]);
}

#[tokio::test]
async fn stock_never_goes_below_zero_and_bad_input_changes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let id = app.product("STOCK-2", 1000, 5).await;
    let path = format!("/api/v1/products/{id}/stock");

    let short = app.post(&path, &json!({"delta": -6, "reason": "count"}), Some(&admin)).await;
    assert_eq!(short.status, StatusCode::CONFLICT, "{:?}", short.body);
    assert_eq!((short.code(), short.body["product_id"].as_i64()), ("insufficient_stock", Some(id)));
    for (body, field) in [
        (json!({"delta": 0, "reason": "x"}), "delta"),
        (json!({"reason": "x"}), "delta"),
        (json!({"delta": 1.5, "reason": "x"}), "delta"),
        (json!({"delta": 1_000_001, "reason": "x"}), "delta"),
        (json!({"delta": 1}), "reason"),
        (json!({"delta": 1, "reason": "  "}), "reason"),
    ] {
        let response = app.post(&path, &body, Some(&admin)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {:?}", response.body);
        assert_eq!(response.field(), field);
    }
    let unknown = app
        .post(&format!("/api/v1/products/{}/stock", id + 100), &json!({"delta": 1, "reason": "x"}), Some(&admin))
        .await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "product_not_found"));
    assert_eq!(app.stock(id).await, 5);
    assert_eq!(app.count("stock_movements").await, 0);
}

#[tokio::test]
async fn only_admins_change_stock() {
    let app = TestApp::spawn().await;
    let user = app.user_token(Role::User).await;
    let id = app.product("STOCK-3", 1000, 5).await;
    let path = format!("/api/v1/products/{id}/stock");
    let body = json!({"delta": 5, "reason": "x"});

    let anonymous = app.post(&path, &body, None).await;
    assert_eq!((anonymous.status, anonymous.code()), (StatusCode::UNAUTHORIZED, "missing_token"));
    let as_user = app.post(&path, &body, Some(&user)).await;
    assert_eq!((as_user.status, as_user.code()), (StatusCode::FORBIDDEN, "admin_only"));
    assert_eq!(app.stock(id).await, 5);
}

/// Restocks and removals racing buyers of a product split into 16 buckets (and one that is
/// not split yet, which the orders split): after each round the stock is exactly the
/// initial stock plus what was added, minus what was removed and sold; no bucket is
/// negative, the ledger sums to what the admins changed, and GET and the catalogue agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restocks_and_removals_racing_orders_keep_the_stock_exact() {
    const INITIAL: i64 = 40;
    const BUYERS: usize = 24;
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.user_token(Role::Admin).await;
    let buyers = app.user_tokens(Role::User, BUYERS).await;
    for round in 0..6 {
        let product = app.product(&format!("RESTOCK-{round}"), 100, INITIAL).await;
        if round % 2 == 0 {
            app.split(product).await;
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(BUYERS + 8));
        let mut tasks = Vec::new();
        for (i, token) in buyers.iter().cloned().enumerate() {
            let (app, barrier) = (app.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let quantity = 1 + (i % 3) as i64;
                let response = app
                    .post("/api/v1/orders", &json!({"product_id": product, "quantity": quantity}), Some(&token))
                    .await;
                ("order", quantity, response)
            }));
        }
        for delta in [7_i64, -9, 5, -12, 3, -20, 11, -6] {
            let (app, admin, barrier) = (app.clone(), admin.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let response = app
                    .post(
                        &format!("/api/v1/products/{product}/stock"),
                        &json!({"delta": delta, "reason": "race"}),
                        Some(&admin),
                    )
                    .await;
                ("stock", delta, response)
            }));
        }
        let (mut sold, mut changed) = (0, 0);
        let mut statuses: HashMap<(&str, u16), usize> = HashMap::new();
        for task in tasks {
            let (kind, amount, response) = task.await.expect("task");
            *statuses.entry((kind, response.status.as_u16())).or_default() += 1;
            match (kind, response.status) {
                ("order", StatusCode::CREATED) => sold += amount,
                ("stock", StatusCode::OK) => changed += amount,
                ("order", StatusCode::CONFLICT) => assert_eq!(response.code(), "out_of_stock"),
                ("stock", StatusCode::CONFLICT) => assert_eq!(response.code(), "insufficient_stock"),
                _ => panic!("round {round}: {kind} {amount}: {} {:?}", response.status, response.body),
            }
        }
        let stock = app.stock(product).await;
        assert_eq!(stock, INITIAL + changed - sold, "round {round}: {statuses:?}");
        assert!(stock >= 0);
        assert_eq!(ledger_sum(&app, product).await, changed, "round {round}");
        let ordered: i64 = app
            .query_one("SELECT coalesce(sum(quantity), 0)::BIGINT FROM order_items WHERE product_id = $1", &[&product])
            .await;
        assert_eq!(ordered, sold, "round {round}");
        assert_eq!(app.get(&format!("/api/v1/products/{product}"), None).await.body["stock"], stock);
        let page = app.get(&format!("/api/v1/products?after={}&limit=1", product - 1), None).await;
        assert_eq!(page.body[0]["stock"], stock, "round {round}");
    }
    let negative: i64 = app.query_one("SELECT count(*) FROM product_stock WHERE stock < 0", &[]).await;
    assert_eq!(negative, 0);
}
