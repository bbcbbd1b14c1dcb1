#[tokio::main]
async fn main() -> Result<(), common::lambda::Error> {
    common::lambda::run_http(get_product::routes).await
}
