//! Domain values. Each one validates on construction, so a value of these types past the
//! request edge is known to be valid; the store and the handlers never re-check.

mod order;
mod product;
mod user;

pub use order::{IdempotencyKey, OrderId, OrderLine, OrderLines, OrderStatus, Quantity};
pub use product::{
    Cents, Description, ProductId, ProductName, ProductSort, SearchText, Sku, Stock, StockDelta, StockReason,
};
pub use user::{Email, Masked, Password, Role, UserId};

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

/// `value` as an integer when it is one, as JSON Schema counts integers (`3371.0` is 3371):
/// integral and within `i64`.
pub fn integral(value: f64) -> Option<i64> {
    // i64::MIN and 2^63 are exact as f64; every integral f64 in between is an i64.
    let in_range = (i64::MIN as f64..i64::MAX as f64).contains(&value);
    (value.fract() == 0.0 && in_range).then_some(value as i64)
}

/// An integer written as text (a path or query parameter): `42`, or an integral number
/// such as `42.0` or `4.2e1`, as a JSON Schema validator reads the text.
pub fn parse_integer(raw: &str) -> Option<i64> {
    raw.parse().ok().or_else(|| raw.parse().ok().and_then(integral))
}

pub(super) fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_and_checked() {
        assert_eq!(Email::parse("Ann@Example.COM".into()).map(|e| e.as_str().to_owned()), Ok("ann@example.com".into()));
        // Surrounding whitespace is refused, not trimmed: an address is exactly `local@domain`.
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@localhost",
            "a b@example.com",
            "ann@@example.com",
            "  Ann@Example.COM ",
        ] {
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
        assert_eq!(Sku::parse(" GAME-01 ".into()).map(|s| s.as_str().to_owned()), Ok("GAME-01".into()));
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
    fn search_text_and_sort_rules() {
        let text = |raw: &str| SearchText::parse(raw.into()).map(|t| t.map(|t| t.as_str().to_owned()));
        assert_eq!(text("  Zelda "), Ok(Some("Zelda".into())));
        assert_eq!(text("   "), Ok(None), "only spaces is no search");
        assert_eq!(text(&"é".repeat(100)).map(|t| t.map(|t| t.chars().count())), Ok(Some(100)));
        for bad in ["zel\n", "\0", "a\u{7}b", "a\u{85}b", &"x".repeat(101), &format!(" {}", "x".repeat(100))] {
            assert!(text(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(ProductSort::parse("newest"), Ok(ProductSort::Newest));
        assert_eq!(ProductSort::default(), ProductSort::Id);
        for bad in ["", "PRICE", "name"] {
            assert!(ProductSort::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn integers_in_text_as_json_schema_reads_them() {
        for (raw, value) in [("42", 42), ("+42", 42), ("42.0", 42), ("4.2e1", 42), ("-0.0", 0), ("-7", -7)] {
            assert_eq!(parse_integer(raw), Some(value), "{raw}");
        }
        for raw in ["42.5", "", " 42", "0x2a", "inf", "NaN", "1e19", "9223372036854775808", "forty-two"] {
            assert_eq!(parse_integer(raw), None, "{raw}");
        }
        assert_eq!(ProductId::parse_str("7.0".into()).map(ProductId::get), Ok(7));
        assert!(ProductId::parse_str("7.5".into()).is_err());
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
