//! Mails through Redis Streams (the local server's queue): delivered once, through a queue
//! outage at registration, a worker killed before or after sending (each mail kind), a
//! message that always fails, malformed messages, and a burst of registrations.

use common::config::QueueConfig;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::config::Limits;
use common::queue;
use common::queue::redis::RedisQueue;
use email_worker::Worker;
use futures_util::StreamExt;
use http::StatusCode;
use redis::AsyncCommands;
use serde_json::Value;
use testkit::app::{PASSWORD, TestApp};
use testkit::process::Killed;
use testkit::services::redis_url;
use testkit::unique_email;
use testkit::{eventually, unique};
use tokio::net::{TcpListener, TcpStream};

use super::{
    FailingMailer, MailEvent, MailLog, Sent, delivery_rows, fast_worker, register_ok, run_worker, start_pipeline,
};

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

/// A test app publishing to a stream of its own on the shared Redis, and a mail log.
async fn app_on_a_stream_of_its_own() -> (QueueConfig, TestApp, MailLog) {
    let queue = redis_queue(&redis_url());
    let app = app_publishing_to(&queue).await;
    (queue, app, MailLog::new())
}

/// A test app whose register publishes to `queue`.
pub(crate) async fn app_publishing_to(queue: &QueueConfig) -> TestApp {
    TestApp::spawn_with_publisher(Some(queue::publisher(queue).await.unwrap())).await
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

#[tokio::test]
async fn register_sends_exactly_one_welcome_mail() {
    let (queue, app, mails) = app_on_a_stream_of_its_own().await;
    let pipeline = start_pipeline(&app, queue::consumer(&queue).await.unwrap(), mails.mailer());

    let ann = unique_email("ann");
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
    let pipeline = start_pipeline(&app, queue::consumer(&real).await.unwrap(), mails.mailer());

    let ann = unique_email("ann");
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
fn spawn_worker(app: &TestApp, queue: &QueueConfig, mails: &MailLog, pause: &[&str]) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_gamestore"))
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
        .expect("spawn gamestore worker");
    Killed(child)
}

/// Each mail of `sent`, by subject, exactly once (and nothing else to that address).
fn each_once(mails: &MailLog, sent: &Sent) {
    let mut got: Vec<String> = mails
        .mails()
        .iter()
        .filter(|mail| mail["to"] == sent.to.as_str())
        .filter_map(|mail| mail["subject"].as_str().map(str::to_owned))
        .collect();
    got.sort_unstable();
    let mut expected = sent.subjects.clone();
    expected.sort_unstable();
    assert_eq!(got, expected, "each mail once");
}

/// A worker that mailed (and recorded) and is SIGKILLed before acknowledging: the
/// redelivered messages are acknowledged without a second mail.
async fn worker_killed_after_sending_before_ack_sends_once(event: MailEvent) {
    let (queue, app, mails) = app_on_a_stream_of_its_own().await;
    let mut conn = redis(&queue.url).await;
    let mut first = spawn_worker(&app, &queue, &mails, &["--pause-before-ack-ms", "600000"]);

    let sent = event.happen(&app).await;
    let messages = sent.subjects.len() as i64;
    eventually(Duration::from_secs(30), "the publish", || async {
        app.query_one::<i64>("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL", &[]).await == messages
    })
    .await;
    // Received, mailed and recorded, not acknowledged: then SIGKILL.
    eventually(Duration::from_secs(30), "the first worker's mail", || async { mails.count_to(&sent.to) >= 1 }).await;
    assert!(pending(&mut conn, &queue).await >= 1, "the message must still be unacknowledged");
    first.0.kill().expect("SIGKILL the worker");
    first.0.wait().expect("reap");

    let _second = spawn_worker(&app, &queue, &mails, &[]);
    eventually(Duration::from_secs(30), "every mail and the redelivery acknowledged", || async {
        mails.count_to(&sent.to) >= sent.subjects.len() && pending(&mut redis(&queue.url).await, &queue).await == 0
    })
    .await;
    each_once(&mails, &sent);
    assert_eq!(delivery_rows(&app).await, (messages, messages));
}

#[tokio::test]
async fn worker_killed_after_sending_before_ack_is_redelivered_and_sends_once() {
    worker_killed_after_sending_before_ack_sends_once(MailEvent::Registration).await;
}

#[tokio::test]
async fn worker_killed_after_sending_an_order_mail_before_ack_sends_it_once() {
    worker_killed_after_sending_before_ack_sends_once(MailEvent::Order).await;
}

#[tokio::test]
async fn worker_killed_after_sending_a_cancellation_before_ack_sends_it_once() {
    worker_killed_after_sending_before_ack_sends_once(MailEvent::Cancel).await;
}

/// A worker that claimed a delivery and is SIGKILLed before sending: the redelivery sends
/// it, once.
async fn worker_killed_before_sending_sends_once(event: MailEvent) {
    let (queue, app, mails) = app_on_a_stream_of_its_own().await;
    let mut first = spawn_worker(&app, &queue, &mails, &["--pause-before-send-ms", "600000"]);

    let sent = event.happen(&app).await;
    let messages = sent.subjects.len() as i64;
    // Received and claimed, no mail yet: then SIGKILL.
    eventually(Duration::from_secs(30), "the first worker's claim", || async { delivery_rows(&app).await.0 >= 1 })
        .await;
    first.0.kill().expect("SIGKILL the worker");
    first.0.wait().expect("reap");
    assert_eq!(mails.count_to(&sent.to), 0);

    let _second = spawn_worker(&app, &queue, &mails, &[]);
    eventually(Duration::from_secs(30), "every mail after redelivery", || async {
        mails.count_to(&sent.to) >= sent.subjects.len()
    })
    .await;
    eventually(Duration::from_secs(30), "the redelivery to be acknowledged", || async {
        pending(&mut redis(&queue.url).await, &queue).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    each_once(&mails, &sent);
    assert_eq!(delivery_rows(&app).await, (messages, messages));
}

#[tokio::test]
async fn worker_killed_before_sending_is_redelivered_and_sends_once() {
    worker_killed_before_sending_sends_once(MailEvent::Registration).await;
}

#[tokio::test]
async fn worker_killed_before_sending_an_order_mail_sends_it_once() {
    worker_killed_before_sending_sends_once(MailEvent::Order).await;
}

#[tokio::test]
async fn worker_killed_before_sending_a_cancellation_sends_it_once() {
    worker_killed_before_sending_sends_once(MailEvent::Cancel).await;
}

#[tokio::test]
async fn a_message_that_always_fails_ends_in_the_dead_stream() {
    // Every failed send releases its claim, so redeliveries may come quickly.
    let queue = QueueConfig { claim_timeout: Duration::from_millis(500), ..redis_queue(&redis_url()) };
    let app = app_publishing_to(&queue).await;
    let mails = MailLog::new();
    let mailer = Arc::new(FailingMailer { fail_all: true, fail_for: HashSet::new(), log: mails.mailer() });
    let consumer = RedisQueue::consumer(&queue).await.unwrap();
    let worker = Worker::new(app.pool().clone(), mailer, fast_worker());
    let (stop, running) = run_worker(worker, consumer);

    register_ok(&app, &unique_email("ann")).await;
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
    let (queue, app, mails) = app_on_a_stream_of_its_own().await;
    let mut conn = redis(&queue.url).await;
    let _: String = conn.xadd(&queue.stream, "*", &[("body", "this is not JSON")]).await.unwrap();
    let _: String = conn.xadd(&queue.stream, "*", &[("other", "no body at all")]).await.unwrap();
    let _: String = conn
        .xadd(&queue.stream, "*", &[("body", r#"{"id":1,"kind":"welcome_email","payload":{"to":"not an address"}}"#)])
        .await
        .unwrap();
    let pipeline = start_pipeline(&app, queue::consumer(&queue).await.unwrap(), mails.mailer());

    let ann = unique_email("ann");
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
        start_pipeline(&app, queue::consumer(&queue).await.unwrap(), mails.mailer()),
        start_pipeline(&app, queue::consumer(&queue).await.unwrap(), mails.mailer()),
    ];

    let emails: Vec<String> = (0..USERS).map(|i| unique_email(&format!("burst{i}"))).collect();
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

/// The buyer's address, for a test app with one user.
async fn buyer_email(app: &TestApp) -> String {
    app.query_one("SELECT email FROM users WHERE role = 'user'", &[]).await
}

#[tokio::test]
async fn an_order_and_its_cancel_send_one_mail_each() {
    let (queue, app, mails) = app_on_a_stream_of_its_own().await;
    let pipeline = start_pipeline(&app, queue::consumer(&queue).await.unwrap(), mails.mailer());
    let product = app.product("MAIL-A", 1999, 10).await;
    let token = app.user_token(common::domain::Role::User).await;
    let buyer = buyer_email(&app).await;

    let placed =
        app.post("/api/v1/orders", &serde_json::json!({"product_id": product, "quantity": 2}), Some(&token)).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
    let id = placed.body["order_id"].as_i64().unwrap();
    // Twice: the second cancel answers the cancelled order and writes no second mail.
    for _ in 0..2 {
        let cancelled = app.post(&format!("/api/v1/orders/{id}/cancel"), &serde_json::json!({}), Some(&token)).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    }
    eventually(Duration::from_secs(20), "the order mails", || async { mails.count_to(&buyer) == 2 }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pipeline.stop().await;

    let sent = mails.mails();
    let subjects: HashSet<&str> = sent.iter().filter_map(|m| m["subject"].as_str()).collect();
    let expected = [format!("Your Game Store order {id}"), format!("Your Game Store order {id} is cancelled")];
    assert_eq!(subjects, expected.iter().map(String::as_str).collect(), "{sent:?}");
    for mail in &sent {
        assert_eq!(mail["to"], buyer.as_str());
        assert!(mail["text"].as_str().unwrap().contains("2 x Game MAIL-A at 19.99 = 39.98"), "{mail:?}");
        assert!(mail["html"].as_str().unwrap().contains("Total: <strong>39.98</strong>"), "{mail:?}");
    }
    assert_eq!(delivery_rows(&app).await, (2, 2));
    assert_eq!(pending(&mut redis(&queue.url).await, &queue).await, 0);
}
