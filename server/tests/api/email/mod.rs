//! The welcome-email pipeline end to end: register → outbox → queue → worker → mailer, and
//! its failure cases. What does not depend on the queue is here (the worker's and
//! sweeper's test timings, the mail log, a failing mailer, the Lambda adapter's batch
//! answer); the queue kinds have a file each: [`redis_streams`] (queue down at
//! registration, worker killed mid-message, poison and malformed messages, a burst) and
//! [`sqs_ses`] (SQS and SES on LocalStack). Each test has its own database, its own stream
//! or SQS queues, and its own mail log.

pub(crate) mod redis_streams;
pub(crate) mod sqs_ses;

use common::config::{RetentionConfig, SweepConfig};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use common::mail::{LogMailer, Mail, MailError, Mailer};
use common::queue::Consumer;
use email_worker::{Worker, WorkerOptions};
use gamestore::Pipeline;
use http::StatusCode;
use serde_json::{Value, json};
use testkit::app::{PASSWORD, TestApp};
use testkit::unique;
use testkit::unique_email;

/// Timeouts kept in their production order (send < lease < claim timeout), scaled down.
pub(crate) fn fast_worker() -> WorkerOptions {
    WorkerOptions { lease: Duration::from_secs(2), ..WorkerOptions::default() }
}

pub(crate) fn fast_sweep() -> SweepConfig {
    SweepConfig {
        grace: Duration::from_millis(500),
        redelivery_grace: Duration::from_secs(60),
        batch: 100,
        interval: Duration::from_millis(200),
        retention: RetentionConfig::default(),
    }
}

/// `worker` consuming `consumer` in a task until `stop` is sent or dropped.
pub(crate) fn run_worker(
    worker: Worker,
    consumer: impl Consumer + 'static,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run(&consumer, async {
                let _ = stopped.await;
            })
            .await;
    });
    (stop, running)
}

/// The local server's worker and sweeper for `app` on `consumer`, with the test timings.
pub(crate) fn start_pipeline(app: &TestApp, consumer: Arc<dyn Consumer>, mailer: Arc<dyn Mailer>) -> Pipeline {
    Pipeline::start(&app.state, consumer, mailer, fast_worker(), fast_sweep())
}

/// The log mailer's JSON lines file of this test: counts mails across processes.
pub(crate) struct MailLog(pub(crate) PathBuf);

impl MailLog {
    pub(crate) fn new() -> Self {
        Self(std::env::temp_dir().join(format!("{}.jsonl", unique("gamestore-mail"))))
    }

    pub(crate) fn mailer(&self) -> Arc<dyn Mailer> {
        Arc::new(LogMailer { file: Some(self.0.clone()) })
    }

    pub(crate) fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("mail log line is JSON"))
            .collect()
    }

    pub(crate) fn count_to(&self, to: &str) -> usize {
        self.mails().iter().filter(|m| m["to"] == to).count()
    }
}

impl Drop for MailLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A mailer that fails for the addresses given (or for all), counting what it sent.
pub(crate) struct FailingMailer {
    pub(crate) fail_all: bool,
    pub(crate) fail_for: HashSet<String>,
    pub(crate) log: Arc<dyn Mailer>,
}

#[async_trait]
impl Mailer for FailingMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if self.fail_all || self.fail_for.contains(&mail.to) {
            return Err(MailError::Send(format!("refusing mail to {}", mail.to)));
        }
        self.log.send(mail).await
    }
}

pub(crate) async fn register_ok(app: &TestApp, email: &str) {
    let response = app.register(email, PASSWORD).await;
    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
}

/// An event that sends mail, one per kind of mail: a registration (the welcome mail), an
/// order (its confirmation) and a cancel (after the order's confirmation, the cancellation).
#[derive(Debug, Clone, Copy)]
pub(crate) enum MailEvent {
    Registration,
    Order,
    Cancel,
}

/// What a [`MailEvent`] sent: to whom, and the subject of each mail (each must arrive once).
pub(crate) struct Sent {
    pub(crate) to: String,
    pub(crate) subjects: Vec<String>,
}

