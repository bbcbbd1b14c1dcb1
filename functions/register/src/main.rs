use common::queue::{self, QueueConfig};

#[tokio::main]
async fn main() -> Result<(), common::lambda::Error> {
    let state = common::lambda::init()?;
    let state = match QueueConfig::from_env()? {
        Some(config) => state.with_publisher(queue::publisher(&config).await?),
        None => {
            tracing::warn!("QUEUE_URL is not set: welcome emails wait in the outbox");
            state
        }
    };
    common::lambda::serve_http(state, register::routes).await
}
