//! The outbox sweeper on Lambda, run by an EventBridge schedule (every minute): republishes
//! the outbox messages whose mail is not settled, then deletes what is past retention (see
//! `common::outbox::sweep`, `common::retention`). The pool
//! is built on the first invocation (the database URL may come through the secrets
//! extension, callable only in the INVOKE phase).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use common::config::{self, ProcessEnv};
use common::outbox::{self, SweepConfig, SweepReport};
use common::queue::{self, QueueConfig};
use common::{db, telemetry};
use deadpool_postgres::Pool;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tokio::sync::OnceCell;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let queue = QueueConfig::required(&ProcessEnv)?;
    let publisher = queue::publisher(&queue).await?;
    let sweep = SweepConfig::from_env(&ProcessEnv)?;
    let pool: OnceCell<Pool> = OnceCell::new();
    let (pool, publisher, sweep) = (&pool, publisher.as_ref(), &sweep);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<EventBridgeEvent>| async move {
        let pool =
            pool.get_or_try_init(|| async { Ok::<_, Error>(db::pool(&config::database_url(&ProcessEnv).await?, 1)?) }).await?;
        let report: SweepReport = outbox::sweep(pool, publisher, sweep).await?;
        tracing::info!(republished = report.republished, failed = report.failed, deleted = ?report.deleted, "outbox sweep done");
        Ok::<_, Error>(report)
    }))
    .await
}
