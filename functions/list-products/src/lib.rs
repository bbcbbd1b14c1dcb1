//! GET /api/v1/products: the catalogue, a page at a time: optionally only names that
//! contain a text (ignoring case and accents), a price range, products in stock; in id
//! order (the default), by price, or newest first.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::response::Response;
use common::domain::{Cents, Invalid, ProductSort, SearchText, optional, parse_integer};
use common::http::Routes;
use common::http::{Page, PathPrefix};
use common::lambda::{HttpFunction, Needs};
use common::state::NoKey;
use common::store::products::{self, Filter, Position, Start};
use common::{AppError, AppState};
use serde::Deserialize;
use time::OffsetDateTime;

/// This function on Lambda (its `main` runs it). It neither signs nor verifies tokens, so it
/// asks for the database only, and its state holds no key.
pub const LAMBDA: HttpFunction<AppState<NoKey>> = HttpFunction::new(Needs::DATABASE, api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    AppState<NoKey>: FromRef<S>,
{
    Routes::new().get("/api/v1/products", list_products)
}

pub fn routes<S>(state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
    AppState<NoKey>: FromRef<S>,
{
    api().with_state(state)
}

/// The catalogue's own query parameters (`limit` and `after` are [`Page`]'s). `after_key`
/// is the sort key of the product named by `after` under `sort=price` (its price) and
/// `sort=newest` (its creation time, microseconds since the epoch): the next page's link
/// carries both, so an edit of that product's price between two pages cannot move the
/// boundary.
#[derive(Deserialize)]
struct CatalogueQuery {
    q: Option<String>,
    min_price: Option<String>,
    max_price: Option<String>,
    in_stock: Option<String>,
    sort: Option<String>,
    after_key: Option<String>,
}

async fn list_products(
    State(state): State<AppState<NoKey>>,
    PathPrefix(prefix): PathPrefix,
    page: Page,
    query: Result<Query<CatalogueQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(CatalogueQuery { q, min_price, max_price, in_stock, sort, after_key }) =
        query.map_err(|rejection| AppError::invalid("query", rejection.body_text()))?;
    let filter = filter(q, min_price.as_deref(), max_price.as_deref(), in_stock.as_deref())?;
    let sort = optional("sort", sort.as_deref(), ProductSort::parse)?.unwrap_or_default();
    let start = start(sort, page.after, after_key.as_deref())?;

    let rows = products::catalogue(&**state.db.get().await?, &filter, start, page.fetch_limit()).await?;

    let filter = link_query(&filter, sort);
    Ok(page.respond_after(rows.products()?, |p| after(p.position(sort)), &format!("{prefix}/api/v1/products"), &filter))
}

/// The filters, each checked as its field: prices as on create, `min_price` not above
/// `max_price`.
fn filter(
    q: Option<String>,
    min_price: Option<&str>,
    max_price: Option<&str>,
    in_stock: Option<&str>,
) -> Result<Filter, AppError> {
    let price =
        |raw: &str| parse_integer(raw).ok_or_else(|| Invalid("must be integer cents".into())).and_then(Cents::parse);
    let filter = Filter {
        search: optional("q", q, SearchText::parse)?.flatten(),
        min_price: optional("min_price", min_price, price)?,
        max_price: optional("max_price", max_price, price)?,
        in_stock: optional("in_stock", in_stock, boolean)?.unwrap_or(false),
    };
    if let (Some(min), Some(max)) = (filter.min_price, filter.max_price)
        && min.get() > max.get()
    {
        return Err(AppError::invalid("min_price", "min_price: must not be above max_price"));
    }
    Ok(filter)
}

/// `true` or `false`, as an OpenAPI boolean query parameter is written.
fn boolean(raw: &str) -> Result<bool, Invalid> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Invalid("must be true or false".into())),
    }
}

/// Where the page starts: `after` (an id) alone under the id order, with `after_key` (the
/// sort key of that product, from the previous page's link) under the others.
fn start(sort: ProductSort, after: Option<i64>, after_key: Option<&str>) -> Result<Start, AppError> {
    let key = optional("after_key", after_key, |raw| {
        parse_integer(raw).ok_or_else(|| Invalid("must be an integer from the Link header".into()))
    })?;
    let Some(id) = after else {
        return match key {
            None => Ok(Start::First(sort)),
            Some(_) => Err(AppError::invalid("after_key", "after_key: only goes with after")),
        };
    };
    let position = match (sort, key) {
        (ProductSort::Id, None) => Position::Id(id),
        (ProductSort::Id, Some(_)) => {
            return Err(AppError::invalid("after_key", "after_key: not used with sort=id"));
        }
        (_, None) => {
            return Err(AppError::invalid("after_key", "after_key: required with after under this sort"));
        }
        (ProductSort::Price, Some(price)) => Position::Price { price, id },
        (ProductSort::Newest, Some(micros)) => {
            let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                .map_err(|_| AppError::invalid("after_key", "after_key: not a time the Link header gives"))?;
            Position::Newest { created_at, id }
        }
    };
    Ok(Start::After(position))
}

/// The query that continues after a product at `position` (see [`CatalogueQuery`]).
fn after(position: Position) -> String {
    match position {
        Position::Id(id) => format!("after={id}"),
        Position::Price { price, id } => format!("after={id}&after_key={price}"),
        Position::Newest { created_at, id } => {
            // PostgreSQL keeps microseconds: the key is the stored instant exactly.
            format!("after={id}&after_key={}", created_at.unix_timestamp_nanos() / 1000)
        }
    }
}

/// The request's filters and sort as the next page's link repeats them, URL-encoded.
fn link_query(filter: &Filter, sort: ProductSort) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(search) = &filter.search {
        query.append_pair("q", search.as_str());
    }
    if let Some(min) = filter.min_price {
        query.append_pair("min_price", &min.get().to_string());
    }
    if let Some(max) = filter.max_price {
        query.append_pair("max_price", &max.get().to_string());
    }
    if filter.in_stock {
        query.append_pair("in_stock", "true");
    }
    if sort != ProductSort::Id {
        query.append_pair("sort", sort.as_str());
    }
    query.finish()
}
