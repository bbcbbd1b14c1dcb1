//! The outbox sweeper on Lambda, run by an EventBridge schedule (every minute): republishes
//! the outbox messages the queue never acknowledged (see `common::outbox::sweep`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use common::outbox::{self, SweepConfig, SweepReport};
use common::queue::{self, QueueConfig};
use common::{config, db, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let pool = db::pool(&config::database_url().await?, 1)?;
    let queue = QueueConfig::from_env()?.ok_or(config::ConfigError::Missing("QUEUE_URL"))?;
    let publisher = queue::publisher(&queue).await?;
    let sweep = SweepConfig::from_env()?;
    lambda_runtime::spawn_graceful_shutdown_handler({
        let pool = pool.clone();
        move || async move { pool.close() }
    })
    .await;
    let (pool, publisher, sweep) = (&pool, publisher.as_ref(), &sweep);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<EventBridgeEvent>| async move {
        let report: SweepReport = outbox::sweep(pool, publisher, sweep).await?;
        tracing::info!(republished = report.republished, failed = report.failed, "outbox sweep done");
        Ok::<_, Error>(report)
    }))
    .await
}
