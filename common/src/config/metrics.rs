//! Whether the EMF metric lines are written, and where they go in CloudWatch
//! ([`MetricsSettings`]).

use super::{ConfigError, Env, optional};

/// Whether metric lines are written (`METRICS`, `on` by default; `off` to measure what they
/// cost, bench/README.md), the CloudWatch namespace and the `Service` dimension of every
/// line, and the function it names (a property: `AWS_LAMBDA_FUNCTION_NAME`, `gamestore`
/// locally).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub namespace: String,
    pub service: String,
    pub function: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { enabled: true, namespace: "GameStore".into(), service: "gamestore".into(), function: "gamestore".into() }
    }
}

impl MetricsSettings {
    /// `METRICS_NAMESPACE` (default `GameStore`) and `METRICS_SERVICE` (default
    /// `gamestore`; the template sets one per stage, so prod's alarms see only prod).
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let default = Self::default();
        let enabled = match optional(env, "METRICS").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(_) => return Err(ConfigError::Invalid { name: "METRICS", reason: "must be on or off".into() }),
        };
        let namespace = optional(env, "METRICS_NAMESPACE").unwrap_or(default.namespace);
        let service = optional(env, "METRICS_SERVICE").unwrap_or(default.service);
        // EMF refuses a namespace starting with ':'; CloudWatch namespaces hold 255 characters.
        if namespace.starts_with(':') || namespace.len() > 255 {
            return Err(ConfigError::Invalid {
                name: "METRICS_NAMESPACE",
                reason: "must not start with ':' and be at most 255 characters".into(),
            });
        }
        if service.len() > 250 {
            return Err(ConfigError::Invalid {
                name: "METRICS_SERVICE",
                reason: "must be at most 250 characters".into(),
            });
        }
        let function = optional(env, "AWS_LAMBDA_FUNCTION_NAME").unwrap_or(default.function);
        Ok(Self { enabled, namespace, service, function })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let none = |_: &str| None;
        assert_eq!(MetricsSettings::from_env(&none).ok(), Some(MetricsSettings::default()));
        let set = |name: &str| match name {
            "METRICS_NAMESPACE" => Some("Shop/Prod".to_owned()),
            "METRICS_SERVICE" => Some(" shop-prod ".to_owned()),
            _ => None,
        };
        assert_eq!(
            MetricsSettings::from_env(&set).ok(),
            Some(MetricsSettings {
                enabled: true,
                namespace: "Shop/Prod".into(),
                service: "shop-prod".into(),
                function: "gamestore".into()
            })
        );
        let bad = |name: &str| (name == "METRICS_NAMESPACE").then(|| ":bad".to_owned());
        assert!(MetricsSettings::from_env(&bad).is_err());
        let off = |name: &str| (name == "METRICS").then(|| "off".to_owned());
        assert_eq!(MetricsSettings::from_env(&off).map(|s| s.enabled).ok(), Some(false));
        let typo = |name: &str| (name == "METRICS").then(|| "of".to_owned());
        assert!(matches!(MetricsSettings::from_env(&typo), Err(ConfigError::Invalid { name: "METRICS", .. })));
    }
}
