//! Each function's Lambda entry point (`common::lambda::service` around its routes), fed
//! API Gateway HTTP API (v2) events as Lambda delivers them: named stage in the path,
//! base64 bodies, the fixtures in `events/`.

use axum::Router;
use axum::body::to_bytes;
use base64::prelude::{BASE64_STANDARD, Engine};
use common::AppState;
use common::domain::Role;
use common::http::matches_template;
use http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

use testkit::app::TestApp;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Rewrites a fixture: path under `stage`, optional body (base64 when asked), headers.
fn event(name: &str, stage: &str, body: Option<&Value>, base64: bool, headers: &[(&str, &str)]) -> Value {
    let mut event = fixture(name);
    let path = event["requestContext"]["http"]["path"].as_str().expect("path").to_owned();
    let path = match event["requestContext"]["stage"].as_str() {
        Some(old) if old != "$default" => path.trim_start_matches(&format!("/{old}")).to_owned(),
        _ => path,
    };
    let staged = if stage == "$default" { path } else { format!("/{stage}{path}") };
    event["rawPath"] = json!(staged);
    event["requestContext"]["http"]["path"] = json!(staged);
    event["requestContext"]["stage"] = json!(stage);
    if let Some(body) = body {
        let text = body.to_string();
        event["body"] = json!(if base64 { BASE64_STANDARD.encode(text.as_bytes()) } else { text });
        event["isBase64Encoded"] = json!(base64);
    }
    for (name, value) in headers {
        event["headers"][*name] = json!(value);
    }
    event
}

