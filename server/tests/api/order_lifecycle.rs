//! The order lifecycle (issue 15): GET /api/v1/orders/{id}, POST /api/v1/orders/{id}/cancel
//! and GET /api/v1/admin/orders; stock given back exactly once under racing cancels and
//! orders; one confirmation and one cancellation outbox row per event.

use std::time::Duration;

use common::config::Limits;
use common::domain::Role;
use futures_util::future::join_all;
use http::StatusCode;
use serde_json::{Value, json};

use common::queue;
use testkit::app::TestApp;
use testkit::eventually;
use testkit::postgres::connect;
use testkit::services::redis_url;

use crate::email::redis_streams::{app_publishing_to, redis_queue};
use crate::email::{MailLog, start_pipeline};

async fn order(app: &TestApp, token: &str, body: Value) -> i64 {
    let placed = app.post("/api/v1/orders", &body, Some(token)).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
    assert_eq!(placed.body["order"]["status"], "placed");
    placed.body["order_id"].as_i64().expect("order id")
}

async fn cancel(app: &TestApp, id: i64, token: Option<&str>) -> testkit::app::TestResponse {
    app.post(&format!("/api/v1/orders/{id}/cancel"), &json!({}), token).await
}

async fn outbox_rows(app: &TestApp, kind: &str, order_id: i64) -> i64 {
    app.query_one(
        "SELECT count(*) FROM outbox WHERE kind = $1 AND (payload->>'order_id')::BIGINT = $2",
        &[&kind, &order_id],
    )
    .await
}

#[tokio::test]
async fn an_order_is_shown_to_its_buyer_and_to_admins_only() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.product("GET-A", 300, 10).await, app.product("GET-B", 700, 10).await);
    let (ann, bob, admin) =
        (app.user_token(Role::User).await, app.user_token(Role::User).await, app.user_token(Role::Admin).await);
    let id = order(&app, &ann, json!({"items": [{"product_id": b, "quantity": 2}, {"product_id": a}]})).await;

    let own = app.get(&format!("/api/v1/orders/{id}"), Some(&ann)).await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    assert_eq!(own.body["id"], id);
    assert_eq!(own.body["status"], "placed");
    assert_eq!(own.body["total"], 300 + 2 * 700);
    assert_eq!(own.body["items"][0]["product_id"], a);
    assert_eq!(own.body["items"][1]["line_total"], 1400);
    let as_admin = app.get(&format!("/api/v1/orders/{id}"), Some(&admin)).await;
    assert_eq!((as_admin.status, &as_admin.body), (StatusCode::OK, &own.body));

    for (path, token, status, code) in [
        (format!("/api/v1/orders/{id}"), Some(&bob), StatusCode::NOT_FOUND, "order_not_found"),
        (format!("/api/v1/orders/{}", id + 1000), Some(&ann), StatusCode::NOT_FOUND, "order_not_found"),
        (format!("/api/v1/orders/{id}"), None, StatusCode::UNAUTHORIZED, "missing_token"),
        ("/api/v1/orders/0".to_owned(), Some(&ann), StatusCode::BAD_REQUEST, "invalid_input"),
        ("/api/v1/orders/x".to_owned(), Some(&ann), StatusCode::BAD_REQUEST, "invalid_input"),
    ] {
        let response = app.get(&path, token.map(String::as_str)).await;
        assert_eq!((response.status, response.code()), (status, code), "{path}: {:?}", response.body);
    }
}

