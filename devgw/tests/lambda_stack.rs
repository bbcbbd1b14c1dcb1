//! End to end through one base URL, against the stack `make test` starts (devgw in front
//! of the real function binaries under `cargo lambda watch`, LocalStack, Postgres): the
//! welcome mail goes register -> SQS -> email-worker binary -> SES once, a poison message
//! ends in the dead-letter queue, a batch's failed record alone comes back, the scheduled sweeper republishes an outbox row nobody
//! published, and an unrouted path gets the API's JSON 404.
//!
//! Ignored in a plain `cargo nextest run`: scripts/test.sh starts the stack and runs them
//! with `--run-ignored only`, passing it in TEST_LAMBDA_* variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::Value;
use testkit::http::{get, post, send};
use testkit::services::localstack_url;
use testkit::unique_email;
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
    let (_, _, body) = send(get(&format!("{}/_aws/ses", localstack_url()))).await;
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

#[tokio::test]
#[ignore = "needs the Lambda stack (scripts/test.sh)"]
async fn register_sends_one_welcome_mail_through_sqs_the_worker_binary_and_ses() {
    let email = unique_email("welcome");
    let body = serde_json::json!({"email": email, "password": "correct horse"}).to_string();
    let (status, _, answer) = send(post(&api("/auth/register"), "application/json", body)).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));

    eventually("the welcome mail in SES", || async { (mails_to(&email).await > 0).then_some(()) }).await;
    // The worker records the delivery just after SES took the mail.
    let db = database().await;
    let deliveries = eventually("the delivery recorded", || async {
        let rows = db
            .query("SELECT attempts, sent_at IS NOT NULL FROM email_deliveries WHERE recipient = $1", &[&email])
            .await
            .unwrap();
        let deliveries: Vec<(i32, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        (!deliveries.is_empty() && deliveries.iter().all(|(_, sent)| *sent)).then_some(deliveries)
    })
    .await;
    assert_eq!(deliveries, vec![(1, true)], "one claim, one send");
    assert_eq!(mails_to(&email).await, 1);
}

async fn sqs() -> Client {
    Client::new(&common::aws::localstack_config(&localstack_url()).await)
}

/// The bodies in the dead-letter queue with their receive counts (looked at, not taken:
/// visibility 0 leaves them for the other tests).
async fn dead_letters(client: &Client) -> Vec<(String, u32)> {
    let output = client
        .receive_message()
        .queue_url(var("TEST_LAMBDA_DLQ_URL"))
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let count = |m: &aws_sdk_sqs::types::Message| {
        let attributes = m.attributes()?;
        attributes.get(&MessageSystemAttributeName::ApproximateReceiveCount)?.parse().ok()
    };
    output
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| (m.body().unwrap_or_default().to_owned(), count(m).unwrap_or(0)))
        .collect()
}

async fn dead_lettered(client: &Client, body: &str) -> u32 {
    eventually("the message in the DLQ", || async {
        dead_letters(client).await.into_iter().find(|(b, _)| b == body).map(|(_, count)| count)
    })
    .await
}

#[tokio::test]
#[ignore = "needs the Lambda stack (scripts/test.sh)"]
async fn a_poison_message_ends_in_the_dead_letter_queue_after_the_redrive_count() {
    let client = sqs().await;
    let body = format!("not an outbox message {}", uuid::Uuid::new_v4());
    client.send_message().queue_url(var("TEST_LAMBDA_QUEUE_URL")).message_body(&body).send().await.unwrap();
    let max_receives: u32 = var("TEST_LAMBDA_MAX_RECEIVES").parse().unwrap();
    // Received max_receives times from the queue (each failed by the worker), then here.
    let receives = dead_lettered(&client, &body).await;
    assert!(receives > max_receives, "received {receives} times");
}

#[tokio::test]
#[ignore = "needs the Lambda stack (scripts/test.sh)"]
async fn a_batch_with_one_failing_record_redelivers_only_that_record() {
    // A message the worker acknowledges (a redelivery of a sent mail) and a poison one,
    // sent in one batch: the worker names only the poison one in batchItemFailures.
    let email = unique_email("batch");
    let body = serde_json::json!({"email": email, "password": "correct horse"}).to_string();
    let (status, _, _) = send(post(&api("/auth/register"), "application/json", body)).await;
    assert_eq!(status, 201);
    eventually("the welcome mail in SES", || async { (mails_to(&email).await > 0).then_some(()) }).await;
    let db = database().await;
    let row =
        db.query_one("SELECT id, kind, payload::text FROM outbox WHERE payload->>'to' = $1", &[&email]).await.unwrap();
    let payload: Value = serde_json::from_str(row.get(2)).unwrap();
    let sent = common::message::OutboxMessage {
        id: row.get(0),
        kind: row.get(1),
        payload,
        created_ms: None,
        request_id: None,
        trace_id: None,
    }
    .body();
    let poison = format!("poison {}", uuid::Uuid::new_v4());
    let entries = [("sent", sent.as_str()), ("poison", poison.as_str())].map(|(id, body)| {
        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder().id(id).message_body(body).build().unwrap()
    });
    let client = sqs().await;
    let queue = var("TEST_LAMBDA_QUEUE_URL");
    client.send_message_batch().queue_url(&queue).set_entries(Some(entries.to_vec())).send().await.unwrap();

    dead_lettered(&client, &poison).await;
    // Had the batch been failed whole, the acknowledged record would have come back with
    // the poison one every time and been dead-lettered with it.
    assert!(
        dead_letters(&client).await.iter().all(|(body, _)| body != &sent),
        "the acknowledged record was redelivered"
    );
    assert_eq!(mails_to(&email).await, 1);
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

#[tokio::test]
#[ignore = "needs the Lambda stack (scripts/test.sh)"]
async fn a_documented_path_with_an_unlisted_method_answers_405_with_allow() {
    // API Gateway sends it to `$default` (openapi), which answers as the local router does.
    let request = http::Request::builder().method("DELETE").uri(api("/products")).body(Default::default()).unwrap();
    let (status, headers, body) = send(request).await;
    assert_eq!(status, 405);
    assert_eq!(headers.get("allow").and_then(|v| v.to_str().ok()), Some("GET,POST"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "method_not_allowed");
}
