//! The email worker on Lambda: SQS batches in, `batchItemFailures` out.
//!
//! The pool and mailer are built once per execution environment, on the first batch: the
//! database URL may come through the Parameters and Secrets extension, which AWS documents
//! as callable only in the INVOKE phase.

use aws_lambda_events::event::sqs::SqsEvent;
use common::config::{self, ProcessEnv};
use common::mail::{self, MailConfig};
use common::{db, telemetry};
use email_worker::{Worker, WorkerOptions};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tokio::sync::OnceCell;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let options = WorkerOptions::from_env(&ProcessEnv)?;
    let mail = MailConfig::from_env(&ProcessEnv)?;
    let worker: OnceCell<Worker> = OnceCell::new();
    let (worker, options, mail) = (&worker, &options, &mail);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let worker = worker
            .get_or_try_init(|| async {
                let pool = db::pool(&config::database_url(&ProcessEnv).await?, 1)?;
                Ok::<_, Error>(Worker::new(pool, mail::mailer(mail).await?, options.clone()))
            })
            .await?;
        Ok::<_, Error>(worker.handle_sqs(event.payload).await)
    }))
    .await
}
