//! Log set-up: JSON in Lambda (honouring AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL),
//! human-readable locally unless LOG_FORMAT=json; RUST_LOG filters in both.

use tracing_subscriber::EnvFilter;

pub fn init_lambda() {
    lambda_runtime::tracing::init_default_subscriber();
}

pub fn init_local() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
