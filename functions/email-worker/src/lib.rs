//! The email worker: welcome, order-confirmation and cancellation mails. One handler for one queue message, fed two ways: on Lambda by
//! SQS batches ([`Worker::handle_sqs`], partial failures reported in `batchItemFailures`),
//! elsewhere by polling a queue ([`Worker::run`]: Redis Streams, or SQS against LocalStack).
//!
//! # Sent once: the delivery record and its crash windows
//!
//! A mail service cannot take part in our transaction, so "exactly once" is built from a
//! delivery row keyed by the outbox message id (`email_deliveries`), in three steps:
//!
//! 1. claim: insert the row (or take over a claim older than the lease) — one statement;
//! 2. send the mail;
//! 3. record: set `sent_at`; then acknowledge the queue message.
//!
//! - A redelivery after step 3 (crash before the ack, visibility timeout, the sweeper
//!   republishing) finds `sent_at` and is acknowledged without sending: no second mail.
//! - Two workers holding the same message at once (a slow worker overtaken by the claim or
//!   visibility timeout): the second finds a fresh claim and backs off; no second mail.
//! - A crash between 1 and 2 leaves a claim without a mail: the next delivery after the
//!   lease takes it over and sends. Nothing lost.
//! - A message the queue loses before step 3 (Redis restarted empty, a message deleted)
//!   leaves its outbox row unsettled: the outbox sweeper republishes it after the
//!   redelivery grace, and it is sent once, late. Step 3 settles the outbox row.
//! - A crash between 2 and 3 (milliseconds) is the one window left: the mail went out but
//!   is not recorded, and the next delivery after the lease sends it again. We chose this
//!   side (at least once) over claim-and-never-retry (at most once), because a lost welcome
//!   mail cannot be noticed by anyone, while this duplicate needs a crash inside one
//!   network call. A send that times out is the same case (outcome unknown): its claim is
//!   kept, so the retry waits out the lease.
//!
//! A mail the mail service refuses for good (see [`MailError::Rejected`]) is recorded as
//! rejected on its delivery row, with the service's reason, and acknowledged: a redelivery
//! finds the record and sends nothing, and the outbox sweeper leaves it alone. Any other
//! failure releases the claim and is retried (not acknowledged; on Lambda, listed in
//! `batchItemFailures`) until the queue dead-letters it. `MailsDeadLettered` counts each
//! message once, when it goes to the dead letters: a failure on its last delivery
//! ([`WorkerOptions::max_deliveries`]), or a malformed message a Redis stream moves at once.
//!
//! Timeouts, in order: a send is cut off at 2/3 of the lease (the SDK's own operation
//! timeout is 20 s); the lease (`DELIVERY_LEASE_MS`, default 30 s) is longer than that, so
//! no second worker takes over a send in flight; the queue's redelivery delay (Redis claim
//! timeout 60 s, SQS visibility timeout ≥ 6× the function timeout) is longer than the
//! lease, so a message redelivered after a crash finds an expired claim and is sent.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use common::config::{ConfigError, Env, max_attempts, parsed};
use common::db::Pool;
use common::domain::Email;
use common::mail::Mail;
use common::mail::{self, MailError, Mailer};
use common::message::{ORDER_CANCELLED, ORDER_CONFIRMATION, OrderMail, OutboxMessage, WELCOME_EMAIL, WelcomeEmail};
use common::metrics::{self, Correlation, Metric};
use common::queue::{Consumer, Delivery};
use common::store::StoreError;
use common::store::outbox::{self as store, Claim};
use futures_util::future::join_all;
use tracing::Instrument;

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How long a claim keeps other workers from sending the same message
    /// (`DELIVERY_LEASE_MS`, default 30 000).
    pub lease: Duration,
    /// Messages taken per receive when polling (`WORKER_BATCH`, default 10).
    pub batch: usize,
    /// Deliveries of a message before its queue dead-letters it (`QUEUE_MAX_ATTEMPTS`,
    /// default 5): the template sets it to the email queue's `maxReceiveCount`.
    pub max_deliveries: u32,
    /// Fault injection for crash tests: sleep after claiming, before sending.
    pub pause_before_send: Duration,
    /// Fault injection for crash tests: sleep after recording, before acknowledging.
    pub pause_before_ack: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            batch: 10,
            max_deliveries: 5,
            pause_before_send: Duration::ZERO,
            pause_before_ack: Duration::ZERO,
        }
    }
}

