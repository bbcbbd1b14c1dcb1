use common::lambda::{Error, Needs, run_events};

/// Builds its pool per invocation (see `migrate::handler`), so asks the bootstrap for none.
#[tokio::main]
async fn main() -> Result<(), Error> {
    run_events(Needs::NOTHING, |event, _| migrate::handler(event)).await
}
