//! Orders: their lines and idempotency keys.

use serde::Serialize;

use super::{Invalid, ProductId, invalid, parse_integer};

/// An order's id, as a path names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderId(i64);

impl OrderId {
    /// Parses the id as it appears in a URL path: a positive integer.
    pub fn parse_str(raw: String) -> Result<Self, Invalid> {
        match parse_integer(&raw) {
            Some(id) if id >= 1 => Ok(Self(id)),
            _ => invalid("must be a positive integer"),
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Where an order is in its lifecycle. Stored as text (migration V11), so a later state is
/// a new variant and a new value in the column's CHECK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Cancelled,
}

impl OrderStatus {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "placed" => Ok(Self::Placed),
            "cancelled" => Ok(Self::Cancelled),
            _ => invalid("must be placed or cancelled"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Cancelled => "cancelled",
        }
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

/// One line of an order: a product and how many of it.
#[derive(Debug, Clone, Copy)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// The lines of one order: one per product, in product id order, which is the order
/// `place_order` locks stock in.
#[derive(Debug, Clone)]
pub struct OrderLines(Vec<OrderLine>);

impl OrderLines {
    /// Sorts the lines and merges repeated products into one line, whose quantity must
    /// still be a [`Quantity`].
    pub fn merge(mut lines: Vec<OrderLine>) -> Result<Self, Invalid> {
        lines.sort_by_key(|l| l.product_id);
        let mut merged: Vec<OrderLine> = Vec::with_capacity(lines.len());
        for line in lines {
            match merged.last_mut() {
                Some(last) if last.product_id == line.product_id => {
                    let sum = i64::from(last.quantity.get()) + i64::from(line.quantity.get());
                    last.quantity = Quantity::parse(sum)
                        .or_else(|_| invalid(format!("at most {} units of one product", Quantity::MAX)))?;
                }
                _ => merged.push(line),
            }
        }
        Ok(Self(merged))
    }

    pub fn as_slice(&self) -> &[OrderLine] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product_id: i64, quantity: i64) -> OrderLine {
        OrderLine {
            product_id: ProductId::parse(product_id).expect("product id"),
            quantity: Quantity::parse(quantity).expect("quantity"),
        }
    }

    fn pairs(lines: &OrderLines) -> Vec<(i64, i32)> {
        lines.as_slice().iter().map(|l| (l.product_id.get(), l.quantity.get())).collect()
    }

    #[test]
    fn lines_are_merged_per_product_in_lock_order() {
        let merged = OrderLines::merge(vec![line(9, 2), line(3, 1), line(9, 1)]).expect("merge");
        assert_eq!(pairs(&merged), [(3, 1), (9, 3)]);
        let full = OrderLines::merge(vec![line(5, 60), line(5, 40)]).expect("exactly the most");
        assert_eq!(pairs(&full), [(5, 100)]);
    }

    #[test]
    fn statuses_and_order_ids_parse_only_what_they_name() {
        for status in [OrderStatus::Placed, OrderStatus::Cancelled] {
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
        }
        assert!(OrderStatus::parse("Placed").is_err());
        assert!(OrderStatus::parse("").is_err());
        assert_eq!(OrderId::parse_str("7".into()).map(OrderId::get), Ok(7));
        for bad in ["0", "-1", "x", "1.5", ""] {
            assert!(OrderId::parse_str(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_merged_line_is_still_a_quantity() {
        let err = OrderLines::merge(vec![line(5, 60), line(7, 1), line(5, 41)]).err();
        assert_eq!(err, Some(Invalid("at most 100 units of one product".into())));
    }
}
