//! The SQS event source against LocalStack's SQS, with a fake function in place of the
//! email worker: batches as the template sets them, successes deleted, only the records
//! named in `batchItemFailures` redelivered (then dead-lettered by the redrive policy),
//! and the whole batch redelivered when the invocation fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use devgw::invoke::Invoker;
use devgw::sqs::{self, BatchOutcome, QueuePoller};
use devgw::template::{QueueSettings, QueueSource};
use serde_json::{Value, json};
use support::{Calls, fake_functions};
use testkit::services::localstack_url;

const MAX_RECEIVES: u32 = 2;

/// A fresh queue and its dead-letter queue: visibility 1 s, dead-lettered after
/// MAX_RECEIVES receives (set by devgw from template-like settings).
async fn queues(name: &str) -> (Client, String, String) {
    let client = Client::new(&common::aws::localstack_config(&localstack_url()).await);
    let unique = format!("devgw-{name}-{}", uuid::Uuid::new_v4().simple());
    let dlq = client.create_queue().queue_name(format!("{unique}-dlq")).send().await.unwrap();
    let queue = client.create_queue().queue_name(&unique).send().await.unwrap();
    let (queue, dlq) = (queue.queue_url.unwrap(), dlq.queue_url.unwrap());
    let settings = QueueSettings { visibility_timeout: Some(1), redrive: Some(("Dlq".into(), MAX_RECEIVES)) };
    sqs::apply_settings(&client, &queue, &settings, Some(&dlq)).await.unwrap();
    (client, queue, dlq)
}

async fn send(client: &Client, queue: &str, bodies: &[&str]) {
    let entries = bodies.iter().enumerate().map(|(i, body)| {
        SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(*body).build().unwrap()
    });
    client.send_message_batch().queue_url(queue).set_entries(Some(entries.collect())).send().await.unwrap();
}

async fn poller(client: &Client, queue: &str, invoke: &str) -> QueuePoller {
    let source = QueueSource {
        function: "email-worker".into(),
        queue: "EmailQueue".into(),
        batch_size: 10,
        batching_window: Duration::from_secs(1),
        report_failures: true,
    };
    let poller = QueuePoller::new(client.clone(), source, queue.to_owned(), "us-east-1".into(), Invoker::new(invoke));
    poller.await.unwrap().with_long_poll(2)
}

/// `(body, ApproximateReceiveCount)` of each record of each invocation.
fn batches(calls: &Calls) -> Vec<Vec<(String, String)>> {
    let records = |event: &Value| -> Vec<(String, String)> {
        event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["eventSource"], "aws:sqs");
                assert!(r["eventSourceARN"].as_str().unwrap().starts_with("arn:aws:sqs:"));
                assert!(r["receiptHandle"].is_string() && r["messageId"].is_string());
                (
                    r["body"].as_str().unwrap().to_owned(),
                    r["attributes"]["ApproximateReceiveCount"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    calls.lock().unwrap().iter().map(|(_, event)| records(event)).collect()
}

async fn dead_letters(client: &Client, dlq: &str) -> Vec<String> {
    let output = client.receive_message().queue_url(dlq).max_number_of_messages(10).send().await.unwrap();
    output.messages.unwrap_or_default().into_iter().filter_map(|m| m.body).collect()
}

async fn queue_is_empty(client: &Client, queue: &str) -> bool {
    let output = client
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    output.attributes.unwrap_or_default().values().all(|count| count == "0")
}

#[tokio::test]
async fn only_the_records_named_in_batch_item_failures_come_back_until_dead_lettered() {
    let (client, queue, dlq) = queues("partial").await;
    let (invoke, calls) = fake_functions(|_, event| {
        let failures: Vec<Value> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["body"] == "poison")
            .map(|r| json!({"itemIdentifier": r["messageId"]}))
            .collect();
        Ok(json!({ "batchItemFailures": failures }))
    })
    .await;
    send(&client, &queue, &["fine", "poison"]).await;
    let poller = poller(&client, &queue, &invoke).await;

    assert_eq!(poller.poll_once().await.unwrap(), BatchOutcome { received: 2, deleted: 1 });
    let mut dead = Vec::new();
    for _ in 0..30 {
        poller.poll_once().await.unwrap();
        dead = dead_letters(&client, &dlq).await;
        if !dead.is_empty() {
            break;
        }
    }
    assert_eq!(dead, vec!["poison".to_owned()]);
    let batches = batches(&calls);
    let mut first = batches[0].clone();
    first.sort();
    assert_eq!(first, vec![("fine".into(), "1".into()), ("poison".into(), "1".into())]);
    // Only the failed record came back, once per receive until the redrive policy took it.
    let retries: Vec<_> = batches[1..].iter().filter(|b| !b.is_empty()).cloned().collect();
    assert_eq!(retries, vec![vec![("poison".to_owned(), MAX_RECEIVES.to_string())]]);
    assert!(queue_is_empty(&client, &queue).await);
    delete(&client, &[&queue, &dlq]).await;
}

#[tokio::test]
async fn a_failed_invocation_leaves_the_whole_batch() {
    let (client, queue, dlq) = queues("whole").await;
    let failed_once = std::sync::atomic::AtomicBool::new(false);
    let (invoke, calls) = fake_functions(move |_, _| {
        if failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Ok(json!({ "batchItemFailures": [] }))
        } else {
            Err(r#"{"errorType":"Runtime.ExitError","errorMessage":"crashed"}"#.to_owned())
        }
    })
    .await;
    send(&client, &queue, &["a", "b"]).await;
    let poller = poller(&client, &queue, &invoke).await;

    assert_eq!(poller.poll_once().await.unwrap(), BatchOutcome { received: 2, deleted: 0 });
    let mut deleted = 0;
    for _ in 0..30 {
        deleted += poller.poll_once().await.unwrap().deleted;
        if deleted == 2 {
            break;
        }
    }
    assert_eq!(deleted, 2);
    let mut redelivered: Vec<_> = batches(&calls)[1..].concat();
    redelivered.sort();
    assert_eq!(redelivered, vec![("a".into(), "2".into()), ("b".into(), "2".into())]);
    assert!(queue_is_empty(&client, &queue).await);
    delete(&client, &[&queue, &dlq]).await;
}

async fn delete(client: &Client, queues: &[&str]) {
    for queue in queues {
        client.delete_queue().queue_url(*queue).send().await.unwrap();
    }
}
