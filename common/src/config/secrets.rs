//! Client of the "AWS Parameters and Secrets Lambda Extension" layer: a local HTTP cache
//! of Secrets Manager on `localhost:2773`. Going through it keeps the AWS SDK (and its TLS
//! stack and credential chain) out of every function that does not otherwise call AWS,
//! which is what keeps their cold starts in single-digit milliseconds. AWS documents it
//! as callable only in the INVOKE phase, so secret-backed settings are loaded on the
//! first invocation (see `crate::lambda`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::{ConfigError, Env, parsed, verbatim};

pub const DEFAULT_EXTENSION_PORT: u16 = 2773;

/// Client of the Parameters and Secrets Lambda Extension's local HTTP cache.
pub struct SecretsExtension {
    port: u16,
    /// The extension authenticates callers with the function's session token.
    token: Option<String>,
}

#[derive(Deserialize)]
struct SecretValue {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// Attempts while the extension is not serving yet (connection refused, or its
/// "not ready" 400): it starts alongside the function, not before it.
const EXTENSION_ATTEMPTS: u32 = 20;
const EXTENSION_RETRY_DELAY: Duration = Duration::from_millis(50);
const EXTENSION_TIMEOUT: Duration = Duration::from_secs(5);

impl SecretsExtension {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            port: parsed(env, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", DEFAULT_EXTENSION_PORT)?,
            token: verbatim(env, "AWS_SESSION_TOKEN"),
        })
    }

    /// `SecretString` of the secret `secret_id` (an ARN or name).
    pub async fn get(&self, secret_id: &str) -> Result<String, ConfigError> {
        let fail = |reason: String| ConfigError::Secret { secret_id: secret_id.to_owned(), reason };
        let token = self
            .token
            .as_deref()
            .ok_or_else(|| fail("AWS_SESSION_TOKEN is not set (is this running in Lambda?)".into()))?;
        let uri = format!("http://127.0.0.1:{}/secretsmanager/get?secretId={}", self.port, query_escape(secret_id));
        let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut last = String::new();
        for attempt in 1..=EXTENSION_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(EXTENSION_RETRY_DELAY).await;
            }
            let request = http::Request::get(&uri)
                .header("X-Aws-Parameters-Secrets-Token", token)
                .body(Empty::new())
                .map_err(|err| fail(err.to_string()))?;
            let response = match tokio::time::timeout(EXTENSION_TIMEOUT, client.request(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(err)) if err.is_connect() => {
                    last = format!("cannot connect to 127.0.0.1:{}: {err}", self.port);
                    continue;
                }
                Ok(Err(err)) => return Err(fail(err.to_string())),
                Err(_) => return Err(fail(format!("no answer within {EXTENSION_TIMEOUT:?}"))),
            };
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|err| fail(err.to_string()))?.to_bytes();
            if status.is_success() {
                let value: SecretValue = serde_json::from_slice(&body).map_err(|err| fail(err.to_string()))?;
                return value
                    .secret_string
                    .ok_or_else(|| fail("the secret has no SecretString (binary secrets are not supported)".into()));
            }
            // The body may say why (access denied, not found); it never holds the secret.
            last = format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim());
            if !(status.is_server_error() || String::from_utf8_lossy(&body).contains("not ready")) {
                break;
            }
        }
        Err(fail(last))
    }
}

/// Percent-encodes everything outside the URL "unreserved" set (ARNs contain `:` and `/`).
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env::{env, fake_extension};

    #[test]
    fn query_escape_encodes_arn_separators() {
        assert_eq!(
            query_escape("arn:aws:secretsmanager:eu-west-1:1:secret:a/b+c"),
            "arn%3Aaws%3Asecretsmanager%3Aeu-west-1%3A1%3Asecret%3Aa%2Fb%2Bc"
        );
    }

    /// A fake extension: answers each connection with the response `respond` picks for

    #[tokio::test]
    async fn extension_errors_are_reported_and_not_ready_is_retried() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let (port, _heads) = fake_extension(move |head| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                (400, "not ready to serve traffic, please wait".into())
            } else if head.contains("secretId=missing") {
                (400, r#"{"message":"ResourceNotFoundException"}"#.into())
            } else {
                (200, serde_json::json!({ "SecretString": "value" }).to_string())
            }
        })
        .await;
        let port = port.to_string();
        let ext = SecretsExtension::from_env(&env(&[
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
        ]));
        let ext = match ext {
            Ok(ext) => ext,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(ext.get("present").await.ok().as_deref(), Some("value"));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        let err = ext.get("missing").await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ResourceNotFoundException"), "{err}");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3, "a 4xx is not retried");

        let no_token = SecretsExtension::from_env(&env(&[("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port)]));
        let err = match no_token {
            Ok(ext) => ext.get("present").await.err().map(|e| e.to_string()),
            Err(err) => Some(err.to_string()),
        };
        assert!(err.is_some_and(|e| e.contains("AWS_SESSION_TOKEN")));
    }
}
