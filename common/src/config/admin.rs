//! The first admin's account, for `migrate` (the Lambda and `gamestore migrate`).

use serde::Deserialize;

use super::{ConfigError, Env, SecretsExtension, verbatim};

/// The first admin's email and password.
#[derive(Deserialize)]
pub struct AdminCredentials {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials").field("email", &self.email).field("password", &"<redacted>").finish()
    }
}

/// `ADMIN_SECRET_ARN` (a secret holding `{"email","password"}`, read through the
/// extension), else `ADMIN_EMAIL` + `ADMIN_PASSWORD`; `None` when neither is set.
pub async fn admin_credentials(env: &impl Env) -> Result<Option<AdminCredentials>, ConfigError> {
    if let Some(arn) = verbatim(env, "ADMIN_SECRET_ARN") {
        let raw = SecretsExtension::from_env(env)?.get(&arn).await?;
        return serde_json::from_str(&raw).map(Some).map_err(|err| ConfigError::Secret {
            secret_id: arn,
            reason: format!("expected JSON with \"email\" and \"password\": {err}"),
        });
    }
    match (verbatim(env, "ADMIN_EMAIL"), verbatim(env, "ADMIN_PASSWORD")) {
        (Some(email), Some(password)) => Ok(Some(AdminCredentials { email, password })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Missing("ADMIN_PASSWORD (ADMIN_EMAIL is set)")),
        (None, Some(_)) => Err(ConfigError::Missing("ADMIN_EMAIL (ADMIN_PASSWORD is set)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env::{env, fake_extension};

    #[tokio::test]
    async fn admin_credentials_from_env_or_secret() {
        let none = admin_credentials(&env(&[])).await.map(|a| a.is_none()).ok();
        assert_eq!(none, Some(true));
        let half = admin_credentials(&env(&[("ADMIN_EMAIL", "a@b.c")])).await;
        assert!(matches!(half, Err(ConfigError::Missing(_))));
        let both = admin_credentials(&env(&[("ADMIN_EMAIL", "a@b.c"), ("ADMIN_PASSWORD", "pw")])).await;
        let both = both.ok().flatten();
        assert_eq!(both.as_ref().map(|a| (a.email.as_str(), a.password.as_str())), Some(("a@b.c", "pw")));
        assert!(!format!("{both:?}").contains("pw\""), "Debug must not print the password");

        let (port, _heads) = fake_extension(|_| {
            let secret = r#"{"email":"root@example.com","password":"from the secret"}"#;
            (200, serde_json::json!({ "SecretString": secret }).to_string())
        })
        .await;
        let port = port.to_string();
        let from_secret = admin_credentials(&env(&[
            ("ADMIN_SECRET_ARN", "admin-arn"),
            ("ADMIN_EMAIL", "ignored@example.com"),
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
        ]))
        .await
        .ok()
        .flatten();
        assert_eq!(
            from_secret.map(|a| (a.email, a.password)),
            Some(("root@example.com".into(), "from the secret".into()))
        );
    }
}