async fn invoke(routes: fn(AppState) -> Router, app: &TestApp, event: &Value) -> (StatusCode, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event");
    let response = common::lambda::service(routes(app.state.clone())).oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn register_and_login_through_their_lambdas() {
    let app = TestApp::spawn().await;

    // The fixture as committed: stage "prod" in the path and a base64 body.
    let (status, body) = invoke(register::routes, &app, &fixture("register")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], "lambda-fixture@example.com");

    let credentials = json!({"email": "lambda-fixture@example.com", "password": "correct horse battery"});
    let (status, body) = invoke(login::routes, &app, &event("login", "$default", Some(&credentials), false, &[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].as_str().is_some_and(|t| t.split('.').count() == 3));
}

/// In Lambda the client network is API Gateway's `sourceIp`; an `X-Forwarded-For` the
/// client sends is not trusted, so changing it does not escape the lockout.
#[tokio::test]
async fn login_throttling_keys_on_the_gateway_source_ip() {
    let app = TestApp::spawn().await;
    app.register("gwen@example.com", testkit::app::PASSWORD).await;
    let login = |password: &str, source_ip: &str, forwarded_for: &str| {
        let credentials = json!({"email": "gwen@example.com", "password": password});
        let mut event = event("login", "$default", Some(&credentials), false, &[("x-forwarded-for", forwarded_for)]);
        event["requestContext"]["http"]["sourceIp"] = json!(source_ip);
        event
    };

    for i in 0..5 {
        let guess = login("guess", "203.0.113.9", &format!("198.51.100.{i}"));
        assert_eq!(invoke(login::routes, &app, &guess).await.0, StatusCode::UNAUTHORIZED);
    }
    let blocked = login(testkit::app::PASSWORD, "203.0.113.9", "198.51.100.77");
    assert_eq!(invoke(login::routes, &app, &blocked).await.0, StatusCode::TOO_MANY_REQUESTS);

    let owner = login(testkit::app::PASSWORD, "198.51.100.7", "203.0.113.9");
    assert_eq!(invoke(login::routes, &app, &owner).await.0, StatusCode::OK);
}

#[tokio::test]
async fn product_functions_through_their_lambdas() {
    let app = TestApp::spawn().await;
    let admin = format!("Bearer {}", app.user_token(Role::Admin).await);
    let auth = [("authorization", admin.as_str())];

    let fixture_body = fixture("create-product")["body"].as_str().map(str::to_owned).expect("body");
    let new: Value = serde_json::from_str(&fixture_body).expect("JSON body");
    let (status, created) =
        invoke(create_product::routes, &app, &event("create-product", "prod", Some(&new), true, &auth)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().expect("id");

    let mut get = event("get-product", "prod", None, false, &[]);
    let path = format!("/prod/api/v1/products/{id}");
    get["rawPath"] = json!(path);
    get["requestContext"]["http"]["path"] = json!(path);
    let (status, fetched) = invoke(get_product::routes, &app, &get).await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched, created);

    app.product("LAMBDA-2", 5, 5).await;
    let (status, listed) = invoke(list_products::routes, &app, &event("list-products", "prod", None, false, &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(2));

    // A user token on the admin function is refused by the Lambda as by the server.
    let user = format!("Bearer {}", app.user_token(Role::User).await);
    let (status, _) = invoke(
        create_product::routes,
        &app,
        &event(
            "create-product",
            "$default",
            Some(&json!({"name": "x", "price": 1, "sku": "X"})),
            false,
            &[("authorization", user.as_str())],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn list_products_links_keep_the_stage() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.product(&format!("STAGE-{i}"), 1, 1).await;
    }
    let request =
        lambda_http::request::from_str(&event("list-products", "prod", None, false, &[]).to_string()).expect("event");
    let response =
        common::lambda::service(list_products::routes(app.state.clone())).oneshot(request).await.expect("ok");
    let link = response.headers().get("link").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(link.starts_with("</prod/api/v1/products?limit=2&after="), "{link}");
}

#[tokio::test]
async fn create_order_through_its_lambda() {
    let app = TestApp::spawn().await;
    let product = app.product("LAMBDA-ORDER", 700, 1).await;
    let user = format!("Bearer {}", app.user_token(Role::User).await);
    let order = json!({"product_id": product});

    let (status, body) = invoke(
        create_order::routes,
        &app,
        &event("create-order", "prod", Some(&order), true, &[("authorization", &user)]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["order"]["total"], 700);

    let (status, body) = invoke(
        create_order::routes,
        &app,
        &event("create-order", "$default", Some(&order), false, &[("authorization", &user)]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "out_of_stock");
}

#[tokio::test]
async fn a_function_answers_json_for_routes_it_does_not_own() {
    let app = TestApp::spawn().await;

    let (status, body) = invoke(create_order::routes, &app, &event("list-products", "prod", None, false, &[])).await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "route_not_found");
}

/// The openapi function takes API Gateway's `$default` route: a documented path with a
/// method nobody serves is 405, as the local router answers it; an unknown path is 404.
#[tokio::test]
async fn the_default_route_answers_405_for_a_documented_path_and_404_otherwise() {
    let app = TestApp::spawn().await;
    let mut unlisted = event("list-products", "$default", None, false, &[]);
    unlisted["routeKey"] = json!("$default");
    unlisted["requestContext"]["http"]["method"] = json!("DELETE");
    let mut unknown = unlisted.clone();
    unknown["rawPath"] = json!("/api/v1/nothing-here");
    unknown["requestContext"]["http"]["path"] = json!("/api/v1/nothing-here");

    let (status, body) = invoke(openapi::routes, &app, &unlisted).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["code"], "method_not_allowed");
    let (status, body) = invoke(openapi::routes, &app, &unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "route_not_found");
}

/// A handler that panics is answered 500 `internal_error` by the function itself, not left
/// to the runtime (an invocation error, which API Gateway turns into its own non-JSON 500).
#[tokio::test]
async fn a_panicking_handler_answers_500_json_through_its_lambda() {
    async fn boom() -> &'static str {
        panic!("the handler failed")
    }
    fn panicking(_: AppState) -> Router {
        Router::new().route("/api/v1/products", axum::routing::get(boom))
    }
    let app = TestApp::spawn().await;

    let (status, body) = invoke(panicking, &app, &event("list-products", "prod", None, false, &[])).await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], "internal_error", "{body}");
}

/// `events/<function>.json` exists for every HTTP function and is a request its routes
/// serve (method and a path matching one of its templates): developers invoke them with
/// `cargo lambda invoke`, and `make bench` prices each function with its own.
#[test]
fn every_http_function_has_a_fixture_for_one_of_its_routes() {
    for (name, _, routes) in gamestore::functions() {
        let event = fixture(name);
        let method = event["requestContext"]["http"]["method"].as_str().unwrap_or_default();
        // A named stage leads the raw path, as API Gateway sends it.
        let stage = format!("/{}", event["requestContext"]["stage"].as_str().unwrap_or_default());
        let raw = event["rawPath"].as_str().unwrap_or_default();
        let path = raw.strip_prefix(stage.as_str()).unwrap_or(raw);
        assert!(
            routes.table().iter().any(|(m, template)| m.as_str() == method && matches_template(template, path)),
            "events/{name}.json sends {method} {path}, which {name} does not serve: {:?}",
            routes.table()
        );
    }
}