impl MailEvent {
    /// The outbox kind of the mail this event is about.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::Registration => common::message::WELCOME_EMAIL,
            Self::Order => common::message::ORDER_CONFIRMATION,
            Self::Cancel => common::message::ORDER_CANCELLED,
        }
    }

    /// Makes the event happen for a new user of `app`.
    pub(crate) async fn happen(self, app: &TestApp) -> Sent {
        if let Self::Registration = self {
            let to = unique_email("ann");
            register_ok(app, &to).await;
            return Sent { to, subjects: vec!["Welcome to the Game Store".to_owned()] };
        }
        let (to, token) = app.user(common::domain::Role::User).await;
        let sku = unique("MAIL");
        let product = app.product(&sku, 1500, 10).await;
        let placed = app.post("/api/v1/orders", &json!({"product_id": product}), Some(&token)).await;
        assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
        let order = placed.body["order_id"].as_i64().expect("order id");
        let mut subjects = vec![format!("Your Game Store order {order}")];
        if let Self::Cancel = self {
            let cancelled = app.post(&format!("/api/v1/orders/{order}/cancel"), &json!({}), Some(&token)).await;
            assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
            subjects.push(format!("Your Game Store order {order} is cancelled"));
        }
        Sent { to, subjects }
    }
}

pub(crate) async fn delivery_rows(app: &TestApp) -> (i64, i64) {
    let sent: i64 = app.query_one("SELECT count(*) FROM email_deliveries WHERE sent_at IS NOT NULL", &[]).await;
    (app.count("email_deliveries").await, sent)
}

#[tokio::test]
async fn registration_fails_whole_when_the_user_insert_fails() {
    // The outbox row commits with the user or not at all: a duplicate email leaves no row.
    let app = TestApp::spawn().await;
    let ann = unique_email("ann");
    register_ok(&app, &ann).await;
    let again = app.register(&ann, PASSWORD).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(app.count("outbox").await, 1);
}

// ---------------------------------------------------------------- the Lambda adapter

pub(crate) fn sqs_fixture() -> Value {
    let path = format!("{}/../events/email-worker-sqs.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn sqs_batch_reports_exactly_the_failed_messages() {
    let app = TestApp::spawn().await;
    let (ann, bob) = (unique_email("ann"), unique_email("bob"));
    register_ok(&app, &ann).await;
    register_ok(&app, &bob).await;
    let ids: Vec<i64> = {
        let client = app.pool().get().await.unwrap();
        let rows = client.query("SELECT id FROM outbox ORDER BY id", &[]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    };

    // The fixture as Lambda delivers it, bodies pointed at this test's outbox rows: ann's
    // mail goes out, bob's mail fails, the third record is malformed.
    let mut event = sqs_fixture();
    let body = |id: i64, to: &str| json!({"id": id, "kind": "welcome_email", "payload": {"to": to}}).to_string();
    event["Records"][0]["body"] = json!(body(ids[0], &ann));
    event["Records"][1]["body"] = json!(body(ids[1], &bob));
    event["Records"][2]["body"] = json!("{\"id\": \"not a message\"");
    let event: SqsEvent = serde_json::from_value(event).expect("an SQS event");
    let message_ids: Vec<String> = event.records.iter().map(|r| r.message_id.clone().unwrap()).collect();

    let mails = MailLog::new();
    let mailer =
        Arc::new(FailingMailer { fail_all: false, fail_for: HashSet::from([bob.clone()]), log: mails.mailer() });
    let worker = Worker::new(app.pool().clone(), mailer, WorkerOptions::default());

    let response = worker.handle_sqs(event.clone()).await;
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(
        wire,
        json!({"batchItemFailures": [
            {"itemIdentifier": message_ids[1]},
            {"itemIdentifier": message_ids[2]},
        ]})
    );
    assert_eq!((mails.count_to(&ann), mails.count_to(&bob)), (1, 0));

    // The whole batch redelivered: ann's mail is not sent again, the rest fail again.
    let again = worker.handle_sqs(event).await;
    let failed: Vec<_> = again.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, message_ids[1..].to_vec());
    assert_eq!(mails.mails().len(), 1);
}
