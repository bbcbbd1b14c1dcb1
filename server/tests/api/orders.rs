use std::collections::HashMap;
use std::sync::Arc;

use common::domain::Role;
use http::StatusCode;
use serde_json::json;

use testkit::app::TestApp;

#[tokio::test]
async fn an_order_takes_stock_and_records_the_price() {
    let app = TestApp::spawn().await;
    let product = app.product("ORDER-1", 1250, 5).await;
    let user = app.user_token(Role::User).await;

    let response = app.post("/api/v1/orders", &json!({"product_id": product}), Some(&user)).await;

    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    assert_eq!(response.body["message"], "Order placed successfully");
    let order = &response.body["order"];
    assert_eq!(response.body["order_id"], order["id"]);
    assert_eq!(order["product_id"], product);
    assert_eq!(order["quantity"], 1);
    assert_eq!(order["unit_price"], 1250);
    assert_eq!(order["total"], 1250);
    assert!(order["created_at"].as_str().is_some_and(|t| t.contains('T')));
    assert_eq!(app.stock(product).await, 4);
    assert_eq!(app.count("orders").await, 1);
    let stored: i64 = app.query_one("SELECT total FROM orders", &[]).await;
    assert_eq!(stored, 1250);
}

#[tokio::test]
async fn quantity_buys_several_units_even_across_buckets() {
    let app = TestApp::spawn().await;
    // 20 units over 16 buckets: no bucket holds more than 2, so 15 units need many buckets.
    let product = app.product("QTY-1", 300, 20).await;
    app.split(product).await;
    let user = app.user_token(Role::User).await;

    let big = app.post("/api/v1/orders", &json!({"product_id": product, "quantity": 15}), Some(&user)).await;
    assert_eq!(big.status, StatusCode::CREATED, "{:?}", big.body);
    assert_eq!(big.body["order"]["total"], 4500);
    assert_eq!(app.stock(product).await, 5);

    let too_many = app.post("/api/v1/orders", &json!({"product_id": product, "quantity": 6}), Some(&user)).await;
    assert_eq!(too_many.status, StatusCode::CONFLICT);
    assert_eq!(too_many.code(), "out_of_stock");
    assert_eq!(too_many.body["product_id"], product);
    assert_eq!(app.stock(product).await, 5);

    let rest = app.post("/api/v1/orders", &json!({"product_id": product, "quantity": 5}), Some(&user)).await;
    assert_eq!(rest.status, StatusCode::CREATED, "{:?}", rest.body);
    assert_eq!(app.stock(product).await, 0);
    let negative: i64 = app.query_one("SELECT count(*) FROM product_stock WHERE stock < 0", &[]).await;
    assert_eq!(negative, 0);
}

#[tokio::test]
async fn unknown_product_and_sold_out_change_nothing() {
    let app = TestApp::spawn().await;
    let product = app.product("SOLD-1", 100, 1).await;
    let user = app.user_token(Role::User).await;
    assert_eq!(
        app.post("/api/v1/orders", &json!({"product_id": product}), Some(&user)).await.status,
        StatusCode::CREATED
    );

    let sold_out = app.post("/api/v1/orders", &json!({"product_id": product}), Some(&user)).await;
    assert_eq!(sold_out.status, StatusCode::CONFLICT);
    assert_eq!(sold_out.body, json!({"error": "Out of stock", "code": "out_of_stock", "product_id": product}));

    let unknown = app.post("/api/v1/orders", &json!({"product_id": 424242}), Some(&user)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body, json!({"error": "Product not found", "code": "product_not_found", "product_id": 424242}));

    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("order_items").await, 1);
    assert_eq!(app.stock(product).await, 0);
}

#[tokio::test]
async fn order_input_rules() {
    let app = TestApp::spawn().await;
    let product = app.product("RULES-1", 100, 500).await;
    let user = app.user_token(Role::User).await;
    let cases = [
        (json!({}), "product_id"),
        (json!({"product_id": null}), "product_id"),
        (json!({"product_id": 0}), "product_id"),
        (json!({"product_id": "1"}), "product_id"),
        (json!({"product_id": product, "quantity": 0}), "quantity"),
        (json!({"product_id": product, "quantity": 101}), "quantity"),
        (json!({"product_id": product, "quantity": -3}), "quantity"),
        (json!({"product_id": product, "quantity": 2.5}), "quantity"),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/orders", &body, Some(&user)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {:?}", response.body);
        assert_eq!(response.field(), field, "{body}");
    }
    assert_eq!(app.count("orders").await, 0);
    assert_eq!(app.stock(product).await, 500);
}

