//! AWS SDK configuration, loaded once per process (per Lambda execution environment).
//! The standard chain: region, credentials and `AWS_ENDPOINT_URL` (or the per-service
//! `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_SES`) from the environment, so the same
//! binaries talk to LocalStack when those point at it.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Bounds every SDK call: a hung endpoint fails the call instead of the whole batch.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(8))
        .operation_timeout(Duration::from_secs(20))
        .build()
}

/// The SDK defaults with our timeouts and an HTTPS client on rustls with ring, the one
/// crypto stack of every binary (the SDK's default client would bring aws-lc as well).
fn defaults() -> ConfigLoader {
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts()).http_client(http)
}

/// The SDK configuration from the environment.
pub async fn sdk_config() -> SdkConfig {
    defaults().load().await
}

/// The SDK configuration for a LocalStack at `endpoint` (tests and local tools): its fixed
/// `test` credentials and region `us-east-1`, whatever the environment says.
pub async fn localstack_config(endpoint: &str) -> SdkConfig {
    defaults()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "localstack"))
        .load()
        .await
}
