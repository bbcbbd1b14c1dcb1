//! The stock invariant of issue 15 under concurrency: rounds of orders (one line and
//! several), cancels (by the buyer, by an admin, racing each other, and right after the
//! order they cancel), restocks and removals, all at once over HTTP on a few products, some
//! split into stock buckets and some left to split under contention. After each round, for
//! every product, `initial + restocked - removed - sold + cancelled = stock >= 0`, each term
//! summed from what the API answered, and the buckets, GET, the catalogue page and the
//! stock ledger all say so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::domain::Role;
use http::StatusCode;
use serde_json::{Value, json};
use testkit::app::{TestApp, TestResponse};
use tokio::sync::Barrier;

/// Initial stock of each product, and whether the test splits it into 16 buckets up front
/// (the others start in one bucket, which contended orders split).
const PRODUCTS: [(i64, bool); 4] = [(60, true), (45, true), (50, false), (30, false)];
const ROUNDS: usize = 4;
const BUYERS: usize = 12;

/// A round's requests, issued together behind one barrier.
#[derive(Clone)]
enum Step {
    /// One order, lines `(product index, quantity)`.
    Order { buyer: usize, lines: Vec<(usize, i64)> },
    /// An order, then its cancel by the buyer as soon as it is placed.
    OrderThenCancel { buyer: usize, lines: Vec<(usize, i64)> },
    /// A cancel of an order of an earlier round, by its buyer or by an admin.
    Cancel { order: i64, buyer: usize, admin: bool },
    /// POST /products/{id}/stock by an admin.
    Stock { product: usize, delta: i64 },
}

/// What one answer tells about the stock.
#[derive(Debug)]
enum Answer {
    /// 201: the order and its lines as the API answered them.
    Placed { order: i64, buyer: usize, lines: Vec<(i64, i64)> },
    /// 409 `out_of_stock`.
    OutOfStock,
    /// 200 `cancelled`: the order's lines as the cancel answered them.
    Cancelled { order: i64, lines: Vec<(i64, i64)> },
    /// 200: the stock change was made.
    Changed { product: i64, delta: i64 },
    /// 409 `insufficient_stock`.
    Insufficient,
}

