use crate::db::Executor;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::{Entity, StoreError};
use crate::domain::{Cents, Description, ProductId, ProductName, ProductSort, SearchText, Sku, Stock};

/// A product as the API shows it; `stock` is the sum of its stock buckets. `archived_at`
/// appears only on an archived product, which only a read by id returns.
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
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<OffsetDateTime>,
}

/// A product read with its version, which every edit bumps (the ETag).
#[derive(Debug, Clone)]
pub struct Versioned {
    pub product: Product,
    pub version: i64,
}

/// The fields an edit changes; `None` keeps the stored value.
#[derive(Default)]
pub struct Changes {
    pub name: Option<ProductName>,
    pub description: Option<Description>,
    pub price: Option<Cents>,
    pub sku: Option<Sku>,
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
        self.0.iter().map(ProductRef::from_row).collect()
    }
}

impl<'a> ProductRef<'a> {
    /// Where this product stands in a catalogue sorted by `sort`.
    pub fn position(&self, sort: ProductSort) -> Position {
        match sort {
            ProductSort::Id => Position::Id(self.id),
            ProductSort::Price => Position::Price { price: self.price, id: self.id },
            ProductSort::Newest => Position::Newest { created_at: self.created_at, id: self.id },
        }
    }

    /// A product's columns, borrowed from the row that holds them.
    fn from_row(row: &'a Row) -> Result<Self, StoreError> {
        Ok(Self {
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
    let columns = ProductRef::from_row(row)?;
    Ok(Product {
        id: columns.id,
        name: columns.name.to_owned(),
        description: columns.description.to_owned(),
        price: columns.price,
        sku: columns.sku.to_owned(),
        stock: columns.stock,
        created_at: columns.created_at,
        updated_at: columns.updated_at,
        archived_at: None,
    })
}

/// A row of [`product`]'s columns plus `archived_at` and `version`.
fn versioned(row: &Row) -> Result<Versioned, StoreError> {
    let product = Product { archived_at: row.try_get("archived_at")?, ..product(row)? };
    Ok(Versioned { product, version: row.try_get("version")? })
}

/// Inserts the product and spreads its stock evenly over its buckets, in one statement.
/// A taken SKU is [`StoreError::Conflict`] on `products_sku_key`.
pub async fn create(db: &impl Executor, new: &NewProduct) -> Result<Product, StoreError> {
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

/// The product with its version, archived or not.
pub async fn get(db: &impl Executor, id: ProductId) -> Result<Option<Versioned>, StoreError> {
    const SQL: &str = "\
        SELECT p.id, p.name, p.description, p.price, p.sku, p.created_at, p.updated_at, p.archived_at, p.version, \
               (SELECT coalesce(sum(s.stock), 0)::BIGINT FROM product_stock s WHERE s.product_id = p.id) AS stock \
          FROM products p WHERE p.id = $1";
    let rows = db.query_typed(SQL, &[(&id.get(), Type::INT8)]).await?;
    rows.first().map(versioned).transpose()
}

/// Applies `changes` if the product is still at one of the `expected` versions (`None`:
/// whichever it is) and bumps its version, in one statement: two edits made from one read
/// cannot both succeed. An unknown product is [`StoreError::NotFound`], another version
/// [`StoreError::VersionMismatch`], a taken SKU [`StoreError::Conflict`] on `products_sku_key`.
pub async fn update(
    db: &impl Executor,
    id: ProductId,
    expected: Option<&[i64]>,
    changes: &Changes,
) -> Result<Versioned, StoreError> {
    const SQL: &str = "\
        WITH p AS ( \
            UPDATE products SET name = coalesce($3, name), description = coalesce($4, description), \
                   price = coalesce($5, price), sku = coalesce($6, sku), version = version + 1, updated_at = now() \
             WHERE id = $1 AND ($2::BIGINT[] IS NULL OR version = ANY ($2)) \
            RETURNING id, name, description, price, sku, created_at, updated_at, archived_at, version \
        ) \
        SELECT p.*, (SELECT coalesce(sum(s.stock), 0)::BIGINT FROM product_stock s WHERE s.product_id = p.id) AS stock \
          FROM p";
    let rows = db
        .query_typed(
            SQL,
            &[
                (&id.get(), Type::INT8),
                (&expected, Type::INT8_ARRAY),
                (&changes.name.as_ref().map(ProductName::as_str), Type::TEXT),
                (&changes.description.as_ref().map(Description::as_str), Type::TEXT),
                (&changes.price.map(Cents::get), Type::INT8),
                (&changes.sku.as_ref().map(Sku::as_str), Type::TEXT),
            ],
        )
        .await?;
    match rows.first() {
        Some(row) => versioned(row),
        None if get(db, id).await?.is_some() => Err(StoreError::VersionMismatch),
        None => Err(StoreError::NotFound { entity: Entity::Product, id: id.get() }),
    }
}

/// Archives the product (`archive_product`, migrations/functions): hidden from the catalogue,
/// refused by orders from the moment this commits, still readable by id, its SKU still
/// taken. Archiving an archived product changes nothing. An unknown one is [`StoreError::NotFound`].
pub async fn archive(db: &impl Executor, id: ProductId) -> Result<(), StoreError> {
    let rows = db.query_typed("SELECT archive_product($1)", &[(&id.get(), Type::INT8)]).await?;
    let found: bool = super::single(&rows, |row| Ok(row.try_get(0)?))?;
    if found { Ok(()) } else { Err(StoreError::NotFound { entity: Entity::Product, id: id.get() }) }
}

/// Up to `limit` products with an id above `after`, in id order (keyset pagination).
/// `list_products` (migrations/functions/list_products.sql) sums the page's stock in one scan, with a cached plan.
pub async fn list(db: &impl Executor, after: i64, limit: i64) -> Result<ProductPage, StoreError> {
    const SQL: &str = "SELECT * FROM list_products($1, $2)";
    let rows = db.query_typed(SQL, &[(&after, Type::INT8), (&limit, Type::INT8)]).await?;
    Ok(ProductPage(rows))
}

/// Which products a catalogue page shows; the default shows every product not archived.
#[derive(Debug, Default)]
pub struct Filter {
    /// Names that contain this text, ignoring case and accents (`search_key`, V13).
    pub search: Option<SearchText>,
    pub min_price: Option<Cents>,
    pub max_price: Option<Cents>,
    /// Only products with stock.
    pub in_stock: bool,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.search.is_none() && self.min_price.is_none() && self.max_price.is_none() && !self.in_stock
    }
}

/// A product's place in a sorted catalogue: its sort key and its id, which breaks ties, so
/// no two products share a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Id(i64),
    Price { price: i64, id: i64 },
    Newest { created_at: OffsetDateTime, id: i64 },
}

/// Where a catalogue page starts: at the top of an order, or after a product's place in
/// it (which names its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    First(ProductSort),
    After(Position),
}

impl Start {
    fn sort(&self) -> ProductSort {
        match self {
            Self::First(sort) => *sort,
            Self::After(Position::Id(_)) => ProductSort::Id,
            Self::After(Position::Price { .. }) => ProductSort::Price,
            Self::After(Position::Newest { .. }) => ProductSort::Newest,
        }
    }
}

/// Up to `limit` products of the catalogue that pass `filter`, in the order `start` names,
/// from `start` on (keyset pagination: every order ends with the id, so a page boundary
/// neither skips nor repeats a product, whatever the ties). Archived products are left out;
/// `stock` is the sum of the buckets as committed when the statement started.
///
/// The unfiltered id order is [`list`] (a cached plan: the hot path). The rest is one
/// statement of only the clauses the request needs; sent unnamed, it is planned for the
/// values at hand, so a rare search word goes through the name index and a common one walks
/// the order's index and stops at the page (the indexes of V13).
pub async fn catalogue(
    db: &impl Executor,
    filter: &Filter,
    start: Start,
    limit: i64,
) -> Result<ProductPage, StoreError> {
    let sort = start.sort();
    if filter.is_empty() {
        match start {
            Start::First(ProductSort::Id) => return list(db, 0, limit).await,
            Start::After(Position::Id(after)) => return list(db, after, limit).await,
            _ => {}
        }
    }
    let search = filter.search.as_ref().map(SearchText::as_str);
    let (min_price, max_price) = (filter.min_price.map(Cents::get), filter.max_price.map(Cents::get));
    let mut query = Statement::default();
    let mut conditions = vec!["p.archived_at IS NULL".to_owned()];
    if let Some(search) = &search {
        // Folded as name_key folds names, then LIKE's wildcards and escape character escaped.
        let text = query.bind(search, Type::TEXT);
        conditions.push(format!(
            "p.name_key LIKE '%' || replace(replace(replace(search_key({text}), '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%'"
        ));
    }
    if let Some(min) = &min_price {
        conditions.push(format!("p.price >= {}", query.bind(min, Type::INT8)));
    }
    if let Some(max) = &max_price {
        conditions.push(format!("p.price <= {}", query.bind(max, Type::INT8)));
    }
    if filter.in_stock {
        // Buckets are never negative: the sum is positive exactly when some bucket is.
        conditions.push("EXISTS (SELECT 1 FROM product_stock s WHERE s.product_id = p.id AND s.stock > 0)".to_owned());
    }
    if let Start::After(position) = &start {
        conditions.push(match position {
            Position::Id(id) => format!("p.id > {}", query.bind(id, Type::INT8)),
            Position::Price { price, id } => {
                format!("(p.price, p.id) > ({}, {})", query.bind(price, Type::INT8), query.bind(id, Type::INT8))
            }
            Position::Newest { created_at, id } => format!(
                "(p.created_at, p.id) < ({}, {})",
                query.bind(created_at, Type::TIMESTAMPTZ),
                query.bind(id, Type::INT8)
            ),
        });
    }
    let order = match sort {
        ProductSort::Id => "id",
        ProductSort::Price => "price, id",
        ProductSort::Newest => "created_at DESC, id DESC",
    };
    let sql = format!(
        "WITH page AS ( \
            SELECT p.id, p.name, p.description, p.price, p.sku, p.created_at, p.updated_at \
              FROM products p WHERE {} ORDER BY {order} LIMIT {} \
        ) \
        SELECT g.*, (SELECT coalesce(sum(s.stock), 0)::BIGINT FROM product_stock s WHERE s.product_id = g.id) AS stock \
          FROM page g ORDER BY {order}",
        conditions.join(" AND "),
        query.bind(&limit, Type::INT8),
    );
    let rows = db.query_typed(&sql, &query.params).await?;
    Ok(ProductPage(rows))
}

/// The parameters of a statement written clause by clause.
#[derive(Default)]
struct Statement<'a> {
    params: Vec<(&'a (dyn ToSql + Sync), Type)>,
}

impl<'a> Statement<'a> {
    /// Adds a parameter; returns its placeholder.
    fn bind(&mut self, value: &'a (dyn ToSql + Sync), ty: Type) -> String {
        self.params.push((value, ty));
        format!("${}", self.params.len())
    }
}
