use common::lambda::{Error, run_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(get_order::LAMBDA).await
}
