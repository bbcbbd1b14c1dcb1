#[tokio::main]
async fn main() -> Result<(), common::lambda::Error> {
    common::lambda::run_http(create_product::routes).await
}
