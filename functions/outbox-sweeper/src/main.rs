//! The outbox sweeper on Lambda, run by an EventBridge schedule (every minute): republishes
//! the outbox messages whose mail is not settled, then deletes what is past retention (see
//! `common::outbox::sweep`, `common::retention`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use common::config::ProcessEnv;
use common::config::SweepConfig;
use common::lambda::{Error, Lazy, Needs, QueueNeed, Resources, run_events};
use common::outbox;
use lambda_runtime::LambdaEvent;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sweep = SweepConfig::from_env(&ProcessEnv)?;
    let needs = Needs::DATABASE.queue(QueueNeed::Required);
    run_events(needs, move |_: LambdaEvent<EventBridgeEvent>, resources: Lazy<Resources>| {
        let sweep = sweep.clone();
        async move {
            let resources = resources.get().await?;
            let report = outbox::sweep(resources.pool()?, resources.publisher()?.as_ref(), &sweep).await?;
            tracing::info!(republished = report.republished, failed = report.failed, deleted = ?report.deleted, "outbox sweep done");
            Ok::<_, Error>(report)
        }
    })
    .await
}
