//! GET /api/v1/openapi.json: the API's contract, the document `make test` checks the
//! implementation against. The function also takes the HTTP API's `$default` route (what
//! no other function owns) and answers it as the local server's router does.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use common::AppError;
use common::http::{Routes, matches_template};
use common::lambda::{HttpFunction, Needs};

const DOCUMENT: &str = include_str!("../openapi.json");

/// This function on Lambda (its `main` runs it): the contract and the `$default` route take
/// no state, so it reads no secret and opens no pool.
pub const LAMBDA: HttpFunction<()> = HttpFunction::new(Needs::NOTHING, api::<()>);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them. They take any state and use none: no pool, no secret.
pub fn api<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    Routes::new()
        .get("/api/v1/openapi.json", || async {
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "max-age=300")], DOCUMENT)
        })
        .catch_all(unrouted)
}

pub fn routes<S: Clone + Send + Sync + 'static>(state: S) -> Router {
    api().with_state(state)
}

/// API Gateway sends every method and path no route names to `$default`, here: a path of
/// the document with a method it does not list is 405 with `Allow`, as the local router
/// answers it (axum matches the path, then the method), and any other path the JSON 404.
/// Locally this only sees unknown paths: a known path never reaches a wildcard.
async fn unrouted(uri: Uri) -> Response {
    match DOCUMENTED_PATHS.iter().find(|(template, _)| matches_template(template, uri.path())) {
        Some((_, allow)) => ([(header::ALLOW, allow.as_str())], AppError::MethodNotAllowed).into_response(),
        None => AppError::RouteNotFound(uri.path().to_owned()).into_response(),
    }
}

/// The document's path templates (`/api/v1/products/{id}`) with the methods each lists
/// (`GET,POST`), read once.
static DOCUMENTED_PATHS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
    let Some(paths) = document["paths"].as_object() else { return Vec::new() };
    paths
        .iter()
        .map(|(template, operations)| {
            let methods: Vec<String> = operations
                .as_object()
                .map(|ops| ops.keys().map(|method| method.to_ascii_uppercase()).collect())
                .unwrap_or_default();
            (template.clone(), methods.join(","))
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_its_paths_and_methods() {
        let products = DOCUMENTED_PATHS.iter().find(|(path, _)| path == "/api/v1/products");
        assert_eq!(products.map(|(_, allow)| allow.as_str()), Some("GET,POST"), "{:?}", *DOCUMENTED_PATHS);
    }
}
