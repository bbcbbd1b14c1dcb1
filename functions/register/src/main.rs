use common::lambda::{Error, run_http};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_http(register::LAMBDA).await
}
