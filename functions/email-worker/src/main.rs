//! The email worker on Lambda: SQS batches in, `batchItemFailures` out.

use common::mail::{self, MailConfig};
use common::{config, db, telemetry};
use email_worker::{Worker, WorkerOptions};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let pool = db::pool(&config::database_url().await?, 1)?;
    let mailer = mail::mailer(&MailConfig::from_env()?).await?;
    let worker = Worker::new(pool.clone(), mailer, WorkerOptions::from_env()?);
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move { pool.close() }).await;
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
        Ok::<_, Error>(worker.handle_sqs(event.payload).await)
    }))
    .await
}
