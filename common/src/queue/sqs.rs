//! The queue on SQS (in AWS; against LocalStack when `AWS_ENDPOINT_URL` points at it).
//! Dead letters are SQS's own: the queue's redrive policy moves a message received
//! `maxReceiveCount` times to its DLQ.

use crate::config::QueueConfig;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;

use super::{Consumer, Delivery, Publisher, QueueError};
use crate::message::OutboxMessage;

pub struct SqsQueue {
    client: Client,
    queue_url: String,
    wait_seconds: i32,
}

fn backend<E: std::error::Error>(err: E) -> QueueError {
    QueueError::Backend(format!("sqs: {}", aws_sdk_sqs::error::DisplayErrorContext(err)))
}

impl SqsQueue {
    /// A client from the standard AWS environment (see [`crate::aws::sdk_config`]).
    pub async fn from_env(config: &QueueConfig) -> Self {
        Self::with_client(Client::new(&crate::aws::sdk_config().await), config)
    }

    pub fn with_client(client: Client, config: &QueueConfig) -> Self {
        let wait_seconds = config.wait.as_secs_f64().ceil().clamp(0.0, 20.0) as i32;
        Self { client, queue_url: config.url.clone(), wait_seconds }
    }
}

#[async_trait]
impl Publisher for SqsQueue {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.body())
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Consumer for SqsQueue {
    async fn receive(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(backend)?;
        Ok(output
            .messages()
            .iter()
            .filter_map(|message| {
                Some(Delivery {
                    id: message.message_id()?.to_owned(),
                    handle: message.receipt_handle()?.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                    attempts: message
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                })
            })
            .collect())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(&delivery.handle)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// SQS cannot move one message to the DLQ on request: make it visible again at once,
    /// so it is received again right away and the redrive policy moves it to the DLQ
    /// after `maxReceiveCount` receives.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        tracing::warn!(message = %delivery.id, reason, "returning the message for redrive to the DLQ");
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&delivery.handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn dead_letters_at_once(&self) -> bool {
        false
    }
}
