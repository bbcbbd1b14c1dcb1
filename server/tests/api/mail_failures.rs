//! Permanent and transient mail failures: a mail the mail service refuses for good is
//! recorded on its delivery and acknowledged, never tried again (not by a redelivery, not by
//! the sweeper); any other failure is retried as before.

use common::config::SweepConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use common::mail::{Mail, MailError, Mailer};
use common::message::OutboxMessage;
use common::outbox;
use common::queue::redis::RedisQueue;
use common::queue::{Publisher, QueueError};
use email_worker::{Worker, WorkerOptions};
use serde_json::json;

use testkit::eventually;
use testkit::services::{localstack_url, redis_url};

use crate::email::redis_streams::{app_publishing_to, pending, redis, redis_queue, stream_len};
use crate::email::sqs_ses::ses_mails_to;
use crate::email::{MailEvent, MailLog, fast_sweep, fast_worker, register_ok, run_worker, sqs_fixture};
use testkit::app::TestApp;
use testkit::unique_email;

/// What [`ScriptedMailer`] answers for one recipient.
#[derive(Clone, Copy)]
enum Outcome {
    Rejected,
    Transient,
}

/// A mailer that answers each recipient as scripted (others are sent to the mail log) and
/// counts every attempt per recipient.
struct ScriptedMailer {
    script: HashMap<String, Outcome>,
    attempts: Mutex<HashMap<String, usize>>,
    log: Arc<dyn Mailer>,
}

impl ScriptedMailer {
    fn new(script: &[(&str, Outcome)], mails: &MailLog) -> Arc<Self> {
        Arc::new(Self {
            script: script.iter().map(|(to, outcome)| ((*to).to_owned(), *outcome)).collect(),
            attempts: Mutex::default(),
            log: mails.mailer(),
        })
    }

    fn attempts(&self, to: &str) -> usize {
        self.attempts.lock().unwrap().get(to).copied().unwrap_or_default()
    }
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        *self.attempts.lock().unwrap().entry(mail.to.clone()).or_default() += 1;
        match self.script.get(&mail.to) {
            Some(Outcome::Rejected) => Err(MailError::Rejected {
                code: "MessageRejected".into(),
                reason: format!("Address blacklisted: {}", mail.to),
            }),
            Some(Outcome::Transient) => Err(MailError::Send("Throttling: Maximum sending rate exceeded.".into())),
            None => self.log.send(mail).await,
        }
    }
}

/// A publisher that only records which outbox messages it was given.
#[derive(Default)]
pub(crate) struct RecordingPublisher(Mutex<Vec<i64>>);

#[async_trait]
impl Publisher for RecordingPublisher {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), QueueError> {
        self.0.lock().unwrap().push(message.id);
        Ok(())
    }
}

/// The outbox id of the last mail to `to` (a cancellation comes after its confirmation).
async fn outbox_id(app: &TestApp, to: &str) -> i64 {
    app.query_one("SELECT max(id) FROM outbox WHERE payload->>'to' = $1", &[&to]).await
}

/// The queue message of the last mail to `to`, as the outbox publishes it.
async fn last_message(app: &TestApp, to: &str) -> String {
    let id = outbox_id(app, to).await;
    let (kind, payload): (String, String) = {
        let client = app.pool().get().await.unwrap();
        let row = client.query_one("SELECT kind, payload::TEXT FROM outbox WHERE id = $1", &[&id]).await.unwrap();
        (row.get(0), row.get(1))
    };
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    json!({"id": id, "kind": kind, "payload": payload}).to_string()
}

/// The delivery row of `to`'s mail: (status, failure), if there is one.
async fn delivery(app: &TestApp, to: &str) -> Option<(String, Option<String>)> {
    let client = app.pool().get().await.unwrap();
    client
        .query_opt("SELECT status, failure FROM email_deliveries WHERE recipient = $1", &[&to])
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1)))
}

async fn is_settled(app: &TestApp, to: &str) -> bool {
    let id = outbox_id(app, to).await;
    app.query_one("SELECT settled_at IS NOT NULL FROM outbox WHERE id = $1", &[&id]).await
}

fn sweep_now() -> SweepConfig {
    SweepConfig { grace: Duration::ZERO, redelivery_grace: Duration::ZERO, ..fast_sweep() }
}

#[tokio::test]
async fn sqs_batch_acknowledges_a_rejected_mail_and_retries_a_transient_failure() {
    rejected_acknowledged_and_transient_retried(MailEvent::Registration).await;
}

#[tokio::test]
async fn a_rejected_or_failing_order_confirmation_is_sent_at_most_once() {
    rejected_acknowledged_and_transient_retried(MailEvent::Order).await;
}

#[tokio::test]
async fn a_rejected_or_failing_cancellation_is_sent_at_most_once() {
    rejected_acknowledged_and_transient_retried(MailEvent::Cancel).await;
}

