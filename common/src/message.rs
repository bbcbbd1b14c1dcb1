//! The outbox message: what the outbox stores, the queue carries and the email worker
//! reads. A leaf module (it imports nothing of this crate), so that `outbox`, `queue` and
//! `store::outbox` can all depend on it without depending on each other.

use serde::{Deserialize, Serialize};

/// The kind of the welcome-email message.
pub const WELCOME_EMAIL: &str = "welcome_email";

/// A message as it travels on the queue: the outbox row's id (the message's unique key,
/// which the email worker deduplicates on), its kind and its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
}

impl OutboxMessage {
    /// The queue message body.
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

/// Payload of [`WELCOME_EMAIL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WelcomeEmail {
    pub to: String,
}

/// The kind of the order-confirmation message, written with the order.
pub const ORDER_CONFIRMATION: &str = "order_confirmation";

/// The kind of the cancellation message, written with the cancel.
pub const ORDER_CANCELLED: &str = "order_cancelled";

/// Payload of [`ORDER_CONFIRMATION`] and [`ORDER_CANCELLED`]: the order as the buyer sees
/// it in the mail. Built by the statement that writes the outbox row (`store::orders`),
/// with the product names of that moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderMail {
    pub to: String,
    pub order_id: i64,
    pub lines: Vec<OrderMailLine>,
    /// Integer cents.
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderMailLine {
    pub product_id: i64,
    pub name: String,
    pub quantity: i32,
    /// Integer cents.
    pub unit_price: i64,
}
