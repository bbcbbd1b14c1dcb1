use std::time::{Duration, Instant};

use common::domain::Role;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use testkit::app::{JWT_SECRET, PASSWORD, TestApp};

#[tokio::test]
async fn register_creates_a_user_and_never_returns_the_hash() {
    let app = TestApp::spawn().await;

    let response = app.register("Ann@Example.COM", PASSWORD).await;

    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    assert_eq!(response.body["message"], "Registration successful");
    let user = &response.body["user"];
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["role"], "user");
    assert!(user["id"].as_i64().is_some_and(|id| id > 0));
    assert!(!response.body.to_string().contains("argon2"), "hash leaked: {}", response.body);
    let stored: String = app.query_one("SELECT password_hash FROM users WHERE email = 'ann@example.com'", &[]).await;
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_whatever_its_case() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register("bob@example.com", PASSWORD).await.status, StatusCode::CREATED);

    let response = app.register("BOB@example.com", "another password").await;

    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(response.code(), "email_taken");
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn registration_rules_name_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"password": PASSWORD}), "email"),
        (json!({"email": "c@example.com"}), "password"),
        (json!({"email": null, "password": PASSWORD}), "email"),
        (json!({"email": "not-an-email", "password": PASSWORD}), "email"),
        (json!({"email": "c@localhost", "password": PASSWORD}), "email"),
        (json!({"email": "c\u{0}@example.com", "password": PASSWORD}), "email"),
        (json!({"email": "c@example.com", "password": "short"}), "password"),
        (json!({"email": "c@example.com", "password": "x".repeat(129)}), "password"),
        (json!({"email": 42, "password": PASSWORD}), "email"),
        (json!({"email": "c@example.com", "password": ["a"]}), "password"),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/auth/register", &body, None).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {:?}", response.body);
        assert_eq!(response.code(), "invalid_input", "{body}");
        assert_eq!(response.field(), field, "{body}");
        assert!(response.body["error"].as_str().is_some_and(|e| e.starts_with(field)), "{:?}", response.body);
    }
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn login_returns_a_token_the_api_accepts() {
    let app = TestApp::spawn().await;
    app.register("dee@example.com", PASSWORD).await;

    let response = app.login("DEE@example.com", PASSWORD).await;

    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 3600);
    let token = response.body["token"].as_str().expect("token");
    let product = app.product("LOGIN-1", 100, 1).await;
    let order = app.post("/api/v1/orders", &json!({"product_id": product}), Some(token)).await;
    assert_eq!(order.status, StatusCode::CREATED, "{:?}", order.body);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    app.register("eve@example.com", PASSWORD).await;

    let wrong_password = app.login("eve@example.com", "not the password").await;
    let unknown_email = app.login("nobody@example.com", "not the password").await;

    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.body, json!({"error": "Invalid email or password", "code": "invalid_credentials"}));
    assert_eq!(unknown_email.status, wrong_password.status);
    assert_eq!(unknown_email.body, wrong_password.body);
}

/// Not a speed target: it checks that an unknown email does the argon2 work too. Skipping
/// it would make the unknown case over 10x faster; the bound allows 3x of noise.
#[tokio::test]
async fn unknown_email_costs_a_password_verification() {
    let app = TestApp::spawn().await;
    app.register("fay@example.com", PASSWORD).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..7 {
        // Stay under the failed-login limit: a throttled attempt skips the hashing.
        app.pool().get().await.expect("connection").execute("DELETE FROM rate_limits", &[]).await.expect("reset");
        let started = Instant::now();
        app.login("fay@example.com", "wrong password").await;
        known.push(started.elapsed());
        let started = Instant::now();
        app.login("ghost@example.com", "wrong password").await;
        unknown.push(started.elapsed());
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (known, unknown) = (median(known), median(unknown));
    assert!(unknown * 3 > known, "unknown email took {unknown:?}, known {known:?}: hashing skipped?");
}

#[tokio::test]
async fn protected_routes_reject_missing_and_malformed_headers() {
    let app = TestApp::spawn().await;
    let body = json!({"product_id": 1}).to_string().into_bytes();
    let cases = [
        (vec![], "missing_token", "Authorization header required"),
        (vec![("authorization", "Token abc")], "invalid_auth_header", "Invalid header format"),
        (vec![("authorization", "Bearer")], "invalid_auth_header", "Invalid header format"),
        (vec![("authorization", "Bearer ")], "invalid_auth_header", "Invalid header format"),
        (vec![("authorization", "Bearer garbage")], "invalid_token", "Invalid or expired token"),
    ];
    for (mut headers, code, message) in cases {
        headers.push(("content-type", "application/json"));
        let response = app.send(http::Method::POST, "/api/v1/orders", &headers, body.clone()).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(response.code(), code, "{headers:?}");
        assert_eq!(response.body["error"], message);
        assert_eq!(response.headers.get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    }
}

fn claims(role: &str, exp_offset: i64) -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    json!({"sub": "1", "role": role, "iat": now, "exp": now + exp_offset, "iss": "gamestore", "aud": "gamestore-api"})
}

fn sign(algorithm: Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).expect("sign")
}

