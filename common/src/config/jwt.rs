//! The key tokens are signed with: `JWT_SECRET`, or `JWT_SECRET_ARN` (the whole
//! `SecretString`, read through the extension), at least 32 bytes either way.

use super::{ConfigError, Env, verbatim};

/// Smallest accepted HMAC secret: HS256 keys shorter than the hash output weaken it.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Where the key comes from, known before any network call.
pub(super) enum JwtSource {
    Direct(String),
    Secret(String),
}

pub(super) fn jwt_source(env: &impl Env) -> Result<JwtSource, ConfigError> {
    if let Some(secret) = verbatim(env, "JWT_SECRET") {
        // Checked here too so that a weak secret fails before any network call.
        jwt_secret_bytes(secret.clone())?;
        return Ok(JwtSource::Direct(secret));
    }
    match verbatim(env, "JWT_SECRET_ARN") {
        Some(arn) => Ok(JwtSource::Secret(arn)),
        None => Err(ConfigError::Missing("JWT_SECRET (or JWT_SECRET_ARN)")),
    }
}

/// `secret` as the signing key; refused when shorter than [`MIN_JWT_SECRET_BYTES`].
pub fn jwt_secret_bytes(secret: String) -> Result<Vec<u8>, ConfigError> {
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(ConfigError::Invalid {
            name: "JWT_SECRET",
            reason: format!(
                "it has {} bytes, at least {MIN_JWT_SECRET_BYTES} random bytes are required \
                 (e.g. `openssl rand -base64 48`)",
                secret.len()
            ),
        });
    }
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jwt_secret_is_refused() {
        assert!(matches!(jwt_secret_bytes("x".repeat(31)), Err(ConfigError::Invalid { name: "JWT_SECRET", .. })));
        assert_eq!(jwt_secret_bytes("x".repeat(32)).map(|s| s.len()).ok(), Some(32));
    }
}
