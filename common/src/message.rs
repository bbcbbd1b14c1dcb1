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
