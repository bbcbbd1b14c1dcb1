//! The Parameters and Secrets Lambda Extension's HTTP interface, served locally:
//! `GET /secretsmanager/get?secretId=...` with the `X-Aws-Parameters-Secrets-Token` header,
//! answered from LocalStack's Secrets Manager. The functions read their secrets through
//! `common::config::SecretsExtension` exactly as in AWS; only the port differs.

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

pub const TOKEN_HEADER: &str = "x-aws-parameters-secrets-token";

pub struct SecretsProxy {
    /// Secrets Manager's endpoint (LocalStack's gateway).
    endpoint: String,
    /// What the functions send as their session token (their `AWS_SESSION_TOKEN`).
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl SecretsProxy {
    pub fn new(endpoint: &str, token: &str) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != "/secretsmanager/get" {
            return answer(StatusCode::NOT_FOUND, "not found");
        }
        // The extension refuses callers without the function's token.
        if request.headers().get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) != Some(self.token.as_str()) {
            return answer(StatusCode::UNAUTHORIZED, "missing or wrong X-Aws-Parameters-Secrets-Token");
        }
        let query = request.uri().query().unwrap_or_default();
        let Some(secret_id) = query_value(query, "secretId") else {
            return answer(StatusCode::BAD_REQUEST, "secretId is required");
        };
        let mut input = json!({ "SecretId": secret_id });
        for (param, field) in [("versionId", "VersionId"), ("versionStage", "VersionStage")] {
            if let Some(value) = query_value(query, param) {
                input[field] = value.into();
            }
        }
        match self.get_secret_value(&input.to_string()).await {
            Ok((status, body)) => answer(status, body),
            Err(reason) => answer(StatusCode::BAD_GATEWAY, reason),
        }
    }

    /// Secrets Manager's `GetSecretValue`, whose JSON answer the extension returns as is.
    async fn get_secret_value(&self, input: &str) -> Result<(StatusCode, Bytes), String> {
        let request = http::Request::post(format!("{}/", self.endpoint))
            .header(CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", "secretsmanager.GetSecretValue")
            .body(Full::new(Bytes::from(input.to_owned())))
            .map_err(|err| err.to_string())?;
        let response = self.client.request(request).await.map_err(|err| format!("Secrets Manager: {err}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|err| err.to_string())?.to_bytes();
        Ok((status, body))
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// The percent-decoded value of `key` in a query string.
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| percent_decode(v))
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let query = "secretId=arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A0%3Asecret%3Aa%2Fb&versionStage=AWSCURRENT";
        assert_eq!(query_value(query, "secretId").as_deref(), Some("arn:aws:secretsmanager:us-east-1:0:secret:a/b"));
        assert_eq!(query_value(query, "versionStage").as_deref(), Some("AWSCURRENT"));
        assert_eq!(query_value(query, "versionId"), None);
    }
}
