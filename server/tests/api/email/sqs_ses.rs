//! The mails (welcome, order confirmation, cancellation) through SQS and SES on LocalStack
//! (the deployed shape's queue and mail service): each delivered once, and a message that
//! always fails ends in the DLQ.

use common::config::QueueConfig;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use common::mail::Mailer;
use common::queue::sqs::SqsQueue;
use common::queue::{Consumer, Publisher};
use email_worker::Worker;
use serde_json::{Value, json};
use testkit::app::TestApp;
use testkit::services::localstack_url;
use testkit::unique_email;
use testkit::{eventually, unique};

use super::{
    FailingMailer, MailEvent, MailLog, Sent, delivery_rows, fast_worker, register_ok, run_worker, start_pipeline,
};

/// An SQS queue and its DLQ of this test's own on LocalStack, and the clients that reach
/// them and SES.
pub(crate) struct LocalStack {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) ses: aws_sdk_ses::Client,
    pub(crate) url: String,
    pub(crate) dlq: String,
    pub(crate) config: QueueConfig,
}

impl LocalStack {
    /// A received message is invisible for `visibility` seconds, and goes to the DLQ after
    /// `max_receives` receives.
    pub(crate) async fn queues(visibility: u32, max_receives: u32) -> Self {
        let sdk = common::aws::localstack_config(&localstack_url()).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let (url, dlq) = sqs_queues(&sqs, visibility, max_receives).await;
        let config = QueueConfig { wait: Duration::from_secs(1), ..QueueConfig::new(&url) };
        Self { ses: aws_sdk_ses::Client::new(&sdk), sqs, url, dlq, config }
    }

    /// A client of the queue, to publish or consume.
    pub(crate) fn queue(&self) -> SqsQueue {
        SqsQueue::with_client(self.sqs.clone(), &self.config)
    }
}

/// A queue and its DLQ of this test's own on LocalStack (redrive after `max_receives`).
async fn sqs_queues(client: &aws_sdk_sqs::Client, visibility: u32, max_receives: u32) -> (String, String) {
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

/// The mails LocalStack's SES accepted for `to`.
pub(crate) async fn ses_mails_to(to: &str) -> Vec<Value> {
    let all = testkit::http::get_json(&format!("{}/_aws/ses", localstack_url())).await;
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
    delivers_once_through_sqs_and_ses(MailEvent::Registration).await;
}

#[tokio::test]
async fn an_order_confirmation_is_delivered_once_through_sqs_and_ses() {
    delivers_once_through_sqs_and_ses(MailEvent::Order).await;
}

#[tokio::test]
async fn a_cancellation_is_delivered_once_through_sqs_and_ses() {
    delivers_once_through_sqs_and_ses(MailEvent::Cancel).await;
}

/// `event`'s mails go through the deployed shape's queue and mail service, each once.
async fn delivers_once_through_sqs_and_ses(event: MailEvent) {
    let localstack = LocalStack::queues(5, 5).await;
    let (sqs, queue_url) = (&localstack.sqs, localstack.url.clone());
    let sender = common::config::MailConfig::DEFAULT_FROM;
    let ses = localstack.ses.clone();
    ses.verify_email_identity().email_address(sender).send().await.expect("verify sender");

    let publisher: Arc<dyn Publisher> = Arc::new(localstack.queue());
    let app = TestApp::spawn_with_publisher(Some(publisher)).await;
    let consumer: Arc<dyn Consumer> = Arc::new(localstack.queue());
    let mailer: Arc<dyn Mailer> = Arc::new(common::mail::ses::SesMailer::with_client(ses, sender));
    let pipeline = start_pipeline(&app, consumer, mailer);

    let Sent { to, subjects } = event.happen(&app).await;
    let expected = subjects.len();
    eventually(Duration::from_secs(30), "the mails at LocalStack's SES", || async {
        ses_mails_to(&to).await.len() == expected
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pipeline.stop().await;

    let sent = ses_mails_to(&to).await;
    assert_eq!(sent.len(), expected, "{sent:?}");
    let mut got: Vec<&str> = sent.iter().map(|mail| mail["Subject"].as_str().unwrap()).collect();
    got.sort_unstable();
    let mut subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();
    subjects.sort_unstable();
    assert_eq!(got, subjects, "{sent:?}");
    for mail in &sent {
        assert_eq!(mail["Source"], sender);
        let html = mail["Body"]["html_part"].as_str().unwrap();
        assert!(html.contains(&format!("<h1>{}</h1>", mail["Subject"].as_str().unwrap())), "{sent:?}");
    }
    if let MailEvent::Registration = event {
        assert!(sent[0]["Body"]["text_part"].as_str().unwrap().contains(&to), "{sent:?}");
        assert!(sent[0]["Body"]["html_part"].as_str().unwrap().contains("<h1>Welcome"), "{sent:?}");
    }
    let rows = expected as i64;
    assert_eq!(delivery_rows(&app).await, (rows, rows));
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
    let localstack = LocalStack::queues(1, 5).await;
    let publisher: Arc<dyn Publisher> = Arc::new(localstack.queue());
    let app = TestApp::spawn_with_publisher(Some(publisher)).await;
    let mails = MailLog::new();
    let mailer = Arc::new(FailingMailer { fail_all: true, fail_for: HashSet::new(), log: mails.mailer() });
    let consumer = localstack.queue();
    let worker = Worker::new(app.pool().clone(), mailer, fast_worker());
    let (stop, running) = run_worker(worker, consumer);

    register_ok(&app, &unique_email("ann")).await;
    let dlq = SqsQueue::with_client(localstack.sqs.clone(), &QueueConfig::new(&localstack.dlq));
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
