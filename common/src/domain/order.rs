//! Orders: line quantities and idempotency keys.

use serde::Serialize;

use super::{Invalid, invalid};

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
