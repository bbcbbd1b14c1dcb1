//! End to end through one base URL, against the stack `make test` starts (devgw in front
//! of the real function binaries under `cargo lambda watch`, LocalStack, Postgres): the
//! welcome mail goes register -> SQS -> email-worker binary -> SES once, a poison message
//! ends in the dead-letter queue, the scheduled sweeper republishes an outbox row nobody
//! published, and an unrouted path gets the API's JSON 404.
//!
//! Ignored in a plain `cargo nextest run`: scripts/test.sh starts the stack and runs them
//! with `--run-ignored only`, passing it in TEST_LAMBDA_* variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::Client;
use serde_json::Value;
use support::{get, post, send, test_localstack};
use tokio_postgres::NoTls;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: scripts/test.sh starts the Lambda stack"))
}

fn api(path: &str) -> String {
    format!("{}/api/v1{path}", var("TEST_LAMBDA_API"))
}

/// Polls `check` until it yields a value; generous, since a function's first request
/// compiles it under `cargo lambda watch`. Not a timing assertion: only a bound on waiting.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    for _ in 0..600 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("gave up waiting for {what}");
}

/// The mails LocalStack's SES sent to `to`.
async fn mails_to(to: &str) -> usize {
    let (_, _, body) = send(get(&format!("{}/_aws/ses", test_localstack()))).await;
    let sent: Value = serde_json::from_slice(&body).unwrap();
    sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Destination"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|t| t == to)))
        .count()
}

async fn database() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&var("TEST_LAMBDA_DATABASE_URL"), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
#[ignore = "needs the Lambda stack (scripts/test.sh)"]
async fn register_sends_one_welcome_mail_through_sqs_the_worker_binary_and_ses() {
    let email = unique_email("welcome");
    let body = serde_json::json!({"email": email, "password": "correct horse"}).to_string();
    let (status, _, answer) = send(post(&api("/auth/register"), "application/json", body)).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));

    eventually("the welcome mail in SES", || async { (mails_to(&email).await > 0).then_some(()) }).await;
    let db = database().await;
    let rows = db
        .query("SELECT attempts, sent_at IS NOT NULL FROM email_deliveries WHERE recipient = $1", &[&email])
        .await
        .unwrap();
    let deliveries: Vec<(i32, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(deliveries, vec![(1, true)], "one claim, one send");
    assert_eq!(mails_to(&email).await, 1);
}

#[tokio::test]
#[ignore = "needs the Lambda stack (scripts/test.sh)"]
async fn a_poison_message_ends_in_the_dead_letter_queue_after_the_redrive_count() {
    let client = Client::new(&common::aws::localstack_config(&test_localstack()).await);
    let body = format!("not an outbox message {}", uuid::Uuid::new_v4());
    client.send_message().queue_url(var("TEST_LAMBDA_QUEUE_URL")).message_body(&body).send().await.unwrap();
    let max_receives: u32 = var("TEST_LAMBDA_MAX_RECEIVES").parse().unwrap();
    let receives = eventually("the poison message in the DLQ", || async {
        let output = client
            .receive_message()
            .queue_url(var("TEST_LAMBDA_DLQ_URL"))
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        output.messages.unwrap_or_default().into_iter().find(|m| m.body() == Some(body.as_str())).map(|m| {
            let count = m
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount).cloned());
            count.and_then(|c| c.parse::<u32>().ok()).unwrap_or_default()
        })
    })
    .await;
    // Received max_receives times from the queue (each failed by the worker), then once here.
    assert!(receives > max_receives, "received {receives} times");
}

#[tokio::test]
#[ignore = "needs the Lambda stack (scripts/test.sh)"]
async fn the_scheduled_sweeper_publishes_an_outbox_row_whose_publish_failed() {
    let email = unique_email("swept");
    // What a registration whose publish failed leaves: a committed, unpublished outbox row.
    let db = database().await;
    let message = common::outbox::add_welcome_email(&db, &email).await.unwrap();
    eventually("the swept mail in SES", || async { (mails_to(&email).await > 0).then_some(()) }).await;
    let row = db.query_one("SELECT published_at IS NOT NULL FROM outbox WHERE id = $1", &[&message.id]).await.unwrap();
    assert!(row.get::<_, bool>(0), "the sweeper recorded the publish");
    assert_eq!(mails_to(&email).await, 1);
}

#[tokio::test]
#[ignore = "needs the Lambda stack (scripts/test.sh)"]
async fn an_unrouted_path_answers_the_apis_json_404() {
    let (status, headers, body) = send(get(&api("/no-such-thing"))).await;
    assert_eq!(status, 404);
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "route_not_found");
}