/// One SQS batch of `event`'s mail to three users: ann's refused for good, bob's failing for
/// now, carol's sent; then the batch again, then the sweeper.
async fn rejected_acknowledged_and_transient_retried(mail_event: MailEvent) {
    let app = TestApp::spawn().await;
    let mut recipients = Vec::new();
    for _ in 0..3 {
        recipients.push(mail_event.happen(&app).await.to);
    }
    let [ann, bob, carol] = [&recipients[0], &recipients[1], &recipients[2]].map(String::clone);
    let mut event = sqs_fixture();
    for (i, to) in [&ann, &bob, &carol].into_iter().enumerate() {
        event["Records"][i]["body"] = json!(last_message(&app, to).await);
    }
    let event: SqsEvent = serde_json::from_value(event).unwrap();
    let message_ids: Vec<String> = event.records.iter().map(|r| r.message_id.clone().unwrap()).collect();
    let mails = MailLog::new();
    let mailer = ScriptedMailer::new(&[(&ann, Outcome::Rejected), (&bob, Outcome::Transient)], &mails);
    let worker = Worker::new(app.pool().clone(), mailer.clone(), WorkerOptions::default());

    // Only the transient failure is handed back to SQS for a retry.
    let response = worker.handle_sqs(event.clone()).await;
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, vec![message_ids[1].clone()]);
    let (status, failure) = delivery(&app, &ann).await.expect("the rejection is recorded");
    assert_eq!(status, "rejected");
    assert!(failure.as_deref().is_some_and(|f| f.starts_with("MessageRejected: ")), "{failure:?}");
    assert_eq!(delivery(&app, &bob).await, None, "a transient failure releases its claim");
    assert_eq!(delivery(&app, &carol).await.map(|d| d.0).as_deref(), Some("sent"));
    assert_eq!(
        (is_settled(&app, &ann).await, is_settled(&app, &bob).await, is_settled(&app, &carol).await),
        (true, false, true)
    );

    // The whole batch again (a redelivery): the rejected mail is not tried a second time.
    let again = worker.handle_sqs(event).await;
    let failed: Vec<_> = again.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, vec![message_ids[1].clone()]);
    assert_eq!((mailer.attempts(&ann), mailer.attempts(&bob), mailer.attempts(&carol)), (1, 2, 1));
    assert_eq!(mails.mails().len(), 1);

    // The sweeper republishes the unsettled transient failure only (and, for a cancel, the
    // order confirmations this test never delivered).
    let publisher = RecordingPublisher::default();
    let report = outbox::sweep(app.pool(), &publisher, &sweep_now()).await.unwrap();
    let others = app.count(&format!("outbox WHERE kind <> '{}'", mail_event.kind())).await;
    assert_eq!(report.republished, 1 + others as u64);
    let bob_id = outbox_id(&app, &bob).await;
    let of_kind: Vec<i64> = {
        let client = app.pool().get().await.unwrap();
        let recorded = publisher.0.lock().unwrap().clone();
        let rows = client
            .query("SELECT id FROM outbox WHERE id = ANY($1) AND kind = $2", &[&recorded, &mail_event.kind()])
            .await
            .unwrap();
        rows.iter().map(|row| row.get(0)).collect()
    };
    assert_eq!(of_kind, vec![bob_id]);
}

#[tokio::test]
async fn a_rejected_mail_is_acknowledged_on_redis_not_dead_lettered() {
    // A message left unacknowledged would be claimed again after half a second.
    let queue = common::config::QueueConfig { claim_timeout: Duration::from_millis(500), ..redis_queue(&redis_url()) };
    let app = app_publishing_to(&queue).await;
    let mails = MailLog::new();
    let ann = unique_email("ann");
    let mailer = ScriptedMailer::new(&[(&ann, Outcome::Rejected)], &mails);
    let consumer = RedisQueue::consumer(&queue).await.unwrap();
    let worker = Worker::new(app.pool().clone(), mailer.clone(), fast_worker());
    let (stop, running) = run_worker(worker, consumer);

    register_ok(&app, &ann).await;
    eventually(Duration::from_secs(20), "the rejection recorded and the entry acknowledged", || async {
        let mut conn = redis(&queue.url).await;
        delivery(&app, &ann).await.is_some_and(|d| d.0 == "rejected")
            && stream_len(&mut conn, &queue.stream).await == 0
            && pending(&mut conn, &queue).await == 0
    })
    .await;
    let _ = stop.send(());
    running.await.unwrap();

    // Acknowledged and gone: nothing can come back, nothing went to the dead stream.
    let mut conn = redis(&queue.url).await;
    assert_eq!(stream_len(&mut conn, &format!("{}:dead", queue.stream)).await, 0);
    assert_eq!(mailer.attempts(&ann), 1);
    assert!(mails.mails().is_empty());
    assert!(is_settled(&app, &ann).await);
}

#[tokio::test]
async fn an_unverified_sender_at_localstack_ses_is_retried_then_sent_once_verified() {
    // Our own configuration, not the recipient's fault: SES answers MessageRejected naming
    // the sender, and the mail must be retried rather than recorded as rejected.
    let sdk = common::aws::localstack_config(&localstack_url()).await;
    let ses = aws_sdk_ses::Client::new(&sdk);
    let sender = format!("{}@{}.example", testkit::unique("sender"), testkit::unique("unverified"));
    let app = TestApp::spawn().await;
    let ann = unique_email("ann");
    register_ok(&app, &ann).await;
    let mut event = sqs_fixture();
    let body = json!({"id": outbox_id(&app, &ann).await, "kind": "welcome_email", "payload": {"to": ann}});
    event["Records"] = json!([event["Records"][0].clone()]);
    event["Records"][0]["body"] = json!(body.to_string());
    let event: SqsEvent = serde_json::from_value(event).unwrap();
    let mailer = Arc::new(common::mail::ses::SesMailer::with_client(ses.clone(), &sender));
    let worker = Worker::new(app.pool().clone(), mailer, WorkerOptions::default());

    let response = worker.handle_sqs(event.clone()).await;
    assert_eq!(response.batch_item_failures.len(), 1, "an unverified sender is retried");
    assert_eq!(delivery(&app, &ann).await, None);
    assert!(!is_settled(&app, &ann).await);
    assert!(ses_mails_to(&ann).await.is_empty());

    ses.verify_email_identity().email_address(&sender).send().await.expect("verify sender");
    let response = worker.handle_sqs(event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(delivery(&app, &ann).await.map(|d| d.0).as_deref(), Some("sent"));
    assert_eq!(ses_mails_to(&ann).await.len(), 1);
}
