//! A queue that restarts empty or loses a message: the outbox stays the source of truth
//! until the mail is settled, the sweeper republishes what the queue lost, the Redis worker
//! recreates its consumer group, and every mail goes out exactly once.

use common::config::SweepConfig;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use common::outbox;
use common::queue::{self, Consumer, Publisher};
use email_worker::{Worker, WorkerOptions};
use gamestore::Pipeline;
use redis::AsyncCommands;
use serde_json::json;

use testkit::eventually;
use testkit::services::redis_url;

use crate::email::redis_streams::{app_publishing_to, pending, redis, redis_queue, stream_len};
use crate::email::sqs_ses::LocalStack;
use crate::email::{
    MailEvent, MailLog, Sent, delivery_rows, fast_sweep, fast_worker, register_ok, sqs_fixture, start_pipeline,
};
use crate::mail_failures::RecordingPublisher;
use testkit::app::TestApp;
use testkit::unique_email;

/// A Redis server of this test's own (no persistence), so the test can stop and restart it
/// without touching the shared one. Stopped when dropped.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        Self { port, child: Self::spawn(port) }
    }

    fn spawn(port: u16) -> Child {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/test.sh installs it)");
        let start = Instant::now();
        while redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(start.elapsed() < Duration::from_secs(10), "own redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts an empty one on the same port: what a Redis without
    /// persistence, or a failover to an empty replica, looks like to its clients.
    fn restart_empty(&mut self) {
        self.stop();
        self.child = Self::spawn(self.port);
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Republishes everything unsettled at once: no grace at all.
fn sweep_now() -> SweepConfig {
    SweepConfig { grace: Duration::ZERO, redelivery_grace: Duration::ZERO, ..fast_sweep() }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.query_one(sql, &[]).await
}

async fn settled(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM outbox WHERE settled_at IS NOT NULL").await
}

#[tokio::test]
async fn redis_restarted_empty_while_mails_are_queued_sends_each_once() {
    let mut server = OwnRedis::start();
    let queue = redis_queue(&server.url());
    let app = app_publishing_to(&queue).await;
    // The worker's consumer group exists on the first server only.
    let consumer = queue::consumer(&queue).await.unwrap();

    let (ann, bob, carol) = (unique_email("ann"), unique_email("bob"), unique_email("carol"));
    register_ok(&app, &ann).await;
    register_ok(&app, &bob).await;
    assert_eq!(count(&app, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL").await, 2);
    assert_eq!(stream_len(&mut redis(&queue.url).await, &queue.stream).await, 2);

    server.restart_empty();
    assert_eq!(stream_len(&mut redis(&queue.url).await, &queue.stream).await, 0, "the restart lost the stream");
    // Published to the new server (a stream without the group), or left to the sweeper.
    register_ok(&app, &carol).await;

    let mails = MailLog::new();
    let sweep = SweepConfig { redelivery_grace: Duration::from_secs(2), ..fast_sweep() };
    let pipeline = Pipeline::start(&app.state, consumer, mails.mailer(), fast_worker(), sweep);
    eventually(Duration::from_secs(60), "every mail settled", || async { settled(&app).await == 3 }).await;
    pipeline.stop().await;

    for to in [&ann, &bob, &carol] {
        assert_eq!(mails.count_to(to), 1, "mails to {to}: {:?}", mails.mails());
    }
    assert_eq!(mails.mails().len(), 3);
    assert_eq!(delivery_rows(&app).await, (3, 3));
    // Settled rows are never republished, however late.
    let after = outbox::sweep(app.pool(), &*queue::publisher(&queue).await.unwrap(), &sweep_now()).await.unwrap();
    assert_eq!((after.republished, after.failed), (0, 0));
}

#[tokio::test]
async fn a_message_deleted_from_the_stream_is_republished_and_each_mail_sent_once() {
    let queue = redis_queue(&redis_url());
    let publisher = queue::publisher(&queue).await.unwrap();
    let app = TestApp::spawn_with_publisher(Some(publisher.clone())).await;
    let consumer = queue::consumer(&queue).await.unwrap();
    let mut conn = redis(&queue.url).await;

    let (ann, bob) = (unique_email("ann"), unique_email("bob"));
    register_ok(&app, &ann).await;
    register_ok(&app, &bob).await;
    let ann_id: i64 = app.query_one("SELECT id FROM outbox WHERE payload->>'to' = $1", &[&ann]).await;
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&queue.stream).await.unwrap();
    let lost: Vec<&str> = entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("message_id") == Some(ann_id.to_string()))
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(lost.len(), 1);
    let _: usize = conn.xdel(&queue.stream, &lost).await.unwrap();

    // Both rows are published and unsettled past the (zero) redelivery grace: ann's, whose
    // message is gone, and bob's, whose original is still queued and now arrives twice.
    let report = outbox::sweep(app.pool(), publisher.as_ref(), &sweep_now()).await.unwrap();
    assert_eq!((report.republished, report.failed), (2, 0));
    assert_eq!(stream_len(&mut conn, &queue.stream).await, 3);

    let mails = MailLog::new();
    let pipeline = start_pipeline(&app, consumer, mails.mailer());
    eventually(Duration::from_secs(30), "both mails settled and all three entries acknowledged", || async {
        let mut conn = redis(&queue.url).await;
        settled(&app).await == 2
            && stream_len(&mut conn, &queue.stream).await == 0
            && pending(&mut conn, &queue).await == 0
    })
    .await;
    pipeline.stop().await;

    assert_eq!((mails.count_to(&ann), mails.count_to(&bob)), (1, 1), "{:?}", mails.mails());
    assert_eq!(delivery_rows(&app).await, (2, 2));
    let again = outbox::sweep(app.pool(), publisher.as_ref(), &sweep_now()).await.unwrap();
    assert_eq!(again.republished, 0);
}

#[tokio::test]
async fn a_message_deleted_from_the_sqs_queue_is_republished_and_sent_once() {
    lost_from_sqs_then_republished_and_sent_once(MailEvent::Registration).await;
}

#[tokio::test]
async fn a_lost_order_confirmation_is_republished_and_sent_once() {
    lost_from_sqs_then_republished_and_sent_once(MailEvent::Order).await;
}

#[tokio::test]
async fn a_lost_cancellation_is_republished_and_sent_once() {
    lost_from_sqs_then_republished_and_sent_once(MailEvent::Cancel).await;
}

/// Every message `event` published is lost (taken off the queue without its mail being
/// sent): the sweeper republishes each and each mail goes out once.
async fn lost_from_sqs_then_republished_and_sent_once(event: MailEvent) {
    let localstack = LocalStack::queues(5, 5).await;
    let publisher: Arc<dyn Publisher> = Arc::new(localstack.queue());
    let app = TestApp::spawn_with_publisher(Some(publisher.clone())).await;
    let consumer = Arc::new(localstack.queue());

    let Sent { to, subjects } = event.happen(&app).await;
    let rows = subjects.len();
    assert_eq!(count(&app, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL").await, rows as i64);
    let mut taken = Vec::new();
    let start = Instant::now();
    while taken.len() < rows {
        assert!(start.elapsed() < Duration::from_secs(30), "the published messages never arrived");
        taken.extend(consumer.receive(10).await.unwrap());
    }
    assert_eq!(taken.len(), rows);
    for message in &taken {
        consumer.ack(message).await.unwrap();
    }

    let report = outbox::sweep(app.pool(), publisher.as_ref(), &sweep_now()).await.unwrap();
    assert_eq!((report.republished, report.failed), (rows as u64, 0));

    let mails = MailLog::new();
    let pipeline = start_pipeline(&app, consumer, mails.mailer());
    eventually(Duration::from_secs(30), "the mails settled", || async { settled(&app).await == rows as i64 }).await;
    pipeline.stop().await;

    assert_eq!(mails.count_to(&to), rows);
    assert_eq!(mails.mails().len(), rows);
    for subject in &subjects {
        assert_eq!(mails.mails().iter().filter(|m| m["subject"] == subject.as_str()).count(), 1, "{subject}");
    }
    assert_eq!(delivery_rows(&app).await, (rows as i64, rows as i64));
}

#[tokio::test]
async fn a_mail_sent_by_the_previous_release_is_republished_once_then_settled_without_a_second_mail() {
    // The previous release records the delivery but does not settle the outbox row: the
    // sweeper republishes it once, and the worker, finding the mail sent, settles it.
    let app = TestApp::spawn().await;
    let ann = unique_email("ann");
    register_ok(&app, &ann).await;
    let id: i64 = app.query_one("SELECT id FROM outbox", &[]).await;
    let mut event = sqs_fixture();
    event["Records"] = json!([event["Records"][0].clone()]);
    event["Records"][0]["body"] = json!(json!({"id": id, "kind": "welcome_email", "payload": {"to": ann}}).to_string());
    let event: SqsEvent = serde_json::from_value(event).unwrap();
    let mails = MailLog::new();
    let worker = Worker::new(app.pool().clone(), mails.mailer(), WorkerOptions::default());
    assert!(worker.handle_sqs(event.clone()).await.batch_item_failures.is_empty());
    app.query_one::<i64>("WITH u AS (UPDATE outbox SET settled_at = NULL RETURNING id) SELECT count(*) FROM u", &[])
        .await;

    let publisher = RecordingPublisher::default();
    assert_eq!(outbox::sweep(app.pool(), &publisher, &sweep_now()).await.unwrap().republished, 1);
    assert!(worker.handle_sqs(event).await.batch_item_failures.is_empty());
    assert_eq!(settled(&app).await, 1);
    assert_eq!(outbox::sweep(app.pool(), &publisher, &sweep_now()).await.unwrap().republished, 0);
    assert_eq!(mails.count_to(&ann), 1);
    assert_eq!(delivery_rows(&app).await, (1, 1));
}
