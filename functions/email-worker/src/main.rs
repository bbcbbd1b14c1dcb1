//! The email worker on Lambda: SQS batches in, `batchItemFailures` out.

use aws_lambda_events::event::sqs::SqsEvent;
use common::config::ProcessEnv;
use common::lambda::{Error, Lazy, Needs, Resources, run_events};
use email_worker::{Worker, WorkerOptions};
use lambda_runtime::LambdaEvent;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let options = WorkerOptions::from_env(&ProcessEnv)?;
    run_events(Needs::DATABASE.mailer(), move |event: LambdaEvent<SqsEvent>, resources: Lazy<Resources>| {
        let options = options.clone();
        async move {
            let resources = resources.get().await?;
            let worker = Worker::new(resources.pool()?.clone(), resources.mailer()?.clone(), options);
            Ok::<_, Error>(worker.handle_sqs(event.payload).await)
        }
    })
    .await
}