/// `(product id, quantity)` of each line of an order as an answer shows it.
fn lines_of(order: &Value) -> Vec<(i64, i64)> {
    order["items"]
        .as_array()
        .expect("order items")
        .iter()
        .map(|line| (line["product_id"].as_i64().expect("product id"), line["quantity"].as_i64().expect("quantity")))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn placed(response: &TestResponse, buyer: usize) -> Answer {
    match (response.status, response.code()) {
        (StatusCode::CREATED, _) => Answer::Placed {
            order: response.body["order_id"].as_i64().expect("order id"),
            buyer,
            lines: lines_of(&response.body["order"]),
        },
        (StatusCode::CONFLICT, "out_of_stock") => Answer::OutOfStock,
        _ => panic!("order: {} {:?}", response.status, response.body),
    }
}

fn cancelled(response: &TestResponse, order: i64) -> Answer {
    assert_eq!(response.status, StatusCode::OK, "cancel of {order}: {:?}", response.body);
    assert_eq!(response.body["status"], "cancelled", "{:?}", response.body);
    Answer::Cancelled { order, lines: lines_of(&response.body) }
}

struct World {
    app: TestApp,
    products: Vec<i64>,
    buyers: Vec<String>,
    admins: Vec<String>,
}

impl World {
    async fn order(&self, buyer: usize, lines: &[(usize, i64)]) -> TestResponse {
        let items: Vec<Value> =
            lines.iter().map(|(p, quantity)| json!({"product_id": self.products[*p], "quantity": quantity})).collect();
        let body = if items.len() == 1 { items[0].clone() } else { json!({ "items": items }) };
        self.app.post("/api/v1/orders", &body, Some(&self.buyers[buyer])).await
    }

    async fn cancel(&self, order: i64, token: &str) -> TestResponse {
        self.app.post(&format!("/api/v1/orders/{order}/cancel"), &json!({}), Some(token)).await
    }

    async fn run(&self, step: Step, admin: usize) -> Vec<Answer> {
        match step {
            Step::Order { buyer, lines } => vec![placed(&self.order(buyer, &lines).await, buyer)],
            Step::OrderThenCancel { buyer, lines } => {
                let answer = placed(&self.order(buyer, &lines).await, buyer);
                let Answer::Placed { order, .. } = answer else { return vec![answer] };
                let cancel = cancelled(&self.cancel(order, &self.buyers[buyer]).await, order);
                vec![answer, cancel]
            }
            Step::Cancel { order, buyer, admin: by_admin } => {
                let token = if by_admin { &self.admins[admin] } else { &self.buyers[buyer] };
                vec![cancelled(&self.cancel(order, token).await, order)]
            }
            Step::Stock { product, delta } => {
                let id = self.products[product];
                let response = self
                    .app
                    .post(
                        &format!("/api/v1/products/{id}/stock"),
                        &json!({"delta": delta, "reason": "stock invariant"}),
                        Some(&self.admins[admin]),
                    )
                    .await;
                match (response.status, response.code()) {
                    (StatusCode::OK, _) => vec![Answer::Changed { product: id, delta }],
                    (StatusCode::CONFLICT, "insufficient_stock") => vec![Answer::Insufficient],
                    _ => panic!("stock {delta} of {id}: {} {:?}", response.status, response.body),
                }
            }
        }
    }
}

/// The terms of the invariant for one product, summed from the answers.
#[derive(Debug, Default, Clone, Copy)]
struct Terms {
    restocked: i64,
    removed: i64,
    sold: i64,
    cancelled: i64,
}

/// Round `round`'s steps: 24 orders (a third of them with two or three lines), 6 orders
/// cancelled as soon as placed, 10 cancels of earlier orders (4 of them raced by two more
/// cancels), and 12 stock changes, half of them removals. Quantities and
/// products vary with the round and the step, so rounds differ.
fn steps(round: usize, open: &[(i64, usize)]) -> Vec<Step> {
    let n = PRODUCTS.len();
    let lines = |i: usize| -> Vec<(usize, i64)> {
        let first = (i + round) % n;
        let quantity = |k: usize| 1 + ((i * 7 + round * 3 + k) % 4) as i64;
        match i % 3 {
            0 => vec![(first, quantity(0)), ((first + 1) % n, quantity(1))],
            1 if i.is_multiple_of(2) => {
                vec![(first, quantity(0)), ((first + 2) % n, quantity(1)), ((first + 3) % n, 1)]
            }
            _ => vec![(first, quantity(0))],
        }
    };
    let mut steps = Vec::new();
    for i in 0..24 {
        steps.push(Step::Order { buyer: i % BUYERS, lines: lines(i) });
    }
    for i in 24..30 {
        steps.push(Step::OrderThenCancel { buyer: i % BUYERS, lines: lines(i) });
    }
    for (k, (order, buyer)) in open.iter().take(10).enumerate() {
        steps.push(Step::Cancel { order: *order, buyer: *buyer, admin: k % 2 == 1 });
        if k < 4 {
            steps.push(Step::Cancel { order: *order, buyer: *buyer, admin: k % 2 == 0 });
            steps.push(Step::Cancel { order: *order, buyer: *buyer, admin: true });
        }
    }
    for i in 0..12 {
        let size = 3 + ((i * 5 + round) % 9) as i64;
        let delta = if i % 2 == 0 { size } else { -2 * size };
        steps.push(Step::Stock { product: (i + round) % n, delta });
    }
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_cancels_restocks_and_removals_keep_every_products_stock_exact() {
    let app = TestApp::spawn().await;
    let mut products = Vec::new();
    for (i, (stock, split)) in PRODUCTS.into_iter().enumerate() {
        let id = app.product(&format!("INV-{i}"), 100 + i as i64, stock).await;
        if split {
            app.split(id).await;
        }
        products.push(id);
    }
    let buyers = app.user_tokens(Role::User, BUYERS).await;
    let admins = app.user_tokens(Role::Admin, 2).await;
    let world = Arc::new(World { app, products, buyers, admins });

    let mut terms: BTreeMap<i64, Terms> = world.products.iter().map(|id| (*id, Terms::default())).collect();
    // Placed orders not cancelled yet, oldest first: (order id, buyer index).
    let mut open: Vec<(i64, usize)> = Vec::new();
    let mut lines_of_order: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    let mut cancelled_orders: BTreeSet<i64> = BTreeSet::new();
    let mut refused = (0, 0);
    for round in 0..ROUNDS {
        let steps = steps(round, &open);
        let barrier = Arc::new(Barrier::new(steps.len()));
        let tasks: Vec<_> = steps
            .into_iter()
            .enumerate()
            .map(|(i, step)| {
                let (world, barrier) = (world.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    world.run(step, i % 2).await
                })
            })
            .collect();
        let requests = tasks.len();
        let mut answers = Vec::new();
        for task in tasks {
            answers.extend(task.await.expect("task"));
        }

        for answer in answers {
            match answer {
                Answer::Placed { order, buyer, lines } => {
                    for (product, quantity) in &lines {
                        terms.get_mut(product).expect("a test product").sold += quantity;
                    }
                    lines_of_order.insert(order, lines);
                    open.push((order, buyer));
                }
                // Racing cancels of one order all answer it cancelled: its lines count once.
                Answer::Cancelled { order, lines } => {
                    assert_eq!(lines_of_order.get(&order), Some(&lines), "order {order} as placed");
                    if cancelled_orders.insert(order) {
                        for (product, quantity) in lines {
                            terms.get_mut(&product).expect("a test product").cancelled += quantity;
                        }
                    }
                }
                Answer::Changed { product, delta } => {
                    let terms = terms.get_mut(&product).expect("a test product");
                    if delta > 0 {
                        terms.restocked += delta;
                    } else {
                        terms.removed -= delta;
                    }
                }
                Answer::OutOfStock => refused.0 += 1,
                Answer::Insufficient => refused.1 += 1,
            }
        }
        open.retain(|(order, _)| !cancelled_orders.contains(order));

        let page = world.app.get(&format!("/api/v1/products?after={}&limit=10", world.products[0] - 1), None).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let listed: BTreeMap<i64, i64> = page
            .body
            .as_array()
            .expect("catalogue page")
            .iter()
            .map(|p| (p["id"].as_i64().expect("id"), p["stock"].as_i64().expect("stock")))
            .collect();
        for (i, (initial, _)) in PRODUCTS.into_iter().enumerate() {
            let id = world.products[i];
            let t = terms[&id];
            let expected = initial + t.restocked - t.removed - t.sold + t.cancelled;
            let context = format!("round {round} ({requests} requests), product {i}: {t:?}, refused {refused:?}");
            assert!(expected >= 0, "{context}");
            assert_eq!(world.app.stock(id).await, expected, "buckets: {context}");
            let negative: i64 = world
                .app
                .query_one("SELECT count(*) FROM product_stock WHERE product_id = $1 AND stock < 0", &[&id])
                .await;
            assert_eq!(negative, 0, "{context}");
            let shown = world.app.get(&format!("/api/v1/products/{id}"), None).await;
            assert_eq!(shown.body["stock"], expected, "GET: {context}");
            assert_eq!(listed.get(&id), Some(&expected), "catalogue: {context}");
            let (added, taken): (i64, i64) = {
                let client = world.app.pool().get().await.expect("connection");
                let row = client
                    .query_one(
                        "SELECT coalesce(sum(delta) FILTER (WHERE delta > 0), 0)::BIGINT, \
                                coalesce(-sum(delta) FILTER (WHERE delta < 0), 0)::BIGINT \
                           FROM stock_movements WHERE product_id = $1",
                        &[&id],
                    )
                    .await
                    .expect("ledger");
                (row.get(0), row.get(1))
            };
            assert_eq!((added, taken), (t.restocked, t.removed), "ledger: {context}");
        }
    }
    // The rounds ran products short: some orders and some removals found too little stock.
    assert!(refused.0 > 0 && refused.1 > 0, "nothing ran short: {refused:?}");
}
