//! The SQS event source mapping: long-polls the queue, gathers a batch (the template's
//! `BatchSize`, for at most `MaximumBatchingWindowInSeconds`), invokes the function with
//! an SQS event and deletes what succeeded. With `ReportBatchItemFailures` the records the
//! function names in `batchItemFailures` stay in the queue; a failed invocation (or an
//! answer naming an unknown record) leaves the whole batch. Left messages come back after
//! the queue's visibility timeout, and its redrive policy moves them to the dead-letter
//! queue after `maxReceiveCount` receives: SQS (LocalStack) does both, as in AWS.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::invoke::Invoker;
use crate::template::{QueueSettings, QueueSource};

/// SQS's longest long poll, as Lambda's pollers use.
const LONG_POLL_SECONDS: i32 = 20;
/// Pause after a failed receive, so a stopped LocalStack is not hammered.
const RECEIVE_RETRY: Duration = Duration::from_secs(1);

fn sqs_error<E: std::error::Error>(err: E) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(err).to_string()
}

pub struct QueuePoller {
    client: Client,
    source: QueueSource,
    queue_url: String,
    queue_arn: String,
    region: String,
    invoker: Invoker,
    long_poll_seconds: i32,
}

/// What one batch came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub received: usize,
    pub deleted: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchResponse {
    #[serde(default)]
    batch_item_failures: Vec<ItemFailure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemFailure {
    item_identifier: Option<String>,
}

/// `client` with room for a long poll: the attempt timeout of `common::aws` (8 s) would
/// cut a 20 s receive short, and a receive cut short still counts as a receive.
pub fn for_long_polls(client: &Client) -> Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(LONG_POLL_SECONDS as u64 + 10))
        .operation_timeout(Duration::from_secs(LONG_POLL_SECONDS as u64 * 3))
        .build();
    Client::from_conf(client.config().to_builder().timeout_config(timeouts).build())
}

/// The ARN of the queue at `queue_url`.
pub async fn queue_arn(client: &Client, queue_url: &str) -> Result<String, String> {
    let output =
        client.get_queue_attributes().queue_url(queue_url).attribute_names(QueueAttributeName::QueueArn).send().await;
    output
        .map_err(sqs_error)?
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| format!("{queue_url} has no QueueArn"))
}

/// Gives the queue at `queue_url` the template's visibility timeout and redrive policy
/// (`dead_letter_url` the local dead-letter queue), so LocalStack enforces them as SQS would.
pub async fn apply_settings(
    client: &Client,
    queue_url: &str,
    settings: &QueueSettings,
    dead_letter_url: Option<&str>,
) -> Result<(), String> {
    let mut request = client.set_queue_attributes().queue_url(queue_url);
    if let Some(seconds) = settings.visibility_timeout {
        request = request.attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    if let (Some((_, max_receives)), Some(dead_letter_url)) = (&settings.redrive, dead_letter_url) {
        let policy = json!({
            "deadLetterTargetArn": queue_arn(client, dead_letter_url).await?,
            "maxReceiveCount": max_receives.to_string(),
        });
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    request.send().await.map_err(sqs_error)?;
    Ok(())
}

impl QueuePoller {
    pub async fn new(
        client: Client,
        source: QueueSource,
        queue_url: String,
        region: String,
        invoker: Invoker,
    ) -> Result<Self, String> {
        let queue_arn = queue_arn(&client, &queue_url).await?;
        let client = for_long_polls(&client);
        Ok(Self { client, source, queue_url, queue_arn, region, invoker, long_poll_seconds: LONG_POLL_SECONDS })
    }

    /// A shorter wait for the first message of a batch (tests).
    pub fn with_long_poll(mut self, seconds: i32) -> Self {
        self.long_poll_seconds = seconds;
        self
    }

    pub async fn run(self) {
        loop {
            if let Err(err) = self.poll_once().await {
                tracing::warn!(queue = %self.queue_url, error = %err, "SQS event source");
                tokio::time::sleep(RECEIVE_RETRY).await;
            }
        }
    }

    /// Receives one batch (waiting for the first message), invokes the function with it
    /// and deletes what succeeded.
    pub async fn poll_once(&self) -> Result<BatchOutcome, String> {
        let batch = self.receive_batch().await?;
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let failed = match self.invoker.invoke(&self.source.function, &self.event(&batch)).await {
            Ok(answer) => self.failed_records(&batch, answer),
            Err(err) => {
                tracing::warn!(error = %err, records = batch.len(), "invocation failed: the whole batch will be retried");
                batch.iter().filter_map(Message::message_id).map(str::to_owned).collect()
            }
        };
        let done: Vec<&Message> =
            batch.iter().filter(|m| !failed.contains(m.message_id().unwrap_or_default())).collect();
        self.delete(&done).await?;
        tracing::info!(function = %self.source.function, records = batch.len(), failed = failed.len(), "SQS batch");
        Ok(BatchOutcome { received: batch.len(), deleted: done.len() })
    }

    async fn receive_batch(&self) -> Result<Vec<Message>, String> {
        let mut batch = self.receive(self.source.batch_size, self.long_poll_seconds).await?;
        let deadline = Instant::now() + self.source.batching_window;
        while !batch.is_empty() && batch.len() < self.source.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = i32::try_from(left.as_secs().max(1)).unwrap_or(LONG_POLL_SECONDS);
            batch.extend(self.receive(self.source.batch_size - batch.len(), wait).await?);
        }
        Ok(batch)
    }

    async fn receive(&self, max: usize, wait_seconds: i32) -> Result<Vec<Message>, String> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(output.messages.unwrap_or_default())
    }

    /// The ids to keep: those in `batchItemFailures`, or all of them when the answer is
    /// not a valid partial-batch response (as Lambda treats it).
    fn failed_records(&self, batch: &[Message], answer: Value) -> HashSet<String> {
        let all = || batch.iter().filter_map(Message::message_id).map(str::to_owned).collect();
        if !self.source.report_failures {
            return HashSet::new();
        }
        let Ok(response) = serde_json::from_value::<BatchResponse>(answer) else {
            return all();
        };
        let mut failed = HashSet::new();
        for failure in response.batch_item_failures {
            match failure.item_identifier {
                Some(id) if batch.iter().any(|m| m.message_id() == Some(id.as_str())) => {
                    failed.insert(id);
                }
                _ => return all(),
            }
        }
        failed
    }

    async fn delete(&self, messages: &[&Message]) -> Result<(), String> {
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .map_err(|err| err.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sqs_error)?;
        }
        Ok(())
    }

    /// The event Lambda's SQS integration sends.
    fn event(&self, batch: &[Message]) -> Value {
        let records: Vec<Value> = batch
            .iter()
            .map(|m| {
                let attributes: Map<String, Value> = m
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.clone())))
                    .collect();
                let message_attributes: Map<String, Value> = m
                    .message_attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| {
                        let attribute = json!({
                            "stringValue": value.string_value(),
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": value.data_type(),
                        });
                        (name.clone(), attribute)
                    })
                    .collect();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body().unwrap_or_default(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                })
            })
            .collect();
        json!({ "Records": records })
    }
}
