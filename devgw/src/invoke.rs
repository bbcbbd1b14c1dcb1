//! Lambda's Invoke API, as `cargo lambda watch` serves it:
//! `POST /2015-03-31/functions/<binary>/invocations` with the event as the body. AWS
//! answers a function error with 200 and `X-Amz-Function-Error`, `cargo lambda watch` with
//! a 500 and the error as body: both are a failed invocation here. Each function may run
//! under its own `cargo lambda watch` (its own environment), so each may have its own
//! Invoke API address.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("invoking {function}: {reason}")]
    Transport { function: String, reason: String },
    #[error("{function} failed: {body}")]
    Function { function: String, body: String },
}

#[derive(Clone)]
pub struct Invoker {
    base: String,
    /// Functions served elsewhere than `base`, by binary.
    own: Arc<BTreeMap<String, String>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Invoker {
    /// `base` is the address of the Invoke API, e.g. `http://127.0.0.1:9001`.
    pub fn new(base: &str) -> Self {
        Self::per_function(base, BTreeMap::new())
    }

    /// Invokes each function of `own` at its own address, the others at `base`.
    pub fn per_function(base: &str, own: BTreeMap<String, String>) -> Self {
        let own = own.into_iter().map(|(function, base)| (function, base.trim_end_matches('/').to_owned())).collect();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            own: Arc::new(own),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Invokes `function` synchronously and returns its JSON answer.
    pub async fn invoke(&self, function: &str, event: &Value) -> Result<Value, InvokeError> {
        let transport = |reason: String| InvokeError::Transport { function: function.to_owned(), reason };
        let base = self.own.get(function).unwrap_or(&self.base);
        let request = http::Request::post(format!("{base}/2015-03-31/functions/{function}/invocations"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(event.to_string())))
            .map_err(|err| transport(err.to_string()))?;
        let response = self.client.request(request).await.map_err(|err| transport(err.to_string()))?;
        let status = response.status();
        let failed = response.headers().contains_key("x-amz-function-error");
        let body = response.into_body().collect().await.map_err(|err| transport(err.to_string()))?.to_bytes();
        if failed || !status.is_success() {
            return Err(InvokeError::Function {
                function: function.to_owned(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|err| transport(format!("answer is not JSON: {err}")))
    }
}
