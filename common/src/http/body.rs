//! The whole request body, read before routing.
//!
//! On a keep-alive connection a request's unread body sits where the next request starts.
//! When a handler answers without reading it (401 before the JSON extractor looks at the
//! body, 403, 404, 415, 413), hyper writes that answer as reusable (no `Connection: close`)
//! and closes the connection right after it, since it cannot find the next request. A client
//! that sends its next request on the connection in between (httpx and other clients that
//! write head and body separately hit this whenever the body arrives after the answer) gets
//! no answer at all. Reading the body first leaves every connection at a request boundary;
//! bodies are small ([`BODY_LIMIT`]) and the JSON handlers buffer them anyway. In Lambda
//! the body is already in memory, and this is one copy of it.

use axum::body::{Body, HttpBody, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::LengthLimitError;

use super::BODY_LIMIT;
use crate::error::AppError;

/// Runs the rest of the stack on the fully read body; a body over [`BODY_LIMIT`] or one that
/// cannot be read is answered here, and the connection closed, since its end is not known.
pub(super) async fn read_whole_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // A declared length over the limit is refused before reading, so a client waiting for
    // `100 Continue` does not upload it.
    if body.size_hint().lower() > BODY_LIMIT as u64 {
        return closing(AppError::PayloadTooLarge { limit: BODY_LIMIT });
    }
    match to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(err) if std::error::Error::source(&err).is_some_and(|source| source.is::<LengthLimitError>()) => {
            closing(AppError::PayloadTooLarge { limit: BODY_LIMIT })
        }
        Err(err) => closing(AppError::MalformedJson(format!("cannot read the request body: {err}"))),
    }
}

/// `error`'s answer, telling the client that the connection ends with it.
fn closing(error: AppError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
