#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real `list-products` binary configured as the SAM template configures every HTTP
//! function: no JWT_SECRET or DATABASE_URL, only secret ARNs read through the (fake)
//! Parameters and Secrets extension and the proxy's host/port/name. The extension is
//! served only during INVOKE in AWS, so the function loads them on its first request:
//! this checks that deferred start-up answers, and reads the secrets once per environment.

#[path = "../../../common/tests/support/fake_lambda.rs"]
mod fake_lambda;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::domain::{Cents, Description, ProductName, Sku, Stock};
use common::store::products::{self, NewProduct};
use fake_lambda::{Killed, TOKEN, fake_extension, fake_runtime, test_database};
use serde_json::{Value, json};
use tokio_postgres::NoTls;

#[tokio::test]
async fn http_function_loads_its_secrets_through_the_extension_once() {
    let (admin_url, host, port) = test_database();
    let (admin, connection) = tokio_postgres::connect(&admin_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let db = format!("list_products_lambda_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE \"{db}\"")).await.unwrap();
    let pool = common::db::pool(&format!("host={host} port={port} user=postgres dbname={db}"), 1).unwrap();
    common::db::migrate(&pool).await.unwrap();
    let new = NewProduct {
        name: ProductName::parse("Lambda Game".into()).unwrap(),
        description: Description::parse("listed through the real binary".into()).unwrap(),
        price: Cents::parse(1234).unwrap(),
        sku: Sku::parse("LAMBDA-BIN-1".into()).unwrap(),
        stock: Stock::parse(7).unwrap(),
    };
    products::create(&**pool.get().await.unwrap(), &new).await.unwrap();
    pool.close();
    drop(pool);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let secrets = HashMap::from([
        ("arn:jwt".to_owned(), json!("a-jwt-signing-key-of-more-than-32-bytes-0123456789")),
        ("arn:db".to_owned(), json!({"username": "postgres", "password": "trust-auth-ignores-it"})),
    ]);
    let extension = fake_extension(secrets, seen.clone()).await;
    let fixture = format!("{}/../../events/list-products.json", env!("CARGO_MANIFEST_DIR"));
    let event: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let (runtime, mut results) = fake_runtime(vec![("one".to_owned(), event.clone()), ("two".to_owned(), event)]).await;

    let child = Command::new(env!("CARGO_BIN_EXE_list-products"))
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "list-products")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", extension.port().to_string())
        .env("JWT_SECRET_ARN", "arn:jwt")
        .env("DB_HOST", &host)
        .env("DB_PORT", port.to_string())
        .env("DB_NAME", &db)
        // The test cluster has no TLS; in AWS the template sets `require`.
        .env("DB_SSLMODE", "disable")
        .env("DB_SECRET_ARN", "arn:db")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let child = Killed(child);

    for id in ["one", "two"] {
        let answer = tokio::time::timeout(Duration::from_secs(120), results.recv()).await;
        let (got, response) = answer.expect("the function answered").expect("channel open");
        assert_eq!(got, id, "{response}");
        assert_eq!(response["statusCode"], 200, "{response}");
        let body: Value = serde_json::from_str(response["body"].as_str().expect("body")).unwrap();
        assert_eq!(body[0]["sku"], "LAMBDA-BIN-1", "{body}");
        assert_eq!(body[0]["price"], 1234, "{body}");
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, vec!["arn:db".to_owned(), "arn:jwt".to_owned()], "each secret is read once");

    drop(child);
    admin.batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)")).await.unwrap();
}
