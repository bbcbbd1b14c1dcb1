//! The outbox message: what the outbox stores, the queue carries and the email worker
//! reads. A leaf module (it imports nothing of this crate), so that `outbox`, `queue` and
//! `store::outbox` can all depend on it without depending on each other.

use serde::{Deserialize, Serialize};

/// The kind of the welcome-email message.
pub const WELCOME_EMAIL: &str = "welcome_email";

/// A message as it travels on the queue: the outbox row's id (the message's unique key,
/// which the email worker deduplicates on), its kind and its payload; then, for the logs
/// and metrics, when the row was written and the request that wrote it. These are
/// optional both ways: a message queued before they existed parses, and one without them
/// is sent without the keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// When the outbox row was written, in milliseconds since the epoch (the lags start here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The X-Ray trace id of that request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_queued_before_the_correlation_fields_still_parse() {
        let old = r#"{"id":7,"kind":"welcome_email","payload":{"to":"a@example.com"}}"#;
        let message = OutboxMessage::parse(old).ok();
        assert_eq!(message.as_ref().map(|m| (m.id, m.request_id.clone(), m.created_ms)), Some((7, None, None)));
        assert_eq!(message.map(|m| m.body()).as_deref(), Some(old), "no new keys when there is nothing to carry");
    }
}
