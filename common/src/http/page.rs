//! Keyset pagination and the links that announce the next page.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::domain::parse_integer;
use crate::error::AppError;

/// Keyset pagination from `?limit=&after=`: the items that come after the item with id
/// `after` in the listing's order (the start when absent), at most `limit` (default 50,
/// max 100) of them.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: Option<i64>,
    pub limit: i64,
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 100;

    /// Keeps the first `limit` of `items` (fetched with `limit + 1`) and, when there were
    /// more, the `Link: rel="next"` header value pointing after the last one kept.
    /// `filter` is the listing's own query (`status=placed`), which the link keeps; `after`
    /// writes an item's position as the query that continues after it (`after=42`).
    fn split<T>(
        &self,
        mut items: Vec<T>,
        after: impl Fn(&T) -> String,
        path: &str,
        filter: &str,
    ) -> (Vec<T>, Option<HeaderValue>) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if items.len() <= limit {
            return (items, None);
        }
        items.truncate(limit);
        let link = items.last().and_then(|last| {
            let filter = if filter.is_empty() { String::new() } else { format!("{filter}&") };
            HeaderValue::from_str(&format!("<{path}?{filter}limit={}&{}>; rel=\"next\"", self.limit, after(last))).ok()
        });
        (items, link)
    }

    /// The page as the API answers it: a bare JSON array, plus the `Link` header when
    /// another page follows. `rows` were fetched with [`Self::fetch_limit`].
    pub fn respond<T: Serialize>(&self, rows: Vec<T>, id: impl Fn(&T) -> i64, path: &str) -> Response {
        self.respond_filtered(rows, id, path, "")
    }

    /// [`Self::respond`] for a listing filtered by its own query parameters (`filter`,
    /// already URL-safe, such as `status=placed`), which the next page's link repeats.
    pub fn respond_filtered<T: Serialize>(
        &self,
        rows: Vec<T>,
        id: impl Fn(&T) -> i64,
        path: &str,
        filter: &str,
    ) -> Response {
        self.respond_after(rows, |item| format!("after={}", id(item)), path, filter)
    }

    /// [`Self::respond_filtered`] for a listing whose position is more than an id (a sort
    /// key and the id that breaks its ties): `after` writes an item's position as the
    /// URL-safe query that continues after it, such as `after=42&after_key=1999`.
    pub fn respond_after<T: Serialize>(
        &self,
        rows: Vec<T>,
        after: impl Fn(&T) -> String,
        path: &str,
        filter: &str,
    ) -> Response {
        let (items, next) = self.split(rows, after, path, filter);
        // Sized for a page at once: grown from `Json`'s 128 bytes, a 12 KB catalogue page
        // was copied seven times on its way to the socket.
        let mut body = Vec::with_capacity(ITEM_BYTES * items.len() + 2);
        if let Err(err) = serde_json::to_writer(&mut body, &items) {
            return AppError::internal(err).into_response();
        }
        let mut response =
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
        if let Some(link) = next {
            response.headers_mut().insert(header::LINK, link);
        }
        response
    }

    /// How many rows to fetch to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }
}

/// About one catalogue product in JSON (a 50-product page is 12 KB).
const ITEM_BYTES: usize = 256;

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<PageQuery>::try_from_uri(&parts.uri)
            .map_err(|rejection| AppError::invalid("query", rejection.body_text()))?;
        let limit = match query.limit {
            None => Self::DEFAULT_LIMIT,
            Some(raw) => {
                parse_integer(&raw).filter(|limit| (1..=Self::MAX_LIMIT).contains(limit)).ok_or_else(|| {
                    AppError::invalid("limit", format!("limit: must be an integer from 1 to {}", Self::MAX_LIMIT))
                })?
            }
        };
        let after = query
            .after
            .map(|raw| {
                parse_integer(&raw)
                    .filter(|after| *after >= 0)
                    .ok_or_else(|| AppError::invalid("after", "after: must be a non-negative integer id"))
            })
            .transpose()?;
        Ok(Self { after, limit })
    }
}

/// The public path prefix (an API Gateway stage) that was removed before routing, so that
/// links the API hands out still work for the caller.
#[derive(Debug, Clone, Default)]
pub struct PathPrefix(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathPrefix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_only_when_more() {
        let after = |i: &i64| format!("after={i}");
        let page = Page { after: None, limit: 2 };
        let (items, link) = page.split(vec![1, 2], after, "/p", "");
        assert_eq!((items.len(), link), (2, None));
        let (items, link) = page.split(vec![1, 2, 3], after, "/p", "");
        assert_eq!(items, vec![1, 2]);
        assert_eq!(link.as_ref().and_then(|l| l.to_str().ok()), Some("</p?limit=2&after=2>; rel=\"next\""));
        let (_, link) = page.split(vec![1, 2, 3], after, "/p", "status=placed");
        assert_eq!(
            link.as_ref().and_then(|l| l.to_str().ok()),
            Some("</p?status=placed&limit=2&after=2>; rel=\"next\"")
        );
    }
}