#[tokio::test]
async fn a_buyer_cancels_once_and_the_stock_comes_back_once() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.product("CAN-A", 300, 10).await, app.product("CAN-B", 700, 10).await);
    app.split(b).await;
    let (ann, bob) = (app.user_token(Role::User).await, app.user_token(Role::User).await);
    let id =
        order(&app, &ann, json!({"items": [{"product_id": a, "quantity": 3}, {"product_id": b, "quantity": 4}]})).await;
    assert_eq!((app.stock(a).await, app.stock(b).await), (7, 6));
    assert_eq!(outbox_rows(&app, "order_confirmation", id).await, 1);

    let other = cancel(&app, id, Some(&bob)).await;
    assert_eq!((other.status, other.code()), (StatusCode::NOT_FOUND, "order_not_found"));
    let anonymous = cancel(&app, id, None).await;
    assert_eq!((anonymous.status, anonymous.code()), (StatusCode::UNAUTHORIZED, "missing_token"));
    let missing = cancel(&app, id + 1000, Some(&ann)).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "order_not_found"));
    assert_eq!((app.stock(a).await, app.stock(b).await), (7, 6));

    for _ in 0..2 {
        let cancelled = cancel(&app, id, Some(&ann)).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
        assert_eq!(cancelled.body["status"], "cancelled");
        assert_eq!(cancelled.body["total"], 3 * 300 + 4 * 700);
        assert_eq!((app.stock(a).await, app.stock(b).await), (10, 10));
    }
    assert_eq!(outbox_rows(&app, "order_cancelled", id).await, 1);
    let payload: String = app
        .query_one(
            "SELECT payload::TEXT FROM outbox WHERE kind = 'order_cancelled' AND (payload->>'order_id')::BIGINT = $1",
            &[&id],
        )
        .await;
    let payload: Value = serde_json::from_str(&payload).expect("payload");
    assert_eq!(payload["total"], 3 * 300 + 4 * 700);
    assert_eq!(payload["lines"][0]["name"], "Game CAN-A");
    assert_eq!(payload["lines"][1]["quantity"], 4);

    let listed = app.get("/api/v1/orders", Some(&ann)).await;
    assert_eq!(listed.body[0]["status"], "cancelled");
    let shown = app.get(&format!("/api/v1/orders/{id}"), Some(&ann)).await;
    assert_eq!(shown.body["status"], "cancelled");
}

