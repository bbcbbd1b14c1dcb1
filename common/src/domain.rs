//! Domain values. Each one validates on construction, so a value of these types past the
//! request edge is known to be valid; the store and the handlers never re-check.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Why a raw value is not a valid domain value (the field is added by [`required`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

/// Parses a required input field, naming the field in the error when it is absent or invalid.
pub fn required<R, T>(field: &str, raw: Option<R>, parse: impl FnOnce(R) -> Result<T, Invalid>) -> Result<T, AppError> {
    let raw = raw.ok_or_else(|| AppError::invalid(field, format!("{field}: is required")))?;
    parse(raw).map_err(|Invalid(message)| AppError::invalid(field, format!("{field}: {message}")))
}

/// Parses an optional input field; absent (or `null`) is `None`.
pub fn optional<R, T>(
    field: &str,
    raw: Option<R>,
    parse: impl FnOnce(R) -> Result<T, Invalid>,
) -> Result<Option<T>, AppError> {
    raw.map(|raw| required(field, Some(raw), parse)).transpose()
}

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

/// A syntactically valid email address, trimmed and lower-cased (addresses are unique
/// regardless of case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return invalid("is required");
        }
        if email.chars().any(char::is_control) {
            return invalid("is not a valid email address");
        }
        if email.len() > Self::MAX_LEN {
            return invalid(format!("must be at most {} characters", Self::MAX_LEN));
        }
        // Dotless domains (user@localhost) are valid RFC 5322 but never a customer's address.
        let has_dotted_domain = email.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.'));
        if !email_address::EmailAddress::is_valid(&email) || !has_dotted_domain {
            return invalid("is not a valid email address");
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: 8 to 128 characters. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return invalid(format!("must be at least {} characters", Self::MIN_CHARS));
        }
        if chars > Self::MAX_CHARS {
            return invalid(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
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

/// A product's display name: 1 to 200 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > Self::MAX_CHARS {
            return invalid(format!("must be 1 to {} characters", Self::MAX_CHARS));
        }
        if name.chars().any(char::is_control) {
            return invalid("must not contain control characters");
        }
        Ok(Self(name.to_owned()))
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

/// Units of one product in one order line: 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quantity(i32);

impl Quantity {
    pub const MAX: i32 = 100;
    pub const ONE: Self = Self(1);

    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        match i32::try_from(raw) {
            Ok(quantity) if (1..=Self::MAX).contains(&quantity) => Ok(Self(quantity)),
            _ => invalid(format!("must be an integer from 1 to {}", Self::MAX)),
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

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
        raw.parse().map_err(|_| Invalid("must be a positive integer".into())).and_then(Self::parse)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Identifier of a user, as stored; only ever built from the database or a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UserId(i64);

impl UserId {
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A client-chosen `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &[u8]) -> Result<Self, Invalid> {
        let visible = |b: &u8| b.is_ascii_graphic() || *b == b' ';
        match std::str::from_utf8(raw) {
            Ok(key) if !key.trim().is_empty() && key.len() <= Self::MAX_LEN && raw.iter().all(visible) => {
                Ok(Self(key.to_owned()))
            }
            _ => invalid(format!("must be 1 to {} visible ASCII characters", Self::MAX_LEN)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    pub fn from_db(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_and_checked() {
        assert_eq!(Email::parse("  Ann@Example.COM ".into()).map(|e| e.0), Ok("ann@example.com".into()));
        for bad in ["", "ann", "ann@", "@example.com", "ann@localhost", "a b@example.com", "ann@@example.com"] {
            assert!(Email::parse(bad.into()).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn password_length_counts_characters() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("é".repeat(128)).is_ok());
        assert!(Password::parse("é".repeat(129)).is_err());
        assert_eq!(format!("{:?}", Password::parse("secret-password".into())), "Ok(Password(..))");
    }

    #[test]
    fn numbers_have_bounds() {
        assert!(Cents::parse(-1).is_err());
        assert!(Cents::parse(0).is_ok());
        assert!(Cents::parse(Cents::MAX + 1).is_err());
        assert!(Stock::parse(-1).is_err());
        assert!(Stock::parse(i64::from(i32::MAX) + 1).is_err());
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(101).is_err());
        assert_eq!(Quantity::parse(100).map(Quantity::get), Ok(100));
        assert!(ProductId::parse(0).is_err());
    }

    #[test]
    fn sku_and_name_rules() {
        assert_eq!(Sku::parse(" GAME-01 ".into()).map(|s| s.0), Ok("GAME-01".into()));
        for bad in ["", "has space", "semi;colon", "quote'", &"x".repeat(65)] {
            assert!(Sku::parse(bad.into()).is_err(), "{bad:?} accepted");
        }
        assert!(ProductName::parse("   ".into()).is_err());
        assert!(ProductName::parse("nul\0byte".into()).is_err());
        assert!(Description::parse("two\nlines\tand a tab".into()).is_ok());
        assert!(Description::parse("nul\0byte".into()).is_err());
        assert!(Email::parse("a\0b@example.com".into()).is_err());
        assert!(Description::parse("x".repeat(5001)).is_err());
    }

    #[test]
    fn required_names_the_field() {
        let missing = required("price", None::<i64>, Cents::parse);
        assert!(matches!(missing, Err(AppError::Invalid { field, .. }) if field == "price"));
        let bad = required("price", Some(-5), Cents::parse);
        assert!(
            matches!(bad, Err(AppError::Invalid { field, message }) if field == "price" && message.starts_with("price: "))
        );
        assert!(matches!(optional("stock", None::<i64>, Stock::parse), Ok(None)));
    }
}