impl WorkerOptions {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            lease: Duration::from_millis(parsed(env, "DELIVERY_LEASE_MS", 30_000)?),
            batch: parsed(env, "WORKER_BATCH", defaults.batch)?,
            max_deliveries: max_attempts(env)?,
            ..defaults
        })
    }
}

/// Why a message was not handled.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// It can never be handled: dead-letter it.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Another worker is sending it right now: let it come back later.
    #[error("message {0} is being sent by another worker")]
    Held(i64),
    /// Worth retrying (database, mail service): let it come back later.
    #[error("{0}")]
    Transient(String),
}

/// What handling a message did. Each one settles the message: it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Sent,
    /// A redelivery of a mail already sent: nothing was sent.
    AlreadySent,
    /// The mail service refused the mail for good (now or on an earlier delivery): it is
    /// recorded on the delivery and never tried again.
    Rejected,
}

fn transient(err: impl std::fmt::Display) -> Failure {
    Failure::Transient(err.to_string())
}

pub struct Worker {
    db: Pool,
    mailer: Arc<dyn Mailer>,
    options: WorkerOptions,
}

impl Worker {
    pub fn new(db: Pool, mailer: Arc<dyn Mailer>, options: WorkerOptions) -> Self {
        Self { db, mailer, options }
    }

    /// Handles one queue message body: parse, claim, send, record; logged under the ids of
    /// the request that caused the mail, and counted.
    pub async fn handle(&self, body: &str) -> Result<Handled, Failure> {
        let outcome = match parse(body) {
            Ok(parsed) => {
                let span = tracing::info_span!(
                    "mail",
                    message_id = parsed.id,
                    request_id = parsed.request_id.as_deref(),
                    trace_id = parsed.trace_id.as_deref(),
                );
                let created_ms = parsed.created_ms;
                let outcome = self.send_once(parsed).instrument(span).await;
                if let Ok(Handled::Sent) = outcome {
                    metrics::observe_since(Metric::MailLag, created_ms);
                }
                outcome
            }
            Err(failure) => Err(failure),
        };
        match &outcome {
            Ok(Handled::Sent) => metrics::count(Metric::MailsSent),
            Err(Failure::Transient(_)) => metrics::count(Metric::MailsFailed),
            Ok(_) | Err(Failure::Malformed(_) | Failure::Held(_)) => {}
        }
        outcome
    }