#[tokio::test]
async fn a_replayed_order_writes_no_second_confirmation() {
    let app = TestApp::spawn().await;
    let a = app.product("CONF-A", 300, 10).await;
    let ann = app.user_token(Role::User).await;
    let headers = [("authorization", format!("Bearer {ann}")), ("idempotency-key", "k-1".to_owned())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = serde_json::to_vec(&json!({"product_id": a})).expect("json");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = app
            .send(
                http::Method::POST,
                "/api/v1/orders",
                &[&headers[..], &[("content-type", "application/json")]].concat(),
                body.clone(),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
        ids.push(response.body["order_id"].as_i64().expect("id"));
    }
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(outbox_rows(&app, "order_confirmation", ids[0]).await, 1);
    let payload: String =
        app.query_one("SELECT payload::TEXT FROM outbox WHERE kind = 'order_confirmation'", &[]).await;
    let payload: Value = serde_json::from_str(&payload).expect("payload");
    assert_eq!(payload["lines"], json!([{"product_id": a, "name": "Game CONF-A", "quantity": 1, "unit_price": 300}]));
    assert_eq!(payload["total"], 300);
    // A replay after a cancel answers the order as it is now.
    assert_eq!(cancel(&app, ids[0], Some(&ann)).await.status, StatusCode::OK);
    let replay = app
        .send(
            http::Method::POST,
            "/api/v1/orders",
            &[&headers[..], &[("content-type", "application/json")]].concat(),
            body,
        )
        .await;
    assert_eq!(replay.body["order"]["status"], "cancelled");
    assert_eq!(app.count("outbox WHERE kind = 'order_confirmation'").await, 1);
}

#[tokio::test]
async fn past_the_window_only_an_admin_cancels() {
    let limits = Limits { order_cancel_window: Duration::ZERO, ..Limits::default() };
    let app = TestApp::spawn_with(None, limits).await;
    let a = app.product("WIN-A", 300, 10).await;
    let (ann, admin) = (app.user_token(Role::User).await, app.user_token(Role::Admin).await);
    let id = order(&app, &ann, json!({"product_id": a, "quantity": 2})).await;

    let late = cancel(&app, id, Some(&ann)).await;
    assert_eq!((late.status, late.code()), (StatusCode::CONFLICT, "cancel_window_closed"), "{:?}", late.body);
    assert_eq!(app.stock(a).await, 8);
    assert_eq!(outbox_rows(&app, "order_cancelled", id).await, 0);

    let by_admin = cancel(&app, id, Some(&admin)).await;
    assert_eq!((by_admin.status, &by_admin.body["status"]), (StatusCode::OK, &json!("cancelled")));
    assert_eq!(app.stock(a).await, 10);
    // Cancelled already: the buyer's late cancel answers it, as any repeated cancel does.
    let again = cancel(&app, id, Some(&ann)).await;
    assert_eq!((again.status, &again.body["status"]), (StatusCode::OK, &json!("cancelled")));
    assert_eq!(app.stock(a).await, 10);
}

/// Racing cancels of one order, made to race: the test holds every stock bucket of the
/// order's products until each cancel waits for a lock (on the order row, or, for the one
/// that got it, on a bucket), then lets them go. The stock comes back once, and the buyer
/// gets one confirmation and one cancellation mail through the queue and the worker.
#[tokio::test]
async fn racing_cancels_give_the_stock_back_once_and_write_one_mail() {
    const CANCELS: usize = 10;
    let queue = redis_queue(&redis_url());
    let app = app_publishing_to(&queue).await;
    let mails = MailLog::new();
    let pipeline = start_pipeline(&app, queue::consumer(&queue).await.expect("consumer"), mails.mailer());
    let (a, b) = (app.product("RACE-A", 300, 50).await, app.product("RACE-B", 700, 50).await);
    app.split(a).await;
    let (ann, admin) = (app.user_token(Role::User).await, app.user_token(Role::Admin).await);
    let id =
        order(&app, &ann, json!({"items": [{"product_id": a, "quantity": 5}, {"product_id": b, "quantity": 7}]})).await;

    let blocker = connect(&app.database_url).await;
    blocker.batch_execute("BEGIN").await.expect("begin");
    blocker
        .execute("SELECT 1 FROM product_stock WHERE product_id = ANY($1) FOR UPDATE", &[&vec![a, b]])
        .await
        .expect("hold the buckets");
    let tokens: Vec<&str> = (0..CANCELS).map(|i| if i % 2 == 0 { ann.as_str() } else { admin.as_str() }).collect();
    let release = async {
        eventually(Duration::from_secs(30), "every cancel waiting for a lock", || async {
            // As the application's role, which sees what its own sessions wait for.
            let waiting: i64 = app
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                      WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await;
            waiting >= CANCELS as i64
        })
        .await;
        blocker.batch_execute("COMMIT").await.expect("release the buckets");
    };
    let (answers, ()) = tokio::join!(join_all(tokens.iter().map(|token| cancel(&app, id, Some(token)))), release);
    for answer in &answers {
        assert_eq!((answer.status, &answer.body["status"]), (StatusCode::OK, &json!("cancelled")), "{:?}", answer.body);
    }
    assert_eq!((app.stock(a).await, app.stock(b).await), (50, 50));
    assert_eq!(outbox_rows(&app, "order_cancelled", id).await, 1);

    eventually(Duration::from_secs(30), "both mails settled", || async {
        app.count("outbox WHERE settled_at IS NOT NULL").await == 2
    })
    .await;
    pipeline.stop().await;
    let mut subjects: Vec<Value> = mails.mails().iter().map(|mail| mail["subject"].clone()).collect();
    subjects.sort_by_key(Value::to_string);
    let sent = [format!("Your Game Store order {id} is cancelled"), format!("Your Game Store order {id}")];
    assert_eq!(subjects, sent.map(Value::from));
}

#[tokio::test]
async fn cancels_racing_orders_keep_stock_equal_to_what_placed_orders_hold() {
    let app = TestApp::spawn().await;
    let (split, whole) = (app.product("MIX-S", 100, 200).await, app.product("MIX-W", 100, 200).await);
    app.split(split).await;
    let buyers: Vec<String> = join_all((0..8).map(|_| app.user_token(Role::User))).await;
    let line = |i: usize| json!({"items": [{"product_id": split, "quantity": 1 + i % 3}, {"product_id": whole, "quantity": 1 + i % 2}]});
    for round in 0..3 {
        let mut first = Vec::new();
        for i in 0..16 {
            first.push((i, order(&app, &buyers[i % 8], line(i + round)).await));
        }
        let app = &app;
        let cancels = first.iter().map(|(i, id)| {
            let buyer = &buyers[i % 8];
            async move { cancel(app, *id, Some(buyer)).await.status }
        });
        let orders = (0..24).map(|i| {
            let buyer = &buyers[i % 8];
            async move { app.post("/api/v1/orders", &line(i), Some(buyer)).await.status }
        });
        let (cancelled, placed) = tokio::join!(join_all(cancels), join_all(orders));
        assert!(cancelled.iter().all(|s| *s == StatusCode::OK), "{cancelled:?}");
        assert!(placed.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{placed:?}");

        for product in [split, whole] {
            let held: i64 = app
                .query_one(
                    "SELECT coalesce(sum(i.quantity), 0)::BIGINT FROM order_items i JOIN orders o ON o.id = i.order_id \
                      WHERE i.product_id = $1 AND o.status = 'placed'",
                    &[&product],
                )
                .await;
            let stock = app.stock(product).await;
            assert_eq!(stock, 200 - held, "round {round}, product {product}");
            let negative: i64 = app
                .query_one("SELECT count(*) FROM product_stock WHERE product_id = $1 AND stock < 0", &[&product])
                .await;
            assert_eq!(negative, 0);
        }
        let cancellations = app.count("outbox WHERE kind = 'order_cancelled'").await;
        let cancelled_orders = app.count("orders WHERE status = 'cancelled'").await;
        assert_eq!(cancellations, cancelled_orders);
        assert_eq!(app.count("outbox WHERE kind = 'order_confirmation'").await, app.count("orders").await);
    }
}

#[tokio::test]
async fn admins_page_through_every_order_as_a_full_scan_lists_them() {
    let app = TestApp::spawn().await;
    let a = app.product("ADM-A", 300, 500).await;
    let admin = app.user_token(Role::Admin).await;
    let buyers: Vec<String> = join_all((0..3).map(|_| app.user_token(Role::User))).await;
    let mut ids = Vec::new();
    for i in 0..23 {
        ids.push(order(&app, &buyers[i % 3], json!({"product_id": a, "quantity": 1 + i % 4})).await);
    }
    for id in ids.iter().step_by(4) {
        assert_eq!(cancel(&app, *id, Some(&admin)).await.status, StatusCode::OK);
    }

    for status in [None, Some("placed"), Some("cancelled")] {
        let expected: Vec<i64> = {
            let client = app.pool().get().await.expect("connection");
            client
                .query("SELECT id FROM orders WHERE $1::TEXT IS NULL OR status = $1 ORDER BY id DESC", &[&status])
                .await
                .expect("scan")
                .iter()
                .map(|row| row.get(0))
                .collect()
        };
        let mut seen = Vec::new();
        let mut path = match status {
            Some(status) => format!("/api/v1/admin/orders?status={status}&limit=4"),
            None => "/api/v1/admin/orders?limit=4".to_owned(),
        };
        loop {
            let page = app.get(&path, Some(&admin)).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {:?}", page.body);
            let orders = page.body.as_array().expect("bare array");
            assert!(orders.len() <= 4);
            for order in orders {
                if let Some(status) = status {
                    assert_eq!(order["status"], status);
                }
                seen.push(order["id"].as_i64().expect("id"));
            }
            let Some(link) = page.headers.get("link") else { break };
            path = link.to_str().expect("ascii").trim_start_matches('<').split('>').next().expect("url").to_owned();
        }
        assert_eq!(seen, expected, "status {status:?}");
    }

    let user = app.get("/api/v1/admin/orders", Some(&buyers[0])).await;
    assert_eq!((user.status, user.code()), (StatusCode::FORBIDDEN, "admin_only"));
    let anonymous = app.get("/api/v1/admin/orders", None).await;
    assert_eq!((anonymous.status, anonymous.code()), (StatusCode::UNAUTHORIZED, "missing_token"));
    for (query, field) in [
        ("status=shipped", "status"),
        ("status=", "status"),
        ("after=-1", "after"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
    ] {
        let bad = app.get(&format!("/api/v1/admin/orders?{query}"), Some(&admin)).await;
        assert_eq!((bad.status, bad.code(), bad.field()), (StatusCode::BAD_REQUEST, "invalid_input", field), "{query}");
    }
}