#[tokio::test]
async fn forged_and_stale_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let product = app.product("AUTH-1", 100, 10).await;
    let valid_user = app.user_token(Role::User).await;
    let valid_admin = app.user_token(Role::Admin).await;
    let segments = |t: &str| t.split('.').map(str::to_owned).collect::<Vec<_>>();
    let (user, admin) = (segments(&valid_user), segments(&valid_admin));
    // {"alg":"none","typ":"JWT"}
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let mut wrong_iss = claims("admin", 3600);
    wrong_iss["iss"] = json!("someone-else");
    let mut no_aud = claims("admin", 3600);
    no_aud.as_object_mut().expect("object").remove("aud");
    let mut no_role = claims("admin", 3600);
    no_role.as_object_mut().expect("object").remove("role");

    let forged = [
        ("alg none", format!("{none_header}.{}.", admin[1])),
        ("wrong secret", sign(Algorithm::HS256, b"another-secret-with-at-least-32-bytes!!", &claims("admin", 3600))),
        ("payload swapped after signing", format!("{}.{}.{}", user[0], admin[1], user[2])),
        ("expired", sign(Algorithm::HS256, JWT_SECRET, &claims("admin", -120))),
        ("HS384 with the same key", sign(Algorithm::HS384, JWT_SECRET, &claims("admin", 3600))),
        ("wrong issuer", sign(Algorithm::HS256, JWT_SECRET, &wrong_iss)),
        ("missing audience", sign(Algorithm::HS256, JWT_SECRET, &no_aud)),
        ("missing role", sign(Algorithm::HS256, JWT_SECRET, &no_role)),
        ("truncated signature", valid_admin[..valid_admin.len() - 3].to_owned()),
    ];
    for (what, token) in forged {
        let order = app.post("/api/v1/orders", &json!({"product_id": product}), Some(&token)).await;
        assert_eq!(order.status, StatusCode::UNAUTHORIZED, "{what}: {:?}", order.body);
        assert_eq!(order.code(), "invalid_token", "{what}");
        let create =
            app.post("/api/v1/products", &json!({"name": "x", "price": 1, "sku": "FORGED"}), Some(&token)).await;
        assert_eq!(create.status, StatusCode::UNAUTHORIZED, "{what}");
    }
    assert_eq!(app.count("orders").await, 0);
    assert_eq!(app.count("products").await, 1);
    assert_eq!(app.stock(product).await, 10);

    // The control: a correctly signed token with the same claims is accepted.
    let good = sign(Algorithm::HS256, JWT_SECRET, &claims("admin", 3600));
    let create = app.post("/api/v1/products", &json!({"name": "x", "price": 1, "sku": "GOOD"}), Some(&good)).await;
    assert_eq!(create.status, StatusCode::CREATED, "{:?}", create.body);
}

#[tokio::test]
async fn a_user_token_is_forbidden_on_admin_routes() {
    let app = TestApp::spawn().await;
    let user = app.user_token(Role::User).await;

    let response = app.post("/api/v1/products", &json!({"name": "x", "price": 1, "sku": "NOPE"}), Some(&user)).await;

    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.body, json!({"error": "Admins only", "code": "admin_only"}));
    assert_eq!(app.count("products").await, 0);
}
