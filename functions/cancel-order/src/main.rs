use common::lambda::{Error, Needs, QueueNeed, run_http};

/// Cancel publishes the cancellation mail after commit, when a queue is configured.
#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(Needs::DATABASE.jwt().queue(QueueNeed::IfConfigured), cancel_order::api).await
}
