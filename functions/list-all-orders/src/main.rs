use common::lambda::{Error, run_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(list_all_orders::LAMBDA).await
}