    async fn send_once(&self, Parsed { id, to, mail, what, .. }: Parsed) -> Result<Handled, Failure> {
        let claim = {
            let client = self.db.get().await.map_err(transient)?;
            store::claim_delivery(&**client, id, to.as_str(), self.options.lease).await.map_err(transient)?
        };
        match claim {
            Claim::Acquired => {}
            Claim::AlreadySent => {
                tracing::info!(message_id = id, "mail already sent; redelivery skipped");
                return Ok(Handled::AlreadySent);
            }
            Claim::AlreadyRejected => {
                tracing::info!(message_id = id, "mail rejected earlier; redelivery skipped");
                return Ok(Handled::Rejected);
            }
            Claim::Held => return Err(Failure::Held(id)),
            Claim::UnknownMessage => return Err(Failure::Malformed(format!("no outbox message has id {id}"))),
        }
        pause(self.options.pause_before_send, "before send").await;

        // A send never outlives the claim: past the lease another worker may take it over.
        let send_limit = self.options.lease.mul_f64(2.0 / 3.0);
        match tokio::time::timeout(send_limit, self.mailer.send(&mail)).await {
            Ok(Ok(())) => {}
            Ok(Err(MailError::Rejected { code, reason })) => {
                // Settled: acknowledged rather than retried into the dead-letter queue. If it
                // cannot be recorded, the retry is refused the same way and records it then.
                self.reject(id, &format!("{code}: {reason}")).await.map_err(transient)?;
                tracing::warn!(message_id = id, code, "mail rejected for good; recorded, not retried");
                return Ok(Handled::Rejected);
            }
            Ok(Err(err)) => {
                // Not sent: let the next delivery try at once rather than after the lease.
                if let Err(release) = self.release(id).await {
                    tracing::warn!(message_id = id, error = %release, "cannot release the delivery claim");
                }
                return Err(transient(err));
            }
            // Sent or not, nobody knows: keep the claim, so a retry waits out the lease.
            Err(_) => return Err(Failure::Transient(format!("sending took longer than {send_limit:?}"))),
        }
        if let Err(err) = self.record(id).await {
            // Acknowledging anyway: a redelivery would send it again at once. The outbox row
            // stays unsettled, so the sweeper republishes it after the redelivery grace and it
            // is sent a second time then: the at-least-once side of the crash window above.
            tracing::error!(message_id = id, error = %err, "mail sent but not recorded");
        }
        tracing::info!(message_id = id, to = %to.masked(), "{what} mail sent");
        Ok(Handled::Sent)
    }

    async fn record(&self, id: i64) -> Result<(), StoreError> {
        store::mark_sent(&**self.db.get().await?, id).await
    }

    async fn reject(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        store::mark_rejected(&**self.db.get().await?, id, reason).await
    }

    async fn release(&self, id: i64) -> Result<(), StoreError> {
        store::release_delivery(&**self.db.get().await?, id).await
    }

    /// The Lambda handler: every record of the batch handled concurrently; the ids of the
    /// ones that failed (and only those) returned, so SQS retries just them. A record that
    /// fails on its last receive (a malformed one fails on every receive) is moved to the DLQ
    /// by the queue's redrive policy: counted dead-lettered then, once.
    pub async fn handle_sqs(&self, event: SqsEvent) -> SqsBatchResponse {
        let outcomes = join_all(event.records.iter().map(|record| async move {
            let id = record.message_id.clone().unwrap_or_default();
            let outcome = self.handle(record.body.as_deref().unwrap_or_default()).await;
            (id, receive_count(&record.attributes), outcome)
        }))
        .await;
        let mut response = SqsBatchResponse::default();
        for (id, receives, outcome) in outcomes {
            if let Err(failure) = outcome {
                self.failed(&id, &failure, self.last_delivery(receives));
                response.add_failure(id);
            }
        }
        response
    }

    /// Whether a delivery that failed was the message's last: its queue dead-letters it now.
    fn last_delivery(&self, deliveries: u32) -> bool {
        deliveries >= self.options.max_deliveries
    }

    /// Logs a failed delivery, and counts the message when it goes to the dead letters.
    fn failed(&self, queue_message: &str, failure: &Failure, dead_lettered: bool) {
        if dead_lettered {
            metrics::count(Metric::MailsDeadLettered);
            tracing::error!(queue_message, error = %failure, "message failed for the last time; dead-lettering it");
            return;
        }
        match failure {
            Failure::Malformed(_) => {
                tracing::error!(queue_message, error = %failure, "malformed message; failing it until the queue dead-letters it")
            }
            Failure::Held(_) => {
                tracing::info!(queue_message, error = %failure, "message held elsewhere; retrying later")
            }
            Failure::Transient(_) => tracing::warn!(queue_message, error = %failure, "message failed; retrying later"),
        }
    }

