//! A plain HTTP/1 client for tests that talk to a server the kit does not start.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Sends `request`, returns status, headers and body.
pub async fn send(request: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Bytes) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("HTTP request");
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.expect("response body").to_bytes())
}

pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).expect("GET request")
}

pub fn post(url: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(url).header("content-type", content_type).body(Full::new(body.into())).expect("POST request")
}

/// GETs `url` and parses its body as JSON.
pub async fn get_json(url: &str) -> Value {
    let (_, _, body) = send(get(url)).await;
    serde_json::from_slice(&body).expect("JSON")
}
