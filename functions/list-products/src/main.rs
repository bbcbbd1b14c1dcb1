use common::lambda::{Error, run_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(list_products::LAMBDA).await
}
