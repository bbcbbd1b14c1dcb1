#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real `migrate` binary as Lambda runs it: a fake Runtime API hands it two
//! invocations, a fake Parameters and Secrets extension serves the database and admin
//! secrets, and the database is a fresh one on the test PostgreSQL (`TEST_DATABASE_URL`).
//! Covers the AWS-only path end to end: secrets over the extension with the session token,
//! the connection built from DB_HOST/DB_PORT/DB_NAME + secret, migrations, first admin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use testkit::lambda::{Answer, Environment, serve, spawn_function};
use testkit::postgres::{connect, create_database, drop_database, test_database};
use tokio_postgres::NoTls;

#[tokio::test]
async fn migrate_binary_applies_migrations_and_creates_the_admin_once() {
    let (admin_url, host, port) = test_database();
    let (admin, db) = create_database(&admin_url, "migrate_lambda").await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let secrets = HashMap::from([
        (
            "arn:db".to_owned(),
            json!({"username": "postgres", "password": "trust-auth-ignores-it", "engine": "postgres"}),
        ),
        ("arn:admin".to_owned(), json!({"email": "first-admin@example.com", "password": "first admin password"})),
    ]);
    let events = vec![("first".to_owned(), json!({})), ("second".to_owned(), json!({}))];
    let mut lambda = Environment::start("migrate", events, secrets, seen.clone()).await.unwrap();

    let mut command = lambda.command(env!("CARGO_BIN_EXE_migrate"), (&host, port, &db));
    let child = spawn_function(command.env("ADMIN_SECRET_ARN", "arn:admin")).unwrap();

    let mut answers = Vec::new();
    for _ in 0..2 {
        let Answer { id, body, .. } = lambda.runtime.answer().await;
        answers.push((id, body));
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

    let client = connect(&format!("host={host} port={port} user=postgres dbname={db}")).await;
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
    drop_database(&admin, &db).await;
}

/// What the fake CodeDeploy saw: the operation (`X-Amz-Target`), the request body, and
/// whether the `users` table existed when the report arrived.
type Reports = Arc<Mutex<Vec<(String, serde_json::Value, bool)>>>;

/// CodeDeploy's JSON API, answering `PutLifecycleEventHookExecutionStatus` as AWS does.
/// On each call it looks at the database `db`, so the test can tell that the migrations
/// ran before the outcome was reported.
async fn fake_codedeploy(reports: Reports, db_url: String) -> testkit::lambda::Served {
    use axum::http::HeaderMap;
    async fn call(
        axum::extract::State((reports, db_url)): axum::extract::State<(Reports, String)>,
        headers: HeaderMap,
        body: String,
    ) -> impl axum::response::IntoResponse {
        let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let migrated = match tokio_postgres::connect(&db_url, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                let row = client.query_one("SELECT to_regclass('public.users') IS NOT NULL", &[]).await.unwrap();
                row.get::<_, bool>(0)
            }
            Err(_) => false,
        };
        let id = body["lifecycleEventHookExecutionId"].clone();
        reports.lock().unwrap().push((target, body, migrated));
        ([("content-type", "application/x-amz-json-1.1")], json!({ "lifecycleEventHookExecutionId": id }).to_string())
    }
    serve(axum::Router::new().route("/", axum::routing::post(call)).with_state((reports, db_url))).await.unwrap()
}

/// Runs the migrate binary on `db` for one CodeDeploy hook event and returns its answer
/// and what CodeDeploy was told.
async fn run_hook(db: &str, execution_id: &str) -> (String, serde_json::Value, Vec<(String, serde_json::Value, bool)>) {
    let (_, host, port) = test_database();
    let reports: Reports = Arc::default();
    let codedeploy =
        fake_codedeploy(reports.clone(), format!("host={host} port={port} user=postgres dbname={db}")).await;
    let secrets = HashMap::from([(
        "arn:db".to_owned(),
        json!({"username": "postgres", "password": "trust-auth-ignores-it", "engine": "postgres"}),
    )]);
    let event = json!({"DeploymentId": "d-TESTDEPLOY", "LifecycleEventHookExecutionId": execution_id});
    let events = vec![("hook".to_owned(), event)];
    let mut lambda = Environment::start("migrate", events, secrets, Arc::default()).await.unwrap();

    let mut command = lambda.command(env!("CARGO_BIN_EXE_migrate"), (&host, port, db));
    command
        .env_remove("ADMIN_SECRET_ARN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_CODEDEPLOY", format!("http://{}", codedeploy.address));
    let child = spawn_function(&mut command).unwrap();
    let Answer { id, body, .. } = lambda.runtime.answer().await;
    drop(child);
    let seen = reports.lock().unwrap().clone();
    (id, body, seen)
}

#[tokio::test]
async fn as_a_pretraffic_hook_it_migrates_then_reports_succeeded_to_codedeploy() {
    let (admin_url, _, _) = test_database();
    let (admin, db) = create_database(&admin_url, "migrate_hook").await;

    let (id, answer, reports) = run_hook(&db, "hook-execution-1").await;

    assert_eq!(id, "hook", "the invocation succeeded: {answer}");
    assert_eq!(answer, json!({"hook_status": "Succeeded"}));
    assert_eq!(reports.len(), 1, "one report to CodeDeploy: {reports:?}");
    let (target, body, migrated) = &reports[0];
    assert_eq!(target, "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus");
    assert_eq!(
        body,
        &json!({"deploymentId": "d-TESTDEPLOY", "lifecycleEventHookExecutionId": "hook-execution-1", "status": "Succeeded"})
    );
    assert!(migrated, "the schema existed before CodeDeploy was told to shift traffic");
    drop_database(&admin, &db).await;
}

#[tokio::test]
async fn as_a_pretraffic_hook_it_reports_failed_when_the_migration_fails() {
    // A database that does not exist: the migration cannot even connect.
    let db = format!("migrate_hook_missing_{}", uuid::Uuid::new_v4().simple());

    let (id, answer, reports) = run_hook(&db, "hook-execution-2").await;

    // The failure is CodeDeploy's to act on (it rolls the deployment back); the invocation
    // itself succeeds, so Lambda does not retry and report a second time.
    assert_eq!(id, "hook", "the invocation succeeded: {answer}");
    assert_eq!(answer, json!({"hook_status": "Failed"}));
    let bodies: Vec<_> = reports.iter().map(|(_, body, _)| body.clone()).collect();
    assert_eq!(
        bodies,
        vec![
            json!({"deploymentId": "d-TESTDEPLOY", "lifecycleEventHookExecutionId": "hook-execution-2", "status": "Failed"})
        ]
    );
}
