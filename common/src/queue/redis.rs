//! The queue on Redis Streams: XADD to publish; a consumer group to receive (XREADGROUP),
//! XACK (and XDEL) to acknowledge. An entry delivered but not acknowledged within the claim
//! timeout (its worker died or is stuck) is taken over with XAUTOCLAIM; one delivered
//! `max_attempts` times goes to the dead stream `<stream>:dead` instead.

use crate::config::QueueConfig;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError};

use super::{Consumer, Delivery, Publisher, QueueError};
use crate::message::OutboxMessage;

impl From<RedisError> for QueueError {
    fn from(err: RedisError) -> Self {
        Self::Backend(format!("redis: {err}"))
    }
}

/// Entry fields: the message body and the outbox id (for people reading the stream).
const BODY: &str = "body";
const MESSAGE_ID: &str = "message_id";

pub struct RedisQueue {
    conn: ConnectionManager,
    stream: String,
    dead_stream: String,
    group: String,
    consumer: String,
    claim_timeout: Duration,
    max_attempts: u32,
    wait: Duration,
}

impl RedisQueue {
    /// A publisher: connects on first use, fails fast while Redis is unreachable.
    pub fn new(config: &QueueConfig) -> Result<Self, QueueError> {
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        Self::with(config, manager)
    }

    /// A consumer, on a connection of its own (XREADGROUP blocks it for the wait time),
    /// with the consumer group created when missing.
    pub async fn consumer(config: &QueueConfig) -> Result<Self, QueueError> {
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(config.wait + Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let queue = Self::with(config, manager)?;
        queue.ensure_group().await?;
        Ok(queue)
    }

    fn with(config: &QueueConfig, manager: ConnectionManagerConfig) -> Result<Self, QueueError> {
        let client = redis::Client::open(config.url.as_str())?;
        Ok(Self {
            conn: ConnectionManager::new_lazy_with_config(client, manager)?,
            stream: config.stream.clone(),
            dead_stream: format!("{}:dead", config.stream),
            group: config.group.clone(),
            // Unique per process: a restarted worker is a new consumer, and XAUTOCLAIM
            // hands it the entries its dead predecessor left pending.
            consumer: format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
            claim_timeout: config.claim_timeout,
            max_attempts: config.max_attempts.max(1),
            wait: config.wait,
        })
    }

    /// Creates the group reading from the start of the stream, so entries published before
    /// any worker ran are delivered too.
    async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        match conn.xgroup_create_mkstream::<_, _, _, ()>(&self.stream, &self.group, "0").await {
            Ok(()) => Ok(()),
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Entries pending longer than the claim timeout, now ours, with their delivery counts.
    async fn claim_stuck(&self, max: usize) -> Result<Vec<Delivery>, RedisError> {
        let mut conn = self.conn.clone();
        let min_idle = u64::try_from(self.claim_timeout.as_millis()).unwrap_or(u64::MAX);
        let reply: StreamAutoClaimReply = conn
            .xautoclaim_options(
                &self.stream,
                &self.group,
                &self.consumer,
                min_idle,
                "0-0",
                StreamAutoClaimOptions::default().count(max),
            )
            .await?;
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        // XAUTOCLAIM counts the delivery but does not report the count: XPENDING does.
        let first = reply.claimed.first().map(|e| e.id.clone()).unwrap_or_default();
        let last = reply.claimed.last().map(|e| e.id.clone()).unwrap_or_default();
        let pending: StreamPendingCountReply = conn
            .xpending_consumer_count(&self.stream, &self.group, &first, &last, reply.claimed.len(), &self.consumer)
            .await?;
        let mut deliveries = Vec::with_capacity(reply.claimed.len());
        for entry in &reply.claimed {
            let attempts = pending
                .ids
                .iter()
                .find(|p| p.id == entry.id)
                .map_or(self.max_attempts, |p| u32::try_from(p.times_delivered).unwrap_or(u32::MAX));
            let delivery = delivery(entry, attempts);
            if attempts > self.max_attempts {
                tracing::warn!(entry = %entry.id, attempts, "delivered too often; moving to the dead stream");
                self.dead_letter_pipe(&delivery, "too many delivery attempts").query_async::<()>(&mut conn).await?;
            } else {
                deliveries.push(delivery);
            }
        }
        Ok(deliveries)
    }

    /// Stuck entries first, then new ones, `max` at most.
    async fn read(&self, max: usize) -> Result<Vec<Delivery>, RedisError> {
        let mut deliveries = self.claim_stuck(max).await?;
        if deliveries.len() >= max {
            return Ok(deliveries);
        }
        let mut conn = self.conn.clone();
        let block = usize::try_from(self.wait.as_millis()).unwrap_or(usize::MAX).max(1);
        let options =
            StreamReadOptions::default().group(&self.group, &self.consumer).count(max - deliveries.len()).block(block);
        let reply: Option<StreamReadReply> = conn.xread_options(&[&self.stream], &[">"], &options).await?;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            deliveries.extend(key.ids.iter().map(|entry| delivery(entry, 1)));
        }
        Ok(deliveries)
    }

    /// Moves `delivery` to the dead stream, in one transaction.
    fn dead_letter_pipe(&self, delivery: &Delivery, reason: &str) -> redis::Pipeline {
        let attempts = delivery.attempts.to_string();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .xadd(
                &self.dead_stream,
                "*",
                &[
                    (BODY, delivery.body.as_str()),
                    ("entry", delivery.id.as_str()),
                    ("reason", reason),
                    ("attempts", attempts.as_str()),
                ],
            )
            .xack(&self.stream, &self.group, &[&delivery.handle])
            .xdel(&self.stream, &[&delivery.handle]);
        pipe
    }
}

fn delivery(entry: &StreamId, attempts: u32) -> Delivery {
    Delivery {
        id: entry.id.clone(),
        handle: entry.id.clone(),
        // An entry without a text body is handed on as an empty (malformed) message.
        body: entry.get::<String>(BODY).unwrap_or_default(),
        attempts,
    }
}

#[async_trait]
impl Publisher for RedisQueue {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let id = message.id.to_string();
        let _: String =
            conn.xadd(&self.stream, "*", &[(MESSAGE_ID, id.as_str()), (BODY, message.body().as_str())]).await?;
        Ok(())
    }
}

#[async_trait]
impl Consumer for RedisQueue {
    /// A Redis restarted without its data (no persistence, a failover to an empty replica)
    /// has lost the stream and the group: recreate them and read on. What the stream held is
    /// gone; the outbox sweeper republishes it (see `crate::outbox`).
    async fn receive(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        match self.read(max).await {
            Err(err) if err.code() == Some("NOGROUP") => {
                tracing::warn!(stream = %self.stream, group = %self.group, "consumer group missing; recreating it");
                self.ensure_group().await?;
                Ok(self.read(max).await?)
            }
            read => Ok(read?),
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .xack(&self.stream, &self.group, &[&delivery.handle])
            .xdel(&self.stream, &[&delivery.handle])
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        self.dead_letter_pipe(delivery, reason).query_async::<()>(&mut conn).await?;
        Ok(())
    }

    fn dead_letters_at_once(&self) -> bool {
        true
    }
}
