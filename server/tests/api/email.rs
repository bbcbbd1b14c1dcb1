//! The welcome-email pipeline end to end: register → outbox → queue (Redis Streams, or SQS
//! on LocalStack) → worker → mailer, and its failure cases: queue down at registration,
//! worker killed mid-message, failing mails, malformed and poison messages, a burst.
//! Each test has its own database, its own stream or SQS queues, and its own mail log.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use common::config::Limits;
use common::mail::{LogMailer, Mail, MailError, Mailer};
use common::outbox::SweepConfig;
use common::queue::redis::RedisQueue;
use common::queue::sqs::SqsQueue;
use common::queue::{self, Consumer, Publisher, QueueConfig};
use common::retention::RetentionConfig;
use email_worker::{Worker, WorkerOptions};
use futures_util::StreamExt;
use gamestore::Pipeline;
use http::StatusCode;
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{PASSWORD, TestApp};

// ---------------------------------------------------------------- set-up helpers

pub(crate) fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .unwrap_or_else(|_| panic!("TEST_REDIS_URL is not set: run `make test`, or point it at a Redis 7"))
}

pub(crate) fn localstack_url() -> String {
    std::env::var("TEST_LOCALSTACK_URL")
        .unwrap_or_else(|_| panic!("TEST_LOCALSTACK_URL is not set: run `make test` (it starts LocalStack)"))
}

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn address(prefix: &str) -> String {
    format!("{}@example.com", unique(prefix))
}

/// A Redis queue of this test's own: its stream, short timeouts. The claim timeout stays
/// above the worker's lease (see [`fast_worker`]), as in production: a competing worker
/// must wait for a slow send rather than take the message over.
pub(crate) fn redis_queue(url: &str) -> QueueConfig {
    QueueConfig {
        stream: unique("test-stream"),
        claim_timeout: Duration::from_secs(3),
        wait: Duration::from_millis(200),
        ..QueueConfig::new(url)
    }
}

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

/// Polls `check` every 100 ms until it holds; fails the test after `limit`.
pub(crate) async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The log mailer's JSON lines file of this test: counts mails across processes.
pub(crate) struct MailLog(PathBuf);

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
struct FailingMailer {
    fail_all: bool,
    fail_for: HashSet<String>,
    log: Arc<dyn Mailer>,
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

pub(crate) async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to test Redis")
}

/// Entries delivered to the group and not acknowledged.
pub(crate) async fn pending(conn: &mut redis::aio::MultiplexedConnection, queue: &QueueConfig) -> usize {
    let reply: redis::streams::StreamPendingReply = conn.xpending(&queue.stream, &queue.group).await.expect("XPENDING");
    reply.count()
}

pub(crate) async fn stream_len(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> usize {
    conn.xlen(stream).await.expect("XLEN")
}

pub(crate) async fn delivery_rows(app: &TestApp) -> (i64, i64) {
    let sent: i64 = app.query_one("SELECT count(*) FROM email_deliveries WHERE sent_at IS NOT NULL", &[]).await;
    (app.count("email_deliveries").await, sent)
}

// ---------------------------------------------------------------- Redis Streams

#[tokio::test]
async fn register_sends_exactly_one_welcome_mail() {
    let queue = redis_queue(&redis_url());
    let app = TestApp::spawn_with_publisher(Some(queue::publisher(&queue).await.unwrap())).await;
    let mails = MailLog::new();
    let pipeline = Pipeline::start(
        &app.state,
        queue::consumer(&queue).await.unwrap(),
        mails.mailer(),
        fast_worker(),
        fast_sweep(),
    );

    let ann = address("ann");
    register_ok(&app, &ann).await;
    eventually(Duration::from_secs(20), "the welcome mail", || async { mails.count_to(&ann) == 1 }).await;
    // Longer than the sweeper's grace and the worker's claim timeout: nothing more comes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pipeline.stop().await;

    let sent = mails.mails();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["subject"], "Welcome to the Game Store");
    assert!(sent[0]["text"].as_str().unwrap().contains(&ann));
    assert!(sent[0]["html"].as_str().unwrap().contains("<h1>Welcome"));
    let published: i64 = app.query_one("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL", &[]).await;
    assert_eq!((app.count("outbox").await, published), (1, 1));
    assert_eq!(delivery_rows(&app).await, (1, 1));
    let mut conn = redis(&queue.url).await;
    assert_eq!(pending(&mut conn, &queue).await, 0);
}

