//! DELETE /api/v1/products/{id}: archived products leave the catalogue and take no orders.

use std::sync::Arc;
use std::time::Duration;

use common::domain::Role;
use http::{Method, StatusCode};
use serde_json::json;
use testkit::app::{TestApp, TestResponse};

async fn archive(app: &TestApp, id: i64, token: Option<&str>) -> TestResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    app.send(Method::DELETE, &format!("/api/v1/products/{id}"), &headers, Vec::new()).await
}

#[tokio::test]
async fn an_archived_product_leaves_the_catalogue_and_takes_no_orders_but_stays_readable() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let buyer = app.user_token(Role::User).await;
    let kept = app.product("KEPT", 1000, 5).await;
    let gone = app.product("GONE", 1000, 5).await;
    let bought = app.post("/api/v1/orders", &json!({"product_id": gone}), Some(&buyer)).await;
    assert_eq!(bought.status, StatusCode::CREATED);

    let first = archive(&app, gone, Some(&admin)).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{:?}", first.body);
    let archived_at: String = app.query_one("SELECT archived_at::TEXT FROM products WHERE id = $1", &[&gone]).await;
    let second = archive(&app, gone, Some(&admin)).await;
    assert_eq!(second.status, StatusCode::NO_CONTENT, "idempotent");
    let unchanged: String = app.query_one("SELECT archived_at::TEXT FROM products WHERE id = $1", &[&gone]).await;
    assert_eq!(unchanged, archived_at);

    let catalogue = app.get("/api/v1/products", None).await;
    let ids: Vec<i64> = catalogue.body.as_array().expect("array").iter().filter_map(|p| p["id"].as_i64()).collect();
    assert_eq!(ids, vec![kept]);
    let read = app.get(&format!("/api/v1/products/{gone}"), None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.body["archived_at"].is_string(), "{:?}", read.body);
    assert!(app.get(&format!("/api/v1/products/{kept}"), None).await.body.get("archived_at").is_none());

    let refused = app.post("/api/v1/orders", &json!({"product_id": gone}), Some(&buyer)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert_eq!((refused.code(), refused.body["product_id"].as_i64()), ("product_archived", Some(gone)));
    let cart = json!({"items": [{"product_id": kept}, {"product_id": gone}]});
    let refused_cart = app.post("/api/v1/orders", &cart, Some(&buyer)).await;
    assert_eq!((refused_cart.status, refused_cart.code()), (StatusCode::CONFLICT, "product_archived"));
    assert_eq!(app.count("orders").await, 1);
    assert_eq!((app.stock(kept).await, app.stock(gone).await), (5, 4));

    let history = app.get("/api/v1/orders", Some(&buyer)).await;
    assert_eq!(history.body[0]["product_id"], gone);
    let reused = app.post("/api/v1/products", &json!({"name": "Again", "price": 1, "sku": "GONE"}), Some(&admin)).await;
    assert_eq!((reused.status, reused.code()), (StatusCode::CONFLICT, "sku_taken"));
}

#[tokio::test]
async fn only_admins_archive_and_unknown_products_are_404() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let user = app.user_token(Role::User).await;
    let id = app.product("ARCH-AUTH", 1000, 5).await;

    let anonymous = archive(&app, id, None).await;
    assert_eq!((anonymous.status, anonymous.code()), (StatusCode::UNAUTHORIZED, "missing_token"));
    let as_user = archive(&app, id, Some(&user)).await;
    assert_eq!((as_user.status, as_user.code()), (StatusCode::FORBIDDEN, "admin_only"));
    let unknown = archive(&app, id + 100, Some(&admin)).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "product_not_found"));
    let archived: i64 = app.query_one("SELECT count(*) FROM products WHERE archived_at IS NOT NULL", &[]).await;
    assert_eq!(archived, 0);
}

/// Buyers race an archive of the product (split into buckets, or not yet split). Every
/// order either committed before the archive did or was refused: no order of the product
/// has a commit time after the archive's, and stock sold is what the orders hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_order_commits_after_the_archive() {
    const BUYERS: usize = 24;
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.user_token(Role::Admin).await;
    let buyers = app.user_tokens(Role::User, BUYERS).await;
    for round in 0..8 {
        let product = app.product(&format!("ARCH-RACE-{round}"), 100, 1000).await;
        if round % 2 == 0 {
            app.split(product).await;
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(BUYERS + 1));
        let mut orders = Vec::new();
        for (i, token) in buyers.iter().cloned().enumerate() {
            let (app, barrier) = (app.clone(), barrier.clone());
            orders.push(tokio::spawn(async move {
                barrier.wait().await;
                // Half the buyers order twice, so some orders start after the archive.
                let mut answers = vec![app.post("/api/v1/orders", &json!({"product_id": product}), Some(&token)).await];
                if i % 2 == 0 {
                    answers.push(app.post("/api/v1/orders", &json!({"product_id": product}), Some(&token)).await);
                }
                answers
            }));
        }
        let archiver = {
            let (app, admin, barrier) = (app.clone(), admin.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                archive(&app, product, Some(&admin)).await
            })
        };
        assert_eq!(archiver.await.expect("archive task").status, StatusCode::NO_CONTENT);
        let mut placed = 0;
        for order in orders {
            for response in order.await.expect("order task") {
                match response.status {
                    StatusCode::CREATED => placed += 1,
                    StatusCode::CONFLICT => assert_eq!(response.code(), "product_archived"),
                    other => panic!("round {round}: {other} {:?}", response.body),
                }
            }
        }
        // An order placed after the archive committed would be visible to a query that
        // started after it, and stock taken from an archived product shows in the sum.
        let orders: i64 = app.query_one("SELECT count(*) FROM order_items WHERE product_id = $1", &[&product]).await;
        assert_eq!(orders, placed, "round {round}");
        assert_eq!(app.stock(product).await, 1000 - placed, "round {round}");
        let after = app.post("/api/v1/orders", &json!({"product_id": product}), Some(&buyers[0])).await;
        assert_eq!(after.code(), "product_archived");
    }
}

/// The race made deterministic: an archive holds the product's buckets, uncommitted, while
/// an order that already read the product waits for a bucket. Once the archive commits the
/// order must be refused, not slip through on what it read before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_waiting_on_an_archive_is_refused_once_it_commits() {
    let app = Arc::new(TestApp::spawn().await);
    let buyer = app.user_token(Role::User).await;
    for split in [false, true] {
        let product = app.product(&format!("ARCH-WAIT-{split}"), 100, 10).await;
        if split {
            app.split(product).await;
        }
        let archiving = app.pool().get().await.expect("connection");
        archiving.batch_execute("BEGIN").await.expect("begin");
        archiving.execute("SELECT archive_product($1)", &[&product]).await.expect("archive");

        let order = {
            let (app, buyer) = (app.clone(), buyer.clone());
            tokio::spawn(async move { app.post("/api/v1/orders", &json!({"product_id": product}), Some(&buyer)).await })
        };
        let pool = app.pool().clone();
        testkit::eventually(Duration::from_secs(10), "the order to wait for a bucket", || {
            let pool = pool.clone();
            async move {
                let client = pool.get().await.expect("connection");
                let waiting: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .await
                    .expect("activity")
                    .get(0);
                waiting > 0
            }
        })
        .await;
        archiving.batch_execute("COMMIT").await.expect("commit");

        let refused = order.await.expect("order task");
        assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "product_archived"), "split {split}");
        assert_eq!(app.stock(product).await, 10);
    }
    assert_eq!(app.count("orders").await, 0);
}
