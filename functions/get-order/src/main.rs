use common::lambda::{Error, Needs, run_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(Needs::DATABASE.jwt(), get_order::api).await
}
