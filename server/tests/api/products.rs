use common::domain::Role;
use http::StatusCode;
use serde_json::{Value, json};

use testkit::app::TestApp;

#[tokio::test]
async fn admin_creates_a_product_anyone_can_read() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let body = json!({"name": "Celeste", "description": "Climb.", "price": 1999, "sku": "CEL-1", "stock": 37});

    let created = app.post("/api/v1/products", &body, Some(&admin)).await;

    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    for field in ["name", "description", "price", "sku", "stock"] {
        assert_eq!(created.body[field], body[field], "{field}");
    }
    let id = created.body["id"].as_i64().expect("id");
    let fetched = app.get(&format!("/api/v1/products/{id}"), None).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, created.body);
    // One bucket until orders contend for the product.
    assert_eq!(app.stock(id).await, 37);
    assert_eq!(app.buckets(id).await, 1);
}

#[tokio::test]
async fn description_and_stock_are_optional() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;

    let created = app.post("/api/v1/products", &json!({"name": "Free", "price": 0, "sku": "FREE"}), Some(&admin)).await;

    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["description"], "");
    assert_eq!(created.body["stock"], 0);
}

#[tokio::test]
async fn product_rules_name_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let valid = json!({"name": "Game", "description": "d", "price": 100, "sku": "SKU-1", "stock": 1});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().expect("object").remove(field);
        body
    };
    let cases = [
        (without("name"), "name"),
        (with("name", json!("   ")), "name"),
        (with("name", json!("x".repeat(201))), "name"),
        (with("name", json!("nul\u{0}byte")), "name"),
        (with("description", json!("nul\u{0}byte")), "description"),
        (without("price"), "price"),
        (with("price", json!(-1)), "price"),
        (with("price", json!(19.99)), "price"),
        (with("price", json!("100")), "price"),
        (with("price", json!(1e300)), "price"),
        (without("sku"), "sku"),
        (with("sku", json!("has space")), "sku"),
        (with("sku", json!("x".repeat(65))), "sku"),
        (with("stock", json!(-1)), "stock"),
        (with("stock", json!(3_000_000_000_i64)), "stock"),
        (with("description", json!("x".repeat(5001))), "description"),
        (with("description", json!(7)), "description"),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/products", &body, Some(&admin)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{field}: {:?}", response.body);
        assert_eq!(response.code(), "invalid_input");
        assert_eq!(response.field(), field, "{:?}", response.body);
    }
    assert_eq!(app.count("products").await, 0);
    assert_eq!(app.count("product_stock").await, 0);
}

#[tokio::test]
async fn duplicate_sku_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.product("DUP-1", 100, 5).await;
    let admin = app.user_token(Role::Admin).await;

    let response =
        app.post("/api/v1/products", &json!({"name": "Again", "price": 1, "sku": "DUP-1"}), Some(&admin)).await;

    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(response.code(), "sku_taken");
    assert_eq!(app.count("products").await, 1);
}

#[tokio::test]
async fn strings_are_data_not_sql() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let name = "Robert'); DROP TABLE products; --";
    let description = "\\x00 ' \" ; -- /* */ $1 %s {{}} \u{1F3AE}";

    let created = app
        .post(
            "/api/v1/products",
            &json!({"name": name, "description": description, "price": 1, "sku": "SQL-1"}),
            Some(&admin),
        )
        .await;

    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_i64().expect("id");
    let fetched = app.get(&format!("/api/v1/products/{id}"), None).await;
    assert_eq!(fetched.body["name"], name);
    assert_eq!(fetched.body["description"], description);
    assert_eq!(app.count("products").await, 1);
    let login = app.login("x' OR '1'='1@example.com", "' OR '1'='1").await;
    assert!(login.status.is_client_error(), "{:?}", login);
}

#[tokio::test]
async fn get_unknown_or_malformed_id() {
    let app = TestApp::spawn().await;

    let missing = app.get("/api/v1/products/999", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "product_not_found");

    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let response = app.get(&format!("/api/v1/products/{bad}"), None).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.field(), "id", "{bad}");
    }
}

#[tokio::test]
async fn list_pages_through_everything_in_id_order() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(app.product(&format!("PAGE-{i}"), 100 + i, i).await);
    }

    let mut seen = Vec::new();
    let mut path = "/api/v1/products?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = app.get(&path, None).await;
        assert_eq!(page.status, StatusCode::OK);
        let items = page.body.as_array().expect("bare JSON array");
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|p| p["id"].as_i64().expect("id")));
        pages += 1;
        let Some(link) = page.headers.get("link") else { break };
        let link = link.to_str().expect("ascii");
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        path = link.trim_start_matches('<').split('>').next().expect("url").to_owned();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    let all = app.get("/api/v1/products", None).await;
    assert_eq!(all.body.as_array().map(Vec::len), Some(7));
    assert!(all.headers.get("link").is_none());
}

#[tokio::test]
async fn list_default_page_is_50_and_limit_is_checked() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    for i in 0..51 {
        let body = json!({"name": "g", "price": 1, "sku": format!("BULK-{i}")});
        assert_eq!(app.post("/api/v1/products", &body, Some(&admin)).await.status, StatusCode::CREATED);
    }

    let first = app.get("/api/v1/products", None).await;
    assert_eq!(first.body.as_array().map(Vec::len), Some(50));
    assert!(first.headers.get("link").is_some());

    for bad in ["limit=0", "limit=101", "limit=abc", "after=-1", "after=x"] {
        let response = app.get(&format!("/api/v1/products?{bad}"), None).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.field(), bad.split('=').next().expect("name"), "{bad}");
    }
    let max = app.get("/api/v1/products?limit=100", None).await;
    assert_eq!(max.body.as_array().map(Vec::len), Some(51));
}
