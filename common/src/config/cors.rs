//! Which browser origins may call the API.

use super::{Env, optional};

/// `CORS_ALLOWED_ORIGINS`: comma-separated origins, or `*`; `None` (CORS off) when unset.
pub fn cors_allowed_origins(env: &impl Env) -> Option<String> {
    optional(env, "CORS_ALLOWED_ORIGINS")
}
