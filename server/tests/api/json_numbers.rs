//! Numbers and nulls as the OpenAPI document describes them: an integral number is an
//! integer however it is written (`3371.0`, as JSON Schema counts it), in a body, a path or
//! a query; a fractional or out-of-range one is refused naming its field; and `null` in an
//! optional field means "absent" (the document marks those fields nullable).

use http::StatusCode;
use serde_json::json;

use common::domain::Role;
use testkit::app::TestApp;

#[tokio::test]
async fn integral_numbers_are_integers_fractions_are_refused_and_null_means_absent() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let user = app.user_token(Role::User).await;

    let product = app
        .post(
            "/api/v1/products",
            &json!({"name": "Float Game", "price": 3371.0, "sku": "FLOAT-1", "stock": 1.2e1, "description": null}),
            Some(&admin),
        )
        .await;
    assert_eq!(product.status, StatusCode::CREATED, "{:?}", product.body);
    assert_eq!((product.body["price"].as_i64(), product.body["stock"].as_i64()), (Some(3371), Some(12)));
    assert_eq!(product.body["description"], "");
    let id = product.body["id"].as_i64().expect("id");

    // Path and query integers are read the same way.
    let by_path = app.get(&format!("/api/v1/products/{id}.0"), None).await;
    assert_eq!((by_path.status, by_path.body["id"].as_i64()), (StatusCode::OK, Some(id)));
    let page = app.get("/api/v1/products?limit=1.0&after=0.0", None).await;
    assert_eq!((page.status, page.body.as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    let fraction = app.get(&format!("/api/v1/products/{id}.5"), None).await;
    assert_eq!((fraction.status, fraction.field()), (StatusCode::BAD_REQUEST, "id"));
    let fraction = app.get("/api/v1/products?limit=1.5", None).await;
    assert_eq!((fraction.status, fraction.field()), (StatusCode::BAD_REQUEST, "limit"));

    let defaults = app
        .post(
            "/api/v1/products",
            &json!({"name": "Null Game", "price": 1, "sku": "NULL-1", "stock": null}),
            Some(&admin),
        )
        .await;
    assert_eq!((defaults.status, defaults.body["stock"].as_i64()), (StatusCode::CREATED, Some(0)));

    let single = app.post("/api/v1/orders", &json!({"product_id": id as f64, "quantity": 2.0}), Some(&user)).await;
    assert_eq!(single.status, StatusCode::CREATED, "{:?}", single.body);
    assert_eq!(
        (single.body["order"]["product_id"].as_i64(), single.body["order"]["quantity"].as_i64()),
        (Some(id), Some(2))
    );
    let one = app.post("/api/v1/orders", &json!({"product_id": id, "quantity": null}), Some(&user)).await;
    assert_eq!((one.status, one.body["order"]["quantity"].as_i64()), (StatusCode::CREATED, Some(1)));
    let cart =
        app.post("/api/v1/orders", &json!({"items": [{"product_id": id as f64, "quantity": 3.0}]}), Some(&user)).await;
    assert_eq!((cart.status, cart.body["order"]["total"].as_i64()), (StatusCode::CREATED, Some(3 * 3371)));
    assert_eq!(app.stock(id).await, 12 - 2 - 1 - 3);

    refused_numbers_change_nothing(&app, &admin, &user, id).await;
}

/// Fractional or out-of-range numbers (and an integral one past `i64`) are refused, naming
/// their field: nothing is cut to an integer.
async fn refused_numbers_change_nothing(app: &TestApp, admin: &str, user: &str, id: i64) {
    let products = [
        (json!({"name": "G", "price": 3371.5, "sku": "FRAC-1"}), "price"),
        (json!({"name": "G", "price": 1, "sku": "FRAC-2", "stock": 0.5}), "stock"),
        (json!({"name": "G", "price": 1e300, "sku": "FRAC-3"}), "price"),
        (json!({"name": "G", "price": 18446744073709551615_u64, "sku": "FRAC-4"}), "price"),
    ];
    for (body, field) in &products {
        let response = app.post("/api/v1/products", body, Some(admin)).await;
        assert_eq!(
            (response.status, response.code(), response.field()),
            (StatusCode::BAD_REQUEST, "invalid_input", *field),
            "{body}"
        );
    }
    let orders = [
        (json!({"product_id": id, "quantity": 1.5}), "quantity"),
        (json!({"product_id": id as f64 + 0.5}), "product_id"),
        (json!({"items": [{"product_id": id, "quantity": 2.25}]}), "items[0].quantity"),
        (json!({"product_id": 9.3e18}), "product_id"),
    ];
    for (body, field) in &orders {
        let response = app.post("/api/v1/orders", body, Some(user)).await;
        assert_eq!(
            (response.status, response.code(), response.field()),
            (StatusCode::BAD_REQUEST, "invalid_input", *field),
            "{body}"
        );
    }

    assert_eq!(app.count("products").await, 2);
    assert_eq!(app.count("orders").await, 3);
    assert_eq!(app.stock(id).await, 6);
}
