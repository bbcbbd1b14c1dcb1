//! GET /api/v1/products?q=&min_price=&max_price=&in_stock=&sort=: the catalogue searched,
//! filtered and sorted, a keyset page at a time.

use common::domain::Role;
use http::{Method, StatusCode};
use serde_json::json;
use testkit::app::TestApp;

/// Creates a product named `name` through the API and returns its id.
async fn named(app: &TestApp, admin: &str, name: &str, price: i64, stock: i64) -> i64 {
    let sku = format!("SKU-{}", app.count("products").await);
    let body = json!({"name": name, "price": price, "sku": sku, "stock": stock});
    let created = app.post("/api/v1/products", &body, Some(admin)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.body["id"].as_i64().expect("id")
}

async fn archive(app: &TestApp, admin: &str, id: i64) {
    let auth = format!("Bearer {admin}");
    let response =
        app.send(Method::DELETE, &format!("/api/v1/products/{id}"), &[("authorization", &auth)], vec![]).await;
    assert!(response.status.is_success(), "{response:?}");
}

/// Every product of the listing that starts at `path`, following `Link: rel="next"` page by
/// page: (id, stock) in the order served. Checks that each link repeats `filter`.
async fn walk(app: &TestApp, path: &str, filter: &str) -> Vec<(i64, i64)> {
    let mut seen = Vec::new();
    let mut path = path.to_owned();
    for _ in 0..100 {
        let page = app.get(&path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {:?}", page.body);
        let items = page.body.as_array().expect("bare JSON array");
        seen.extend(items.iter().map(|p| (p["id"].as_i64().expect("id"), p["stock"].as_i64().expect("stock"))));
        let Some(link) = page.headers.get("link") else { return seen };
        let link = link.to_str().expect("ascii");
        assert!(link.starts_with(&format!("</api/v1/products?{filter}")), "{link} drops {filter}");
        path = link.trim_start_matches('<').split('>').next().expect("url").to_owned();
    }
    panic!("more than 100 pages from {path}");
}

/// The names a search finds, whatever their order.
async fn found(app: &TestApp, query: &str) -> Vec<String> {
    let page = app.get(&format!("/api/v1/products?limit=100&{query}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{query}: {:?}", page.body);
    let mut names: Vec<String> =
        page.body.as_array().expect("array").iter().map(|p| p["name"].as_str().expect("name").to_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn search_finds_prefixes_and_substrings_whatever_the_case_and_accents() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    for name in [
        "The Legend of Zelda",
        "Zelda II",
        "Pokémon Red",
        "POKEMON Blue",
        "Pokemon Snap",
        "Celeste",
        "100% Orange Juice",
        "1000 Orange",
        "A_B",
        "AxB",
    ] {
        named(&app, &admin, name, 100, 1).await;
    }
    let zelda = ["The Legend of Zelda", "Zelda II"];
    let pokemon = ["POKEMON Blue", "Pokemon Snap", "Pokémon Red"];

    for (query, expected) in [
        ("q=zel", &zelda[..]),
        ("q=ELDA", &zelda),
        ("q=ze", &zelda),
        ("q=%20%20zelda%20", &zelda),
        ("q=Pok%C3%A9mon", &pokemon),
        ("q=pokemon", &pokemon),
        ("q=POK%C3%89", &pokemon),
        ("q=%C3%A9mon%20r", &["Pokémon Red"]),
        ("q=legend%20of", &["The Legend of Zelda"]),
        // LIKE's wildcards are text: `100%` is not `100` followed by anything.
        ("q=100%25", &["100% Orange Juice"]),
        ("q=a_b", &["A_B"]),
        ("q=xyz", &[]),
    ] {
        assert_eq!(found(&app, query).await, expected, "{query}");
    }
    assert_eq!(found(&app, "q=").await.len(), 10, "an empty search is no search");
    assert_eq!(found(&app, "q=zel&sort=price").await, zelda);
    assert_eq!(found(&app, "q=zel&sort=newest").await, zelda);
}

#[tokio::test]
async fn price_range_and_in_stock_filter_the_catalogue() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    named(&app, &admin, "Cheap", 100, 0).await;
    named(&app, &admin, "Middle", 200, 3).await;
    let split = named(&app, &admin, "Split", 300, 1).await;
    named(&app, &admin, "Dear", 400, 0).await;
    // Sixteen buckets, one of them holding the unit.
    app.split(split).await;

    for (query, expected) in [
        ("min_price=200", &["Dear", "Middle", "Split"][..]),
        ("max_price=200", &["Cheap", "Middle"]),
        ("min_price=200&max_price=300", &["Middle", "Split"]),
        ("min_price=300&max_price=300", &["Split"]),
        ("min_price=1.0e2&max_price=100", &["Cheap"]),
        ("min_price=401", &[]),
        ("in_stock=true", &["Middle", "Split"]),
        ("in_stock=false", &["Cheap", "Dear", "Middle", "Split"]),
        ("in_stock=true&max_price=200", &["Middle"]),
        ("in_stock=true&sort=price", &["Middle", "Split"]),
    ] {
        assert_eq!(found(&app, query).await, expected, "{query}");
    }
    let page = app.get("/api/v1/products?in_stock=true&min_price=300", None).await;
    assert_eq!(page.body[0]["stock"], 1, "the sum of the buckets: {:?}", page.body);
}

#[tokio::test]
async fn archived_products_stay_out_of_every_search_filter_and_sort() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    named(&app, &admin, "Zelda I", 100, 5).await;
    let archived = named(&app, &admin, "Zelda II", 100, 5).await;
    named(&app, &admin, "Zelda III", 100, 5).await;
    named(&app, &admin, "Celeste", 100, 5).await;
    archive(&app, &admin, archived).await;

    for query in ["", "q=zelda", "in_stock=true", "min_price=100", "sort=price", "sort=newest", "q=ii&sort=price"] {
        assert!(!found(&app, query).await.contains(&"Zelda II".to_owned()), "{query}");
    }
    assert_eq!(found(&app, "q=zelda&sort=newest").await, ["Zelda I", "Zelda III"]);
}

#[tokio::test]
async fn bad_catalogue_queries_name_the_field() {
    let app = TestApp::spawn().await;
    app.product("ONE", 100, 1).await;
    let long = "x".repeat(101);
    let cases = [
        (format!("q={long}"), "q"),
        ("q=zel%0A".to_owned(), "q"),
        ("q=%00".to_owned(), "q"),
        ("q=a%07b".to_owned(), "q"),
        ("q=a%C2%85b".to_owned(), "q"),
        ("min_price=-1".to_owned(), "min_price"),
        ("min_price=1.5".to_owned(), "min_price"),
        ("min_price=abc".to_owned(), "min_price"),
        ("max_price=1000000000001".to_owned(), "max_price"),
        ("max_price=".to_owned(), "max_price"),
        ("min_price=300&max_price=200".to_owned(), "min_price"),
        ("in_stock=yes".to_owned(), "in_stock"),
        ("in_stock=1".to_owned(), "in_stock"),
        ("sort=name".to_owned(), "sort"),
        ("sort=PRICE".to_owned(), "sort"),
        ("sort=".to_owned(), "sort"),
        ("after_key=5".to_owned(), "after_key"),
        ("after=3&after_key=5".to_owned(), "after_key"),
        ("sort=price&after=3".to_owned(), "after_key"),
        ("sort=newest&after=3&after_key=x".to_owned(), "after_key"),
        ("sort=newest&after=3&after_key=9223372036854775807".to_owned(), "after_key"),
    ];
    for (query, field) in cases {
        let response = app.get(&format!("/api/v1/products?{query}"), None).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}: {:?}", response.body);
        assert_eq!(response.code(), "invalid_input", "{query}");
        assert_eq!(response.field(), field, "{query}: {:?}", response.body);
    }
    let longest = app.get(&format!("/api/v1/products?q={}", "x".repeat(100)), None).await;
    assert_eq!(longest.status, StatusCode::OK, "{:?}", longest.body);
}

/// A product as the full scan reads it from the database.
struct Row {
    id: i64,
    name: String,
    price: i64,
    created_us: i64,
    stock: i64,
}

#[tokio::test]
async fn pages_neither_skip_nor_repeat_under_every_sort_with_ties() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let name = if i % 5 == 0 { format!("Other {i}") } else { format!("Tie {i}") };
        ids.push(named(&app, &admin, &name, 100 * (1 + i % 3), i % 4).await);
    }
    for id in [ids[1], ids[6], ids[7]] {
        app.split(id).await;
    }
    archive(&app, &admin, ids[4]).await;
    archive(&app, &admin, ids[13]).await;
    // Three creation times shared by ten products each, one with a fraction of a second:
    // the page boundary falls inside runs of equal prices and equal times.
    app.pool()
        .get()
        .await
        .expect("connection")
        .execute(
            "UPDATE products SET created_at = timestamptz '2026-01-01 00:00:00.123456+00' + (id % 3) * interval '1 hour'",
            &[],
        )
        .await
        .expect("equal creation times");

    // The full scan: every product with its stock, read straight from the tables.
    let client = app.pool().get().await.expect("connection");
    let scan = client
        .query(
            "SELECT p.id, p.name, p.price, (extract(epoch FROM p.created_at) * 1000000)::BIGINT, \
                    (SELECT sum(s.stock) FROM product_stock s WHERE s.product_id = p.id)::BIGINT \
               FROM products p WHERE p.archived_at IS NULL",
            &[],
        )
        .await
        .expect("full scan");
    let rows: Vec<Row> = scan
        .iter()
        .map(|r| Row { id: r.get(0), name: r.get(1), price: r.get(2), created_us: r.get(3), stock: r.get(4) })
        .collect();
    assert_eq!(rows.len(), 28);

    type Keep = fn(&Row) -> bool;
    let filters: [(&str, Keep); 5] = [
        ("", |_| true),
        ("q=TIE", |r| r.name.starts_with("Tie")),
        ("min_price=200&max_price=300", |r| (200..=300).contains(&r.price)),
        ("in_stock=true", |r| r.stock > 0),
        ("q=tie&min_price=200&in_stock=true", |r| r.name.starts_with("Tie") && r.price >= 200 && r.stock > 0),
    ];
    for (sort, sort_query) in [("id", ""), ("price", "sort=price"), ("newest", "sort=newest")] {
        for (filter, keep) in &filters {
            let mut expected: Vec<&Row> = rows.iter().filter(|r| keep(r)).collect();
            match sort {
                "id" => expected.sort_by_key(|r| r.id),
                "price" => expected.sort_by_key(|r| (r.price, r.id)),
                _ => expected.sort_by_key(|r| std::cmp::Reverse((r.created_us, r.id))),
            }
            let expected: Vec<(i64, i64)> = expected.iter().map(|r| (r.id, r.stock)).collect();
            let query = [*filter, sort_query].iter().filter(|q| !q.is_empty()).copied().collect::<Vec<_>>().join("&");
            let first = format!("/api/v1/products?{query}{}limit=4", if query.is_empty() { "" } else { "&" });

            let served = walk(&app, &first, &query).await;

            assert!(expected.len() > 4, "{query}: more than one page");
            assert_eq!(served, expected, "sort={sort} {filter}");
        }
    }
}

#[tokio::test]
async fn a_renamed_product_is_found_by_its_new_name_only() {
    let app = TestApp::spawn().await;
    let admin = app.user_token(Role::Admin).await;
    let id = named(&app, &admin, "Celeste", 100, 1).await;
    let read = app.get(&format!("/api/v1/products/{id}"), None).await;

    let renamed = crate::product_edit::patch(
        &app,
        id,
        &json!({"name": "Hollow Knight: Édition"}),
        Some(&admin),
        Some(&crate::product_edit::etag(&read)),
    )
    .await;

    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!(found(&app, "q=edition").await, ["Hollow Knight: Édition"]);
    assert!(found(&app, "q=celeste").await.is_empty());
}