    /// Polls `consumer` until `shutdown` resolves: each batch handled concurrently, then
    /// each message acknowledged, dead-lettered (malformed) or left to come back later.
    pub async fn run(&self, consumer: &dyn Consumer, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let received = tokio::select! {
                () = &mut shutdown => return,
                received = consumer.receive(self.options.batch) => received,
            };
            match received {
                Ok(deliveries) if deliveries.is_empty() => {}
                // One metric line per batch, as one Lambda invocation of the worker writes.
                Ok(deliveries) => {
                    metrics::scope(Correlation::generated(), self.handle_deliveries(consumer, &deliveries)).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot receive from the queue; retrying in 1 s");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn handle_deliveries(&self, consumer: &dyn Consumer, deliveries: &[Delivery]) {
        if deliveries.is_empty() {
            return;
        }
        let outcomes = join_all(deliveries.iter().map(|d| self.handle(&d.body))).await;
        pause(self.options.pause_before_ack, "before ack").await;
        for (delivery, outcome) in deliveries.iter().zip(outcomes) {
            let settled = match outcome {
                Ok(_) => consumer.ack(delivery).await,
                Err(failure) => {
                    let malformed = matches!(failure, Failure::Malformed(_));
                    let dead_lettered =
                        (malformed && consumer.dead_letters_at_once()) || self.last_delivery(delivery.attempts);
                    self.failed(&delivery.id, &failure, dead_lettered);
                    match failure {
                        Failure::Malformed(reason) => consumer.dead_letter(delivery, &reason).await,
                        Failure::Held(_) | Failure::Transient(_) => Ok(()),
                    }
                }
            };
            if let Err(err) = settled {
                tracing::warn!(queue_message = %delivery.id, error = %err, "cannot settle the message; it will come back");
            }
        }
    }
}

/// A queue message, checked: the outbox id, the recipient, the mail rendered by its kind,
/// what mail it is (for the log), and the request that caused it.
struct Parsed {
    id: i64,
    to: Email,
    mail: Mail,
    what: &'static str,
    created_ms: Option<i64>,
    request_id: Option<String>,
    trace_id: Option<String>,
}

fn parse(body: &str) -> Result<Parsed, Failure> {
    let message = OutboxMessage::parse(body).map_err(|err| Failure::Malformed(err.to_string()))?;
    let (to, mail, what) = match message.kind.as_str() {
        WELCOME_EMAIL => {
            let welcome: WelcomeEmail = payload(message.payload)?;
            let to = recipient(welcome.to)?;
            let mail = mail::welcome(to.as_str());
            (to, mail, "welcome")
        }
        kind @ (ORDER_CONFIRMATION | ORDER_CANCELLED) => {
            let order: OrderMail = payload(message.payload)?;
            let to = recipient(order.to.clone())?;
            let (render, what): (fn(&OrderMail) -> Mail, _) = if kind == ORDER_CONFIRMATION {
                (mail::order_confirmation, "order confirmation")
            } else {
                (mail::order_cancelled, "cancellation")
            };
            // Sent to the parsed address, whatever the payload spelled.
            (to.clone(), Mail { to: to.as_str().to_owned(), ..render(&order) }, what)
        }
        kind => return Err(Failure::Malformed(format!("unknown message kind {kind:?}"))),
    };
    Ok(Parsed {
        id: message.id,
        to,
        mail,
        what,
        created_ms: message.created_ms,
        request_id: message.request_id,
        trace_id: message.trace_id,
    })
}

fn payload<T: serde::de::DeserializeOwned>(payload: serde_json::Value) -> Result<T, Failure> {
    serde_json::from_value(payload).map_err(|err| Failure::Malformed(format!("payload: {err}")))
}

fn recipient(raw: String) -> Result<Email, Failure> {
    Email::parse(raw).map_err(|err| Failure::Malformed(format!("to: {}", err.0)))
}

/// How many times SQS has handed the record out, this time included (1 if Lambda did not
/// say, so an unknown count never reads as the last).
fn receive_count(attributes: &std::collections::HashMap<String, String>) -> u32 {
    attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1)
}

async fn pause(duration: Duration, at: &str) {
    if !duration.is_zero() {
        tracing::warn!(?duration, at, "fault injection: pausing");
        tokio::time::sleep(duration).await;
    }
}
