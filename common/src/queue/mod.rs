//! The message queue between register (and the outbox sweeper) and the email worker: one
//! trait for each side, implemented by SQS (in AWS, and against LocalStack) and by Redis
//! Streams with a consumer group (locally). `QUEUE_URL` picks one. It carries
//! `crate::message::OutboxMessage` and knows nothing of the outbox that writes it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::QueueConfig;
use crate::message::OutboxMessage;

#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqs")]
pub mod sqs;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue request failed: {0}")]
    Backend(String),
    #[error("QUEUE_URL {0:?} needs a back-end this binary was built without (features `sqs`, `redis`)")]
    Unsupported(String),
}

/// The sending side: puts one message on the queue. `Ok` means the queue has it.
#[async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), QueueError>;
}

/// A message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The queue's id of the message (SQS MessageId, stream entry id).
    pub id: String,
    /// What acknowledges it (SQS receipt handle, stream entry id).
    pub handle: String,
    pub body: String,
    /// How many times the queue has handed it out, this time included.
    pub attempts: u32,
}

/// The receiving side. A message that is neither acknowledged nor dead-lettered comes back
/// by itself after the queue's timeout (SQS visibility timeout, stream claim timeout).
#[async_trait]
pub trait Consumer: Send + Sync {
    /// Waits up to the configured wait time for at most `max` messages.
    async fn receive(&self, max: usize) -> Result<Vec<Delivery>, QueueError>;
    /// The message was handled: it never comes back.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;
    /// The message can never be handled (e.g. malformed): move it to the dead letters.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError>;
    /// Whether [`dead_letter`](Self::dead_letter) moves the message now (a Redis stream),
    /// rather than leaving it to the queue's redrive after its last delivery (SQS).
    fn dead_letters_at_once(&self) -> bool;
}

impl QueueConfig {
    /// The URL without its credentials, for logs.
    pub fn url_for_logs(&self) -> std::borrow::Cow<'_, str> {
        crate::telemetry::redact_url(&self.url)
    }

    #[cfg(any(feature = "redis", feature = "sqs"))]
    fn is_redis(&self) -> bool {
        self.url.starts_with("redis://") || self.url.starts_with("rediss://")
    }
}

/// The publisher for `config`. Connects lazily: a queue that is down at start-up only
/// makes publishing fail (and the sweeper retry), never the process.
pub async fn publisher(config: &QueueConfig) -> Result<Arc<dyn Publisher>, QueueError> {
    // `Ok` inside the arms: built without back-ends, `Backend` has no variant and the match
    // no arm, and an `Ok(..)` around it would be unreachable code.
    match Backend::of(config)? {
        #[cfg(feature = "redis")]
        Backend::Redis => Ok(Arc::new(redis::RedisQueue::new(config)?)),
        #[cfg(feature = "sqs")]
        Backend::Sqs => Ok(Arc::new(sqs::SqsQueue::from_env(config).await)),
    }
}

/// The consumer for `config` (creates the Redis consumer group when it is missing).
pub async fn consumer(config: &QueueConfig) -> Result<Arc<dyn Consumer>, QueueError> {
    match Backend::of(config)? {
        #[cfg(feature = "redis")]
        Backend::Redis => Ok(Arc::new(redis::RedisQueue::consumer(config).await?)),
        #[cfg(feature = "sqs")]
        Backend::Sqs => Ok(Arc::new(sqs::SqsQueue::from_env(config).await)),
    }
}

enum Backend {
    #[cfg(feature = "redis")]
    Redis,
    #[cfg(feature = "sqs")]
    Sqs,
}

impl Backend {
    fn of(config: &QueueConfig) -> Result<Self, QueueError> {
        #[cfg(feature = "redis")]
        if config.is_redis() {
            return Ok(Self::Redis);
        }
        #[cfg(feature = "sqs")]
        if !config.is_redis() {
            return Ok(Self::Sqs);
        }
        Err(QueueError::Unsupported(config.url_for_logs().into_owned()))
    }
}
