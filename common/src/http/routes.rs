//! A function's routes, named once: [`Routes`] builds the axum router and records the
//! `(method, path)` table it serves, which the local server, the Lambda entry and the
//! template drift test (`server/tests/infra_drift.rs`) read instead of the source.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, any, on};

/// The router being built and its table of `(method, path)`.
pub struct Routes<S = ()> {
    router: Router<S>,
    table: Vec<(Method, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self { router: Router::new(), table: Vec::new() }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::GET, MethodFilter::GET, path, handler)
    }

    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::POST, MethodFilter::POST, path, handler)
    }

    pub fn patch<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::PATCH, MethodFilter::PATCH, path, handler)
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    fn on<H: Handler<T, S>, T: 'static>(
        mut self,
        method: Method,
        filter: MethodFilter,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }

    /// Every method of every path no route names (the HTTP API's `$default` route). Not in
    /// the table: it is the API's fallback, not a route of it.
    pub fn catch_all<H: Handler<T, S>, T: 'static>(mut self, handler: H) -> Self {
        self.router = self.router.route("/{*path}", any(handler));
        self
    }

    /// Both sets of routes on one router (the local server).
    pub fn merge(mut self, other: Self) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    /// The `(method, path)` pairs these routes serve, in declaration order.
    pub fn table(&self) -> &[(Method, &'static str)] {
        &self.table
    }

    /// The router, serving `state`.
    pub fn with_state(self, state: S) -> Router {
        self.router.with_state(state)
    }
}

/// Whether `path` is an instance of `template`, whose `{name}` segments take any
/// non-empty segment: what API Gateway and the router match a route's path with.
pub fn matches_template(template: &str, path: &str) -> bool {
    let (mut template, mut path) = (template.split('/'), path.split('/'));
    loop {
        match (template.next(), path.next()) {
            (None, None) => return true,
            (Some(t), Some(p)) if t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_table_lists_what_the_router_serves() {
        let routes = Routes::<()>::new()
            .get("/things", || async { "list" })
            .post("/things", || async { "created" })
            .get("/things/{id}", || async { "one" })
            .catch_all(|| async { StatusCode::IM_A_TEAPOT });
        let table: Vec<_> = routes.table().iter().map(|(m, p)| (m.as_str(), *p)).collect();
        assert_eq!(table, [("GET", "/things"), ("POST", "/things"), ("GET", "/things/{id}")]);
        let router = routes.with_state(());
        for (method, path, status) in [
            ("GET", "/things", StatusCode::OK),
            ("POST", "/things", StatusCode::OK),
            ("GET", "/things/7", StatusCode::OK),
            ("DELETE", "/things", StatusCode::METHOD_NOT_ALLOWED),
            ("GET", "/other", StatusCode::IM_A_TEAPOT),
        ] {
            let request = Request::builder().method(method).uri(path).body(Body::empty());
            let response = match request {
                Ok(request) => router.clone().oneshot(request).await,
                Err(err) => panic!("{err}"),
            };
            assert_eq!(response.map(|r| r.status()).ok(), Some(status), "{method} {path}");
        }
    }

    #[test]
    fn paths_match_their_templates_segment_by_segment() {
        assert!(matches_template("/api/v1/products/{id}", "/api/v1/products/7"));
        assert!(matches_template("/api/v1/orders", "/api/v1/orders"));
        assert!(!matches_template("/api/v1/products/{id}", "/api/v1/products/"));
        assert!(!matches_template("/api/v1/products/{id}", "/api/v1/products/7/x"));
        assert!(!matches_template("/api/v1/orders", "/api/v1/orders/7"));
        assert!(!matches_template("/api/v1/orders", "/api/v1/order"));
    }
}
