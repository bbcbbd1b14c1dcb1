#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real `migrate` binary as Lambda runs it: a fake Runtime API hands it two
//! invocations, a fake Parameters and Secrets extension serves the database and admin
//! secrets, and the database is a fresh one on the test PostgreSQL (`TEST_DATABASE_URL`).
//! Covers the AWS-only path end to end: secrets over the extension with the session token,
//! the connection built from DB_HOST/DB_PORT/DB_NAME + secret, migrations, first admin.

#[path = "../../../common/tests/support/fake_lambda.rs"]
mod fake_lambda;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_lambda::{Killed, TOKEN, fake_extension, fake_runtime, test_database};
use serde_json::json;
use tokio_postgres::NoTls;

#[tokio::test]
async fn migrate_binary_applies_migrations_and_creates_the_admin_once() {
    let (admin_url, host, port) = test_database();
    let (admin, connection) = tokio_postgres::connect(&admin_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let db = format!("migrate_lambda_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE \"{db}\"")).await.unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let secrets = HashMap::from([
        (
            "arn:db".to_owned(),
            json!({"username": "postgres", "password": "trust-auth-ignores-it", "engine": "postgres"}),
        ),
        ("arn:admin".to_owned(), json!({"email": "first-admin@example.com", "password": "first admin password"})),
    ]);
    let extension = fake_extension(secrets, seen.clone()).await;
    let (runtime, mut results) =
        fake_runtime(vec![("first".to_owned(), json!({})), ("second".to_owned(), json!({}))]).await;

    let child = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .env_remove("DATABASE_URL")
        .env_remove("ADMIN_EMAIL")
        .env_remove("ADMIN_PASSWORD")
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "migrate")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", extension.port().to_string())
        .env("DB_HOST", &host)
        .env("DB_PORT", port.to_string())
        .env("DB_NAME", &db)
        // The test cluster has no TLS; in AWS the template sets `require`.
        .env("DB_SSLMODE", "disable")
        .env("DB_SECRET_ARN", "arn:db")
        .env("ADMIN_SECRET_ARN", "arn:admin")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let child = Killed(child);

    let mut answers = Vec::new();
    for _ in 0..2 {
        let answer = tokio::time::timeout(Duration::from_secs(120), results.recv()).await;
        answers.push(answer.expect("the function answered").expect("channel open"));
    }
    let (first_id, first) = &answers[0];
    assert_eq!(first_id, "first", "{first}");
    let applied = first["applied_migrations"].as_array().expect("applied_migrations");
    assert!(applied.iter().any(|m| m.as_str().is_some_and(|m| m.starts_with("V1__"))), "{first}");
    assert_eq!(first["admin"], "created", "{first}");
    let (second_id, second) = &answers[1];
    assert_eq!(second_id, "second", "{second}");
    assert_eq!(second["applied_migrations"], json!([]), "{second}");
    assert_eq!(second["admin"], "present", "{second}");

    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&"arn:db".to_owned()) && seen.contains(&"arn:admin".to_owned()), "{seen:?}");

    let (client, connection) =
        tokio_postgres::connect(&format!("host={host} port={port} user=postgres dbname={db}"), NoTls).await.unwrap();
    tokio::spawn(connection);
    let admins: Vec<String> = client
        .query("SELECT email FROM users WHERE role = 'admin'", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(admins, vec!["first-admin@example.com".to_owned()]);
    drop(client);
    drop(child);
    admin.batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)")).await.unwrap();
}
