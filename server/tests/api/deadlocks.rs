//! Multi-unit orders racing for split products that run low: the fallback after a failed
//! bucket never deadlocks (Postgres counts none), nothing fails, nothing is oversold.

use std::future::Future;
use std::sync::Arc;

use common::domain::{OrderLine, OrderLines, ProductId, Quantity, Role, UserId};
use common::store::StoreError;
use common::store::orders;
use http::StatusCode;
use serde_json::json;

use testkit::app::TestApp;

const BUYERS: usize = 48;
/// 16 buckets of 12 units: every bucket runs dry after a few orders.
const STOCK: i64 = 16 * 12;

enum Outcome {
    Placed,
    OutOfStock,
    Failed(String),
}

/// How many units buyer `buyer` asks for in its `nth` order: 3 to 9, spread over buyers.
fn quantity(buyer: usize, nth: usize) -> i64 {
    3 + ((buyer * 5 + nth * 3) % 7) as i64
}

/// One round: `lines` fresh split products, every buyer ordering the same quantity of each
/// (one order, all lines) until it hears "out of stock". Returns the failures; asserts that
/// sold + left is the initial stock of each product and that nobody was refused while
/// enough units were left.
async fn round<F, Fut>(app: &TestApp, name: &str, lines: usize, place: Arc<F>) -> Vec<String>
where
    F: Fn(usize, Arc<Vec<i64>>, i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let mut products = Vec::new();
    for line in 0..lines {
        let product = app.product(&format!("{name}-{line}"), 10, STOCK).await;
        app.split(product).await;
        products.push(product);
    }
    let products = Arc::new(products);
    let barrier = Arc::new(tokio::sync::Barrier::new(BUYERS));
    let buyers: Vec<_> = (0..BUYERS)
        .map(|buyer| {
            let (place, barrier, products) = (place.clone(), barrier.clone(), products.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let (mut sold, mut failures) = (0, Vec::new());
                let mut nth = 0;
                loop {
                    let quantity = quantity(buyer, nth);
                    match place(buyer, products.clone(), quantity).await {
                        Outcome::Placed => sold += quantity,
                        Outcome::OutOfStock => return (sold, quantity, failures),
                        Outcome::Failed(why) => failures.push(why),
                    }
                    nth += 1;
                }
            })
        })
        .collect();
    let (mut sold, mut refused, mut failures) = (0, Vec::new(), Vec::new());
    for buyer in buyers {
        let (bought, last, failed) = buyer.await.expect("buyer task");
        sold += bought;
        refused.push(last);
        failures.extend(failed);
    }
    let mut least_left = STOCK;
    for &product in products.iter() {
        let left = app.stock(product).await;
        assert_eq!(sold + left, STOCK, "{name}: product {product} sold {sold}, left {left}");
        let recorded: i64 = app
            .query_one("SELECT coalesce(sum(quantity), 0)::BIGINT FROM order_items WHERE product_id = $1", &[&product])
            .await;
        assert_eq!(recorded, sold, "{name}: product {product}");
        least_left = least_left.min(left);
    }
    assert!(refused.iter().all(|&q| q > least_left), "{name}: refused {refused:?} with {least_left} left");
    failures
}

/// The store's `place` (its retries included) on 48 connections, as many Lambda instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_for_a_product_running_low_never_deadlock() {
    let app = TestApp::spawn().await;
    let pool = common::db::pool(&app.database_url, BUYERS).expect("pool");
    let mut users = Vec::new();
    for _ in 0..BUYERS {
        let id: i64 = app
            .query_one(
                "INSERT INTO users (email, password_hash) VALUES (gen_random_uuid() || '@example.com', 'x') RETURNING id",
                &[],
            )
            .await;
        users.push(UserId::new(id));
    }
    let place = Arc::new({
        let pool = pool.clone();
        move |buyer: usize, products: Arc<Vec<i64>>, quantity: i64| {
            let (pool, user) = (pool.clone(), users[buyer]);
            async move {
                let lines: Vec<OrderLine> = products
                    .iter()
                    .map(|&product| OrderLine {
                        product_id: ProductId::parse(product).expect("product id"),
                        quantity: Quantity::parse(quantity).expect("quantity"),
                    })
                    .collect();
                let lines = OrderLines::merge(lines).expect("distinct products");
                match orders::place(&pool, user, &lines, None).await {
                    Ok(_) => Outcome::Placed,
                    Err(StoreError::OutOfStock { .. }) => Outcome::OutOfStock,
                    Err(other) => Outcome::Failed(other.to_string()),
                }
            }
        }
    });

    let mut failures = Vec::new();
    for round_no in 0..8 {
        failures.extend(round(&app, &format!("LOW-STORE-{round_no}"), 1, place.clone()).await);
    }
    // Carts of two such products: each line goes through take_stock, not the inlined try.
    for round_no in 0..4 {
        failures.extend(round(&app, &format!("LOW-CART-{round_no}"), 2, place.clone()).await);
    }

    let deadlocks = app.deadlocks(&[&pool]).await;
    assert_eq!((deadlocks, failures.len()), (0, 0), "deadlocks, failures: {failures:?}");
}

/// The same race over HTTP, on three server processes (48 connections, as many Lambda
/// instances would hold): every answer is 201 or 409, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_of_a_product_running_low_never_get_a_server_error() {
    let app = TestApp::spawn().await;
    let servers = Arc::new([app.sibling().await, app.sibling().await, app.sibling().await]);
    let tokens = app.user_tokens(Role::User, BUYERS).await;
    let place = Arc::new({
        let servers = servers.clone();
        move |buyer: usize, products: Arc<Vec<i64>>, quantity: i64| {
            let (servers, token) = (servers.clone(), tokens[buyer].clone());
            async move {
                let body = json!({"product_id": products[0], "quantity": quantity});
                let response = servers[buyer % servers.len()].post("/api/v1/orders", &body, Some(&token)).await;
                match (response.status, response.code()) {
                    (StatusCode::CREATED, _) => Outcome::Placed,
                    (StatusCode::CONFLICT, "out_of_stock") => Outcome::OutOfStock,
                    (status, code) => Outcome::Failed(format!("{status} {code}")),
                }
            }
        }
    });

    let mut failures = Vec::new();
    for round_no in 0..12 {
        failures.extend(round(&app, &format!("LOW-HTTP-{round_no}"), 1, place.clone()).await);
    }

    let deadlocks = app.deadlocks(&servers.iter().map(TestApp::pool).collect::<Vec<_>>()).await;
    assert_eq!((deadlocks, failures.len()), (0, 0), "deadlocks, failures: {failures:?}");
}
