use common::lambda::{Error, Needs, run_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(Needs::DATABASE.jwt(), list_all_orders::api).await
}
