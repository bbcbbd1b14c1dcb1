use std::pin::Pin;

use common::AppState;
use common::config::ProcessEnv;
use common::lambda::Error;
use common::queue::{self, QueueConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    common::lambda::run_http_with(register::routes, with_publisher).await
}

/// Register publishes the welcome email after commit: its state carries the publisher.
fn with_publisher(state: AppState) -> Pin<Box<dyn Future<Output = Result<AppState, Error>> + Send>> {
    Box::pin(async move {
        Ok(match QueueConfig::from_env(&ProcessEnv)? {
            Some(config) => state.with_publisher(queue::publisher(&config).await?),
            None => {
                tracing::warn!("QUEUE_URL is not set: welcome emails wait in the outbox");
                state
            }
        })
    })
}