#[tokio::test]
async fn registration_fails_whole_when_the_user_insert_fails() {
    // The outbox row commits with the user or not at all: a duplicate email leaves no row.
    let app = TestApp::spawn().await;
    let ann = address("ann");
    register_ok(&app, &ann).await;
    let again = app.register(&ann, PASSWORD).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(app.count("outbox").await, 1);
}

/// A TCP proxy to `target` that refuses service (accepts and closes) until switched on.
async fn switchable_proxy(target: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let on = up.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !on.load(Ordering::SeqCst) {
                drop(inbound);
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (address, up)
}

#[tokio::test]
async fn queue_down_at_registration_then_the_sweeper_delivers_once() {
    let real = redis_queue(&redis_url());
    let target: SocketAddr = real
        .url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("TEST_REDIS_URL is redis://ip:port");
    let (proxy, up) = switchable_proxy(target).await;
    let through_proxy = QueueConfig { url: format!("redis://{proxy}"), ..real.clone() };
    let app = TestApp::spawn_with_publisher(Some(queue::publisher(&through_proxy).await.unwrap())).await;
    let mails = MailLog::new();
    // The worker reads Redis directly; only publishing goes through the failing proxy.
    let pipeline =
        Pipeline::start(&app.state, queue::consumer(&real).await.unwrap(), mails.mailer(), fast_worker(), fast_sweep());

    let ann = address("ann");
    let started = Instant::now();
    register_ok(&app, &ann).await;
    assert!(started.elapsed() < Duration::from_secs(10), "a queue outage must not hold registration");
    // The sweeper retries during the outage (and fails): still no mail, nothing published.
    eventually(Duration::from_secs(10), "a failed sweep attempt", || async {
        app.query_one::<i32>("SELECT attempts FROM outbox", &[]).await >= 1
    })
    .await;
    assert_eq!(mails.count_to(&ann), 0);
    let unpublished: i64 = app.query_one("SELECT count(*) FROM outbox WHERE published_at IS NULL", &[]).await;
    assert_eq!(unpublished, 1);

    up.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(20), "the mail after the queue is back", || async { mails.count_to(&ann) == 1 })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pipeline.stop().await;
    assert_eq!(mails.mails().len(), 1);
    let published: i64 = app.query_one("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL", &[]).await;
    assert_eq!(published, 1);
}

