#[tokio::main]
async fn main() -> Result<(), common::lambda::Error> {
    common::lambda::run_http(openapi::routes).await
}
