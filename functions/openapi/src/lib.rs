//! GET /api/v1/openapi.json: the API's contract, the document `make test` checks the
//! implementation against.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use common::AppState;

const DOCUMENT: &str = include_str!("../openapi.json");

pub fn routes(_state: AppState) -> Router {
    Router::new().route(
        "/api/v1/openapi.json",
        get(|| async {
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "max-age=300")], DOCUMENT)
        }),
    )
}
