use common::lambda::{Error, Needs, QueueNeed, run_http};

/// Register publishes the welcome email after commit, when a queue is configured.
#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(Needs::DATABASE.jwt().queue(QueueNeed::IfConfigured), register::api).await
}
