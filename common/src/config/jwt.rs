//! The key tokens are signed with: `JWT_SECRET`, or `JWT_SECRET_ARN` (the whole
//! `SecretString`, read through the extension), at least 32 bytes either way.

use std::time::Duration;

use super::{ConfigError, Env, SecretsExtension, parsed, verbatim};

/// Smallest accepted HMAC secret: HS256 keys shorter than the hash output weaken it.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Where the key comes from and how long a token lives (`JWT_TTL_SECONDS`, default 3600),
/// read without any network call.
pub struct JwtSettings {
    source: JwtSource,
    pub ttl: Duration,
}

enum JwtSource {
    Direct(String),
    Secret(String),
}

impl JwtSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let ttl = Duration::from_secs(parsed(env, "JWT_TTL_SECONDS", 3600)?);
        if let Some(secret) = verbatim(env, "JWT_SECRET") {
            // Checked here too so that a weak secret fails before any network call.
            jwt_secret_bytes(secret.clone())?;
            return Ok(Self { source: JwtSource::Direct(secret), ttl });
        }
        match verbatim(env, "JWT_SECRET_ARN") {
            Some(arn) => Ok(Self { source: JwtSource::Secret(arn), ttl }),
            None => Err(ConfigError::Missing("JWT_SECRET (or JWT_SECRET_ARN)")),
        }
    }

    /// Whether the key comes through the Secrets extension (served only in INVOKE).
    pub fn needs_extension(&self) -> bool {
        matches!(self.source, JwtSource::Secret(_))
    }

    /// The signing key, fetched when it lives in a secret.
    pub async fn key(self, secrets: &SecretsExtension) -> Result<Vec<u8>, ConfigError> {
        match self.source {
            JwtSource::Direct(secret) => jwt_secret_bytes(secret),
            JwtSource::Secret(arn) => jwt_secret_bytes(secrets.get(&arn).await?),
        }
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
