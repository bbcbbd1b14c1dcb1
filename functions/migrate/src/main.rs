#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_lambda();
    lambda_runtime::run(lambda_runtime::service_fn(migrate::handler)).await
}