/// `gamestore worker` as a child process on this test's database, stream and mail log.
fn spawn_worker(app: &TestApp, queue: &QueueConfig, mails: &MailLog, pause: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gamestore"))
        .arg("worker")
        .args(pause)
        .env("DATABASE_URL", &app.database_url)
        .env("QUEUE_URL", &queue.url)
        .env("QUEUE_STREAM", &queue.stream)
        .env("QUEUE_GROUP", &queue.group)
        .env("QUEUE_CLAIM_TIMEOUT_MS", "2000")
        .env("QUEUE_WAIT_MS", "200")
        .env("DELIVERY_LEASE_MS", "1500")
        .env("MAIL_LOG", &mails.0)
        .env_remove("MAILER")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn gamestore worker")
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn worker_killed_after_sending_before_ack_is_redelivered_and_sends_once() {
    let queue = redis_queue(&redis_url());
    let app = TestApp::spawn_with_publisher(Some(queue::publisher(&queue).await.unwrap())).await;
    let mails = MailLog::new();
    let mut conn = redis(&queue.url).await;
    let mut first = Reaped(spawn_worker(&app, &queue, &mails, &["--pause-before-ack-ms", "600000"]));

    let ann = address("ann");
    register_ok(&app, &ann).await;
    eventually(Duration::from_secs(30), "the publish", || async {
        app.query_one::<i64>("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL", &[]).await == 1
    })
    .await;
    // Received, mailed and recorded, not acknowledged: then SIGKILL.
    eventually(Duration::from_secs(30), "the first worker's mail", || async { mails.count_to(&ann) == 1 }).await;
    assert_eq!(pending(&mut conn, &queue).await, 1, "the message must still be unacknowledged");
    first.0.kill().expect("SIGKILL the worker");
    first.0.wait().expect("reap");

    let _second = Reaped(spawn_worker(&app, &queue, &mails, &[]));
    eventually(Duration::from_secs(30), "the redelivery to be acknowledged", || async {
        pending(&mut redis(&queue.url).await, &queue).await == 0
    })
    .await;
    assert_eq!(mails.count_to(&ann), 1, "the redelivered message must not send a second mail");
    assert_eq!(delivery_rows(&app).await, (1, 1));
}

#[tokio::test]
async fn worker_killed_before_sending_is_redelivered_and_sends_once() {
    let queue = redis_queue(&redis_url());
    let app = TestApp::spawn_with_publisher(Some(queue::publisher(&queue).await.unwrap())).await;
    let mails = MailLog::new();
    let mut first = Reaped(spawn_worker(&app, &queue, &mails, &["--pause-before-send-ms", "600000"]));

    let ann = address("ann");
    register_ok(&app, &ann).await;
    // Received and claimed, no mail yet: then SIGKILL.
    eventually(Duration::from_secs(30), "the first worker's claim", || async { delivery_rows(&app).await == (1, 0) })
        .await;
    first.0.kill().expect("SIGKILL the worker");
    first.0.wait().expect("reap");
    assert_eq!(mails.count_to(&ann), 0);

    let _second = Reaped(spawn_worker(&app, &queue, &mails, &[]));
    eventually(Duration::from_secs(30), "the mail after redelivery", || async { mails.count_to(&ann) == 1 }).await;
    eventually(Duration::from_secs(30), "the redelivery to be acknowledged", || async {
        pending(&mut redis(&queue.url).await, &queue).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mails.count_to(&ann), 1);
    assert_eq!(delivery_rows(&app).await, (1, 1));
}

#[tokio::test]
async fn a_message_that_always_fails_ends_in_the_dead_stream() {
    // Every failed send releases its claim, so redeliveries may come quickly.
    let queue = QueueConfig { claim_timeout: Duration::from_millis(500), ..redis_queue(&redis_url()) };
    let app = TestApp::spawn_with_publisher(Some(queue::publisher(&queue).await.unwrap())).await;
    let mails = MailLog::new();
    let mailer = Arc::new(FailingMailer { fail_all: true, fail_for: HashSet::new(), log: mails.mailer() });
    let consumer = RedisQueue::consumer(&queue).await.unwrap();
    let worker = Worker::new(app.pool().clone(), mailer, fast_worker());
    let (stop, running) = run_worker(worker, consumer);

    register_ok(&app, &address("ann")).await;
    let dead = format!("{}:dead", queue.stream);
    let mut conn = redis(&queue.url).await;
    eventually(Duration::from_secs(30), "the dead-lettered message", || async {
        stream_len(&mut redis(&queue.url).await, &dead).await == 1
    })
    .await;
    let _ = stop.send(());
    running.await.unwrap();

    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&dead).await.unwrap();
    let entry = &entries.ids[0];
    assert_eq!(entry.get::<String>("reason").as_deref(), Some("too many delivery attempts"));
    assert_eq!(entry.get::<String>("attempts").as_deref(), Some("6"));
    let body: Value = serde_json::from_str(&entry.get::<String>("body").unwrap()).unwrap();
    assert_eq!(body["kind"], "welcome_email");
    assert_eq!(pending(&mut conn, &queue).await, 0);
    assert_eq!(stream_len(&mut conn, &queue.stream).await, 0);
    assert!(mails.mails().is_empty());
    // Every failed attempt released its claim: no stale claim is left behind.
    assert_eq!(delivery_rows(&app).await, (0, 0));
}

#[tokio::test]
async fn malformed_messages_are_dead_lettered_and_the_worker_keeps_going() {
    let queue = redis_queue(&redis_url());
    let app = TestApp::spawn_with_publisher(Some(queue::publisher(&queue).await.unwrap())).await;
    let mails = MailLog::new();
    let mut conn = redis(&queue.url).await;
    let _: String = conn.xadd(&queue.stream, "*", &[("body", "this is not JSON")]).await.unwrap();
    let _: String = conn.xadd(&queue.stream, "*", &[("other", "no body at all")]).await.unwrap();
    let _: String = conn
        .xadd(&queue.stream, "*", &[("body", r#"{"id":1,"kind":"welcome_email","payload":{"to":"not an address"}}"#)])
        .await
        .unwrap();
    let pipeline = Pipeline::start(
        &app.state,
        queue::consumer(&queue).await.unwrap(),
        mails.mailer(),
        fast_worker(),
        fast_sweep(),
    );

    let ann = address("ann");
    register_ok(&app, &ann).await;
    eventually(Duration::from_secs(20), "the good message's mail", || async { mails.count_to(&ann) == 1 }).await;
    let dead = format!("{}:dead", queue.stream);
    eventually(Duration::from_secs(20), "three dead letters", || async {
        stream_len(&mut redis(&queue.url).await, &dead).await == 3
    })
    .await;
    pipeline.stop().await;

    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&dead).await.unwrap();
    let reasons: Vec<String> = entries.ids.iter().map(|e| e.get("reason").unwrap()).collect();
    assert!(reasons.iter().all(|r| !r.is_empty()), "{reasons:?}");
    assert_eq!(entries.ids[0].get::<String>("body").as_deref(), Some("this is not JSON"));
    assert_eq!(pending(&mut conn, &queue).await, 0);
    assert_eq!(mails.mails().len(), 1);
}

#[tokio::test]
async fn a_burst_of_200_registrations_sends_200_mails_once_each() {
    const USERS: usize = 200;
    let queue = redis_queue(&redis_url());
    // All from one address: registration limits are not what this test is about.
    let limits = Limits { register_per_network: USERS as i32, ..Limits::default() };
    let app = TestApp::spawn_with(Some(queue::publisher(&queue).await.unwrap()), limits).await;
    let mails = MailLog::new();
    // Two competing workers (and two sweepers) on one group.
    let pipelines = [
        Pipeline::start(
            &app.state,
            queue::consumer(&queue).await.unwrap(),
            mails.mailer(),
            fast_worker(),
            fast_sweep(),
        ),
        Pipeline::start(
            &app.state,
            queue::consumer(&queue).await.unwrap(),
            mails.mailer(),
            fast_worker(),
            fast_sweep(),
        ),
    ];

    let emails: Vec<String> = (0..USERS).map(|i| address(&format!("burst{i}"))).collect();
    let statuses: Vec<StatusCode> = futures_util::stream::iter(emails.iter())
        .map(|email| async { app.register(email, PASSWORD).await.status })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");

    eventually(Duration::from_secs(90), "200 mails", || async { mails.mails().len() >= USERS }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for pipeline in pipelines {
        pipeline.stop().await;
    }

    let mut per_address: BTreeMap<String, usize> = BTreeMap::new();
    for mail in mails.mails() {
        *per_address.entry(mail["to"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let duplicates: Vec<_> = per_address.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "sent twice: {duplicates:?}");
    let missing: Vec<_> = emails.iter().filter(|e| !per_address.contains_key(*e)).collect();
    assert!(missing.is_empty(), "never sent: {missing:?}");
    assert_eq!(per_address.len(), USERS);
    assert_eq!(delivery_rows(&app).await, (USERS as i64, USERS as i64));
}

// ---------------------------------------------------------------- the Lambda adapter

pub(crate) fn sqs_fixture() -> Value {
    let path = format!("{}/../events/email-worker-sqs.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn sqs_batch_reports_exactly_the_failed_messages() {
    let app = TestApp::spawn().await;
    let (ann, bob) = (address("ann"), address("bob"));
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

// ---------------------------------------------------------------- SQS and SES on LocalStack

/// A queue and its DLQ of this test's own on LocalStack (redrive after `max_receives`).
pub(crate) async fn sqs_queues(client: &aws_sdk_sqs::Client, visibility: u32, max_receives: u32) -> (String, String) {
    let name = unique("test-welcome");
    let dlq =
        client.create_queue().queue_name(format!("{name}-dlq")).send().await.expect("create DLQ").queue_url.unwrap();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()});
    let url = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility.to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap();
    (url, dlq)
}

async fn http_get_json(url: &str) -> Value {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(url.parse().unwrap()).await.expect("GET");
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    serde_json::from_slice(&body).expect("JSON")
}

/// The mails LocalStack's SES accepted for `to`.
pub(crate) async fn ses_mails_to(to: &str) -> Vec<Value> {
    let all = http_get_json(&format!("{}/_aws/ses", localstack_url())).await;
    all["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["Destination"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|x| x == to)))
        .collect()
}

#[tokio::test]
async fn register_delivers_through_sqs_and_ses_on_localstack() {
    let sdk = common::aws::localstack_config(&localstack_url()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, _dlq) = sqs_queues(&sqs, 5, 5).await;
    let config = QueueConfig { wait: Duration::from_secs(1), ..QueueConfig::new(&queue_url) };
    let sender = common::mail::MailConfig::DEFAULT_FROM;
    let ses = aws_sdk_ses::Client::new(&sdk);
    ses.verify_email_identity().email_address(sender).send().await.expect("verify sender");

    let publisher: Arc<dyn Publisher> = Arc::new(SqsQueue::with_client(sqs.clone(), &config));
    let app = TestApp::spawn_with_publisher(Some(publisher)).await;
    let consumer: Arc<dyn Consumer> = Arc::new(SqsQueue::with_client(sqs.clone(), &config));
    let mailer: Arc<dyn Mailer> = Arc::new(common::mail::ses::SesMailer::with_client(ses, sender));
    let pipeline = Pipeline::start(&app.state, consumer, mailer, fast_worker(), fast_sweep());

    let ann = address("ann");
    register_ok(&app, &ann).await;
    eventually(Duration::from_secs(30), "the mail at LocalStack's SES", || async {
        ses_mails_to(&ann).await.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pipeline.stop().await;

    let sent = ses_mails_to(&ann).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["Source"], sender);
    assert_eq!(sent[0]["Subject"], "Welcome to the Game Store");
    assert!(sent[0]["Body"]["text_part"].as_str().unwrap().contains(&ann), "{sent:?}");
    assert!(sent[0]["Body"]["html_part"].as_str().unwrap().contains("<h1>Welcome"), "{sent:?}");
    assert_eq!(delivery_rows(&app).await, (1, 1));
    let left = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(left[&QueueAttributeName::ApproximateNumberOfMessages], "0");
    assert_eq!(left[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible], "0");
}

#[tokio::test]
async fn a_message_that_always_fails_ends_in_the_sqs_dlq() {
    let sdk = common::aws::localstack_config(&localstack_url()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dlq_url) = sqs_queues(&sqs, 1, 5).await;
    let config = QueueConfig { wait: Duration::from_secs(1), ..QueueConfig::new(&queue_url) };
    let publisher: Arc<dyn Publisher> = Arc::new(SqsQueue::with_client(sqs.clone(), &config));
    let app = TestApp::spawn_with_publisher(Some(publisher)).await;
    let mails = MailLog::new();
    let mailer = Arc::new(FailingMailer { fail_all: true, fail_for: HashSet::new(), log: mails.mailer() });
    let consumer = SqsQueue::with_client(sqs.clone(), &config);
    let worker = Worker::new(app.pool().clone(), mailer, fast_worker());
    let (stop, running) = run_worker(worker, consumer);

    register_ok(&app, &address("ann")).await;
    let dlq = SqsQueue::with_client(sqs.clone(), &QueueConfig::new(&dlq_url));
    let mut dead = Vec::new();
    let start = Instant::now();
    while dead.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "the message never reached the DLQ");
        dead = dlq.receive(10).await.unwrap();
    }
    let _ = stop.send(());
    running.await.unwrap();

    assert_eq!(dead.len(), 1);
    let body: Value = serde_json::from_str(&dead[0].body).unwrap();
    assert_eq!(body["kind"], "welcome_email");
    assert!(mails.mails().is_empty());
}