/// The oversell race: K units, many more concurrent buyers over real HTTP. Exactly K
/// orders succeed, everyone else hears "out of stock", stock ends at 0 and never below.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_buyers_never_oversell() {
    const STOCK: i64 = 10;
    const BUYERS: usize = 50;
    let app = Arc::new(TestApp::spawn().await);
    let tokens = app.user_tokens(Role::User, BUYERS).await;

    for round in 0..5 {
        let product = app.product(&format!("RACE-{round}"), 999, STOCK).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(BUYERS));
        let buyers = tokens.iter().cloned().map(|token| {
            let (app, barrier) = (app.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.post("/api/v1/orders", &json!({"product_id": product}), Some(&token)).await
            })
        });
        let mut statuses: HashMap<u16, usize> = HashMap::new();
        for buyer in buyers.collect::<Vec<_>>() {
            let response = buyer.await.expect("buyer task");
            if response.status == StatusCode::CONFLICT {
                assert_eq!(response.code(), "out_of_stock");
            }
            *statuses.entry(response.status.as_u16()).or_default() += 1;
        }

        assert_eq!(statuses.get(&201), Some(&(STOCK as usize)), "round {round}: {statuses:?}");
        assert_eq!(statuses.get(&409), Some(&(BUYERS - STOCK as usize)), "round {round}: {statuses:?}");
        assert_eq!(app.stock(product).await, 0, "round {round}");
        let sold: i64 = app
            .query_one("SELECT coalesce(sum(quantity), 0)::BIGINT FROM order_items WHERE product_id = $1", &[&product])
            .await;
        assert_eq!(sold, STOCK, "round {round}");
    }
    let negative: i64 = app.query_one("SELECT count(*) FROM product_stock WHERE stock < 0", &[]).await;
    assert_eq!(negative, 0);
}

/// Multi-unit buyers racing for a small stock: what is sold plus what is left is the
/// original stock, and nobody was told "out of stock" while enough units remained
/// (stock only shrinks, so each refused quantity must exceed what is left at the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_multi_unit_orders_keep_the_sum_exact() {
    const STOCK: i64 = 40;
    let app = Arc::new(TestApp::spawn().await);
    let product = app.product("MULTI-RACE", 10, STOCK).await;
    let mut buyers = Vec::new();
    for i in 0..40_i64 {
        let token = app.user_token(Role::User).await;
        let quantity = 1 + i % 4;
        let app = app.clone();
        buyers.push(tokio::spawn(async move {
            let response =
                app.post("/api/v1/orders", &json!({"product_id": product, "quantity": quantity}), Some(&token)).await;
            (quantity, response.status)
        }));
    }
    let mut sold = 0;
    let mut refused = Vec::new();
    for buyer in buyers {
        let (quantity, status) = buyer.await.expect("buyer task");
        match status {
            StatusCode::CREATED => sold += quantity,
            StatusCode::CONFLICT => refused.push(quantity),
            other => panic!("unexpected status {other}"),
        }
    }
    let left = app.stock(product).await;
    assert_eq!(sold + left, STOCK);
    assert!(left >= 0);
    assert!(refused.iter().all(|&q| q > left), "refused {refused:?} with {left} left");
    let recorded: i64 = app
        .query_one("SELECT coalesce(sum(quantity), 0)::BIGINT FROM order_items WHERE product_id = $1", &[&product])
        .await;
    assert_eq!(recorded, sold);
}

