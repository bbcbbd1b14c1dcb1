//! devgw's own test double: a fake Invoke API standing in for `cargo lambda watch` (the
//! rest of the test support is in `testkit`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::net::TcpListener;

/// What a fake function answers: `Ok(answer)`, or `Err(body)` for a function error.
pub type Answer = Result<Value, String>;

/// Every invocation as `(function, event)`.
pub type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// A fake Invoke API: records each invocation and answers what `respond` says.
pub async fn fake_functions(respond: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let respond = Arc::new(respond);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let seen = calls.clone();
    tokio::spawn(devgw::serve(listener, move |request: http::Request<hyper::body::Incoming>, _| {
        let (respond, seen) = (respond.clone(), seen.clone());
        async move {
            let function = request
                .uri()
                .path()
                .strip_prefix("/2015-03-31/functions/")
                .and_then(|rest| rest.strip_suffix("/invocations"))
                .unwrap_or_default()
                .to_owned();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let event: Value = serde_json::from_slice(&body).unwrap();
            let answer = respond(&function, &event);
            seen.lock().unwrap().push((function, event));
            match answer {
                Ok(value) => Response::new(Full::new(Bytes::from(value.to_string()))),
                Err(error) => {
                    let mut response = Response::new(Full::new(Bytes::from(error)));
                    *response.status_mut() = StatusCode::OK;
                    response.headers_mut().insert("x-amz-function-error", "Unhandled".parse().unwrap());
                    response
                }
            }
        }
    }));
    (format!("http://{address}"), calls)
}
