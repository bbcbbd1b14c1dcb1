use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::StoreError;
use crate::domain::{Cents, Description, ProductId, ProductName, Sku, Stock};

/// A product as the API shows it; `stock` is the sum of its stock buckets.
#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub price: i64,
    pub sku: String,
    pub stock: i64,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A product of a catalogue page, its text borrowed from the database row: the page is
/// written straight from the rows' buffers, the same JSON as [`Product`] without copying
/// every text into a `String` first (bench/README.md, session 4).
#[derive(Debug, Serialize)]
pub struct ProductRef<'a> {
    pub id: i64,
    pub name: &'a str,
    pub description: &'a str,
    pub price: i64,
    pub sku: &'a str,
    pub stock: i64,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The rows of one catalogue page, as [`list`] fetched them.
pub struct ProductPage(Vec<Row>);

impl ProductPage {
    /// The page's products, borrowed from its rows.
    pub fn products(&self) -> Result<Vec<ProductRef<'_>>, StoreError> {
        self.0
            .iter()
            .map(|row| {
                Ok(ProductRef {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    price: row.try_get("price")?,
                    sku: row.try_get("sku")?,
                    stock: row.try_get("stock")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }
}

/// RFC 3339 as `time::serde::rfc3339` writes it, formatted on the stack rather than into a
/// `String` per timestamp (two per product on every catalogue page).
fn rfc3339<S: serde::Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    // "-9999-12-31T23:59:59.999999999+23:59" is the longest: 36 bytes.
    let mut buf = [0u8; 40];
    let mut out = &mut buf[..];
    at.format_into(&mut out, &time::format_description::well_known::Rfc3339).map_err(serde::ser::Error::custom)?;
    let len = 40 - out.len();
    let text = std::str::from_utf8(&buf[..len]).map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(text)
}

pub struct NewProduct {
    pub name: ProductName,
    pub description: Description,
    pub price: Cents,
    pub sku: Sku,
    pub stock: Stock,
}

fn product(row: &Row) -> Result<Product, StoreError> {
    Ok(Product {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price: row.try_get("price")?,
        sku: row.try_get("sku")?,
        stock: row.try_get("stock")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts the product and spreads its stock evenly over its buckets, in one statement.
/// A taken SKU is [`StoreError::Conflict`] on `products_sku_key`.
pub async fn create(db: &impl GenericClient, new: &NewProduct) -> Result<Product, StoreError> {
    const SQL: &str = "\
        WITH p AS ( \
            INSERT INTO products (name, description, price, sku) VALUES ($1, $2, $3, $4) \
            RETURNING id, name, description, price, sku, stock_buckets, created_at, updated_at \
        ), s AS ( \
            INSERT INTO product_stock (product_id, bucket, stock) \
            SELECT p.id, b, $5 / p.stock_buckets + (b < $5 % p.stock_buckets)::INT \
              FROM p, generate_series(0, p.stock_buckets - 1) AS b \
        ) \
        SELECT p.id, p.name, p.description, p.price, p.sku, p.created_at, p.updated_at, \
               $5::BIGINT AS stock FROM p";
    let rows = db
        .query_typed(
            SQL,
            &[
                (&new.name.as_str(), Type::TEXT),
                (&new.description.as_str(), Type::TEXT),
                (&new.price.get(), Type::INT8),
                (&new.sku.as_str(), Type::TEXT),
                (&new.stock.get(), Type::INT4),
            ],
        )
        .await?;
    super::single(&rows, product)
}

pub async fn get(db: &impl GenericClient, id: ProductId) -> Result<Option<Product>, StoreError> {
    const SQL: &str = "\
        SELECT p.id, p.name, p.description, p.price, p.sku, p.created_at, p.updated_at, \
               (SELECT coalesce(sum(s.stock), 0)::BIGINT FROM product_stock s WHERE s.product_id = p.id) AS stock \
          FROM products p WHERE p.id = $1";
    let rows = db.query_typed(SQL, &[(&id.get(), Type::INT8)]).await?;
    rows.first().map(product).transpose()
}

/// Up to `limit` products with an id above `after`, in id order (keyset pagination).
/// `list_products` (migrations/functions/list_products.sql) sums the page's stock in one scan, with a cached plan.
pub async fn list(db: &impl GenericClient, after: i64, limit: i64) -> Result<ProductPage, StoreError> {
    const SQL: &str = "SELECT * FROM list_products($1, $2)";
    let rows = db.query_typed(SQL, &[(&after, Type::INT8), (&limit, Type::INT8)]).await?;
    Ok(ProductPage(rows))
}