/// A product starts with its stock in one bucket. An order that finds that bucket locked by
/// another transaction splits the product into 16 buckets: it waits for the lock (a locked
/// bucket is not an empty one), then takes its unit from the split stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contended_product_is_split_and_the_stock_adds_up() {
    let app = Arc::new(TestApp::spawn().await);
    let product = app.product("SPLIT-1", 100, 100).await;
    assert_eq!(app.buckets(product).await, 1);
    let user = app.user_token(Role::User).await;

    // Another order in flight: bucket 0 taken and locked, not yet committed.
    let mut other = app.pool().get().await.expect("connection");
    let other = other.transaction().await.expect("begin");
    other
        .execute("UPDATE product_stock SET stock = stock - 1 WHERE product_id = $1 AND bucket = 0", &[&product])
        .await
        .expect("take a unit");

    let order = tokio::spawn({
        let app = app.clone();
        async move { app.post("/api/v1/orders", &json!({"product_id": product}), Some(&user)).await }
    });
    // The order must queue behind the lock rather than answer.
    let waiting_sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND query LIKE '%place_order%'";
    let mut waited = false;
    for _ in 0..100 {
        if app.query_one::<i64>(waiting_sql, &[]).await == 1 {
            waited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(waited, "the order never waited for the locked bucket");
    assert!(!order.is_finished());
    other.commit().await.expect("commit");

    let placed = order.await.expect("order task");
    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
    assert_eq!(app.buckets(product).await, 16);
    let recorded: i16 = app.query_one("SELECT stock_buckets FROM products WHERE id = $1", &[&product]).await;
    assert_eq!(recorded, 16);
    assert_eq!(app.stock(product).await, 98);
    // What buyers see: the sum of the 16 buckets, in the list and on the product.
    let listed = app.get("/api/v1/products", None).await;
    let row = listed.body.as_array().and_then(|all| all.iter().find(|p| p["id"] == product)).cloned();
    assert_eq!(row.map(|p| p["stock"].clone()), Some(json!(98)), "{:?}", listed.body);
    assert_eq!(app.get(&format!("/api/v1/products/{product}"), None).await.body["stock"], 98);
    let (low, high): (i32, i32) = {
        let client = app.pool().get().await.expect("connection");
        let row = client
            .query_one("SELECT min(stock), max(stock) FROM product_stock WHERE product_id = $1", &[&product])
            .await
            .expect("bucket range");
        (row.get(0), row.get(1))
    };
    // 99 units spread over 16 buckets (6 or 7 each), then one of them sold.
    assert!(low >= 5 && high <= 7, "buckets between {low} and {high}");
}

/// During a rollout, and for good after a rollback, the previous releases call the older
/// forms of `place_order` (migrations/README.md): the release before the nine-argument form
/// writes the confirmation's outbox row in its own statement around the six-argument form,
/// the one before V6 calls the five-argument form and writes no mail. Each still places
/// one order, takes its stock, and gets one confirmation row or none, never two.
#[tokio::test]
async fn the_previous_releases_order_statements_still_place_one_order_and_one_mail() {
    const PREVIOUS: &str = "\
        WITH placed AS (SELECT * FROM place_order($1, $2, $3, NULL, $4, FALSE)), \
             mail AS ( \
               INSERT INTO outbox (kind, payload, request_id, trace_id) \
               SELECT 'order_confirmation', jsonb_build_object('to', u.email, 'order_id', l.order_id, \
                      'total', l.total, 'lines', l.lines), NULL, NULL \
                 FROM (SELECT min(p.order_id) AS order_id, sum(p.quantity::BIGINT * p.unit_price)::BIGINT AS total, \
                              jsonb_agg(jsonb_build_object('product_id', p.product_id, 'name', pr.name, \
                                                           'quantity', p.quantity, 'unit_price', p.unit_price) \
                                        ORDER BY p.product_id) AS lines \
                         FROM placed p JOIN products pr ON pr.id = p.product_id WHERE NOT p.replayed) l \
                 JOIN users u ON u.id = $1 \
                WHERE l.order_id IS NOT NULL \
               RETURNING id) \
        SELECT p.order_id, p.unit_price, mail.id AS message_id FROM placed p LEFT JOIN mail ON TRUE";
    let app = TestApp::spawn().await;
    let product = app.product("PREV-1", 700, 5).await;
    let user: i64 = app
        .query_one("INSERT INTO users (email, password_hash) VALUES ('prev@example.com', 'x') RETURNING id", &[])
        .await;
    let client = app.pool().get().await.expect("connection");

    let rows = client
        .query(PREVIOUS, &[&user, &vec![product], &vec![2_i32], &format!("{product}x2")])
        .await
        .expect("the previous release's statement");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>("unit_price"), 700);
    assert!(rows[0].get::<_, Option<i64>>("message_id").is_some());
    let rows = client
        .query("SELECT * FROM place_order($1, $2, $3, NULL, $4)", &[&user, &vec![product], &vec![1_i32], &"x"])
        .await
        .expect("the five-argument form");
    assert_eq!(rows.len(), 1);

    assert_eq!(app.count("orders").await, 2);
    assert_eq!(app.stock(product).await, 2);
    let mails: i64 = app.query_one("SELECT count(*) FROM outbox WHERE kind = 'order_confirmation'", &[]).await;
    assert_eq!(mails, 1, "the previous release writes its own row, the function none");
    let total: i64 = app.query_one("SELECT (payload->>'total')::BIGINT FROM outbox", &[]).await;
    assert_eq!(total, 1400);
}
