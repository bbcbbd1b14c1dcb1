use common::lambda::{Error, Needs, QueueNeed, run_http};

/// Create-order publishes the confirmation mail after commit, when a queue is configured.
#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(Needs::DATABASE.jwt().queue(QueueNeed::IfConfigured), create_order::api).await
}
