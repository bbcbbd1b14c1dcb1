use common::lambda::{Error, Needs, run_http};

/// The contract and the `$default` route: no state, so no pool and no secret.
#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(Needs::NOTHING, openapi::api::<()>).await
}
