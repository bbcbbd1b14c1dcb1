//! The catalogue: product id, name, description, price, SKU, stock.

use serde::Serialize;

use super::{Invalid, invalid};

/// Identifier of a product: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ProductId(i64);

impl ProductId {
    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if raw < 1 {
            return invalid("must be a positive integer");
        }
        Ok(Self(raw))
    }

    /// Parses the id as it appears in a URL path.
    pub fn parse_str(raw: String) -> Result<Self, Invalid> {
        super::parse_integer(&raw).ok_or_else(|| Invalid("must be a positive integer".into())).and_then(Self::parse)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A product's display name: 1 to 200 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: String) -> Result<Self, Invalid> {
        one_line(&raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text describing a product, up to 5000 characters (may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 5000;

    pub fn parse(raw: String) -> Result<Self, Invalid> {
        if raw.chars().count() > Self::MAX_CHARS {
            return invalid(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        // Line breaks and tabs are text; other control characters (NUL, which Postgres
        // cannot store, among them) are not.
        if raw.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return invalid("must not contain control characters other than line breaks and tabs");
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A money amount in integer cents. Capped so that any order total fits an i64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cents(i64);

impl Cents {
    /// 10 billion currency units: 50 lines x 100 units x this still fits an i64.
    pub const MAX: i64 = 1_000_000_000_000;

    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if !(0..=Self::MAX).contains(&raw) {
            return invalid(format!("must be integer cents between 0 and {}", Self::MAX));
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// What a catalogue search looks for in product names: up to 100 characters, no control
/// characters, trimmed. Empty (or only spaces) is no search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    pub const MAX_CHARS: usize = 100;

    /// `None` when there is nothing to look for.
    pub fn parse(raw: String) -> Result<Option<Self>, Invalid> {
        // Both checked before trimming, as the OpenAPI document states them: a trailing
        // line break is refused, not trimmed away.
        if raw.chars().count() > Self::MAX_CHARS {
            return invalid(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if raw.chars().any(char::is_control) {
            return invalid("must not contain control characters");
        }
        let text = raw.trim();
        Ok((!text.is_empty()).then(|| Self(text.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The order of a catalogue page; every order ends with the id, so it is total and a
/// keyset page boundary is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductSort {
    /// Oldest id first.
    #[default]
    Id,
    /// Cheapest first.
    Price,
    /// Most recently created first.
    Newest,
}

impl ProductSort {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "id" => Ok(Self::Id),
            "price" => Ok(Self::Price),
            "newest" => Ok(Self::Newest),
            _ => invalid("must be one of id, price, newest"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Price => "price",
            Self::Newest => "newest",
        }
    }
}

/// Stock-keeping unit: 1 to 64 of `A-Z a-z 0-9 . _ -`, kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let sku = raw.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if sku.is_empty() || sku.len() > Self::MAX_LEN || !sku.chars().all(allowed) {
            return invalid(format!("must be 1 to {} characters of letters, digits, '.', '_' or '-'", Self::MAX_LEN));
        }
        Ok(Self(sku.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Units on hand; never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stock(i32);

impl Stock {
    pub const ZERO: Self = Self(0);

    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        match i32::try_from(raw) {
            Ok(stock) if stock >= 0 => Ok(Self(stock)),
            _ => invalid(format!("must be an integer between 0 and {}", i32::MAX)),
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A change of stock made by an admin: a non-zero number of units, added when positive,
/// removed when negative, at most a million either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StockDelta(i32);

impl StockDelta {
    pub const MAX: i32 = 1_000_000;

    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        match i32::try_from(raw) {
            Ok(delta) if delta != 0 && delta.abs() <= Self::MAX => Ok(Self(delta)),
            _ => invalid(format!("must be a non-zero integer between -{0} and {0}", Self::MAX)),
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// Why stock was changed, as the ledger records it: 1 to 500 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockReason(String);

impl StockReason {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: String) -> Result<Self, Invalid> {
        one_line(&raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A required line of text: trimmed, 1 to `max` characters, no control characters.
fn one_line(raw: &str, max: usize) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > max {
        return invalid(format!("must be 1 to {max} characters"));
    }
    if text.chars().any(char::is_control) {
        return invalid("must not contain control characters");
    }
    Ok(text.to_owned())
}
