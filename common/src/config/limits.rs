//! Login and registration throttling (README, "Login throttling and lockout" and
//! "Registration limits"), and the buyer's window to cancel an order.

use std::time::Duration;

use super::{ConfigError, Env, parsed, positive};

/// How login attempts and registrations are throttled (README, "Login throttling and
/// lockout" and "Registration limits"). Every value has an environment variable, so a
/// test or contract run can raise them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `LOGIN_WINDOW_SECONDS` (900): the window every login counter counts in.
    pub login_window: Duration,
    /// `LOGIN_MAX_FAILURES_PER_PAIR` (5): attempts of one account from one network.
    pub login_per_pair: i32,
    /// `LOGIN_MAX_FAILURES_PER_NETWORK` (100): failures from one network, any accounts.
    pub login_per_network: i32,
    /// `LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY` (10): failures of one account, any networks,
    /// before each further attempt waits a delay.
    pub login_per_account: i32,
    /// `LOGIN_ACCOUNT_DELAY_SECONDS` (1): the first delay, doubled by each further attempt.
    pub login_account_delay: Duration,
    /// `LOGIN_ACCOUNT_MAX_DELAY_SECONDS` (60): the longest delay.
    pub login_account_max_delay: Duration,
    /// `REGISTER_WINDOW_SECONDS` (3600): the window registrations are counted in.
    pub register_window: Duration,
    /// `REGISTER_MAX_PER_NETWORK` (10): registrations from one network in that window.
    pub register_per_network: i32,
    /// `ORDER_CANCEL_WINDOW_MINUTES` (30): how long after placing an order its buyer may
    /// cancel it (0: never; admins cancel at any time).
    pub order_cancel_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login_window: Duration::from_secs(15 * 60),
            login_per_pair: 5,
            login_per_network: 100,
            login_per_account: 10,
            login_account_delay: Duration::from_secs(1),
            login_account_max_delay: Duration::from_secs(60),
            register_window: Duration::from_secs(3600),
            register_per_network: 10,
            order_cancel_window: Duration::from_secs(30 * 60),
        }
    }
}

impl Limits {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let default = Self::default();
        let seconds =
            |name, default: Duration| positive(name, parsed(env, name, default.as_secs())?).map(Duration::from_secs);
        let count = |name, default| positive(name, parsed(env, name, default)?);
        Ok(Self {
            login_window: seconds("LOGIN_WINDOW_SECONDS", default.login_window)?,
            login_per_pair: count("LOGIN_MAX_FAILURES_PER_PAIR", default.login_per_pair)?,
            login_per_network: count("LOGIN_MAX_FAILURES_PER_NETWORK", default.login_per_network)?,
            login_per_account: count("LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY", default.login_per_account)?,
            login_account_delay: seconds("LOGIN_ACCOUNT_DELAY_SECONDS", default.login_account_delay)?,
            login_account_max_delay: seconds("LOGIN_ACCOUNT_MAX_DELAY_SECONDS", default.login_account_max_delay)?,
            register_window: seconds("REGISTER_WINDOW_SECONDS", default.register_window)?,
            register_per_network: count("REGISTER_MAX_PER_NETWORK", default.register_per_network)?,
            order_cancel_window: Duration::from_secs(
                60 * parsed(env, "ORDER_CANCEL_WINDOW_MINUTES", default.order_cancel_window.as_secs() / 60)?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env::env;

    #[test]
    fn limits_have_defaults_and_come_from_the_environment() {
        assert_eq!(Limits::from_env(&env(&[])).ok(), Some(Limits::default()));
        let raised = Limits::from_env(&env(&[("REGISTER_MAX_PER_NETWORK", "500"), ("LOGIN_WINDOW_SECONDS", "60")]));
        assert_eq!(
            raised.ok().map(|l| (l.register_per_network, l.login_window, l.login_per_pair)),
            Some((500, Duration::from_secs(60), 5))
        );
        let window =
            |raw| Limits::from_env(&env(&[("ORDER_CANCEL_WINDOW_MINUTES", raw)])).map(|l| l.order_cancel_window);
        assert_eq!(window("0").ok(), Some(Duration::ZERO));
        assert_eq!(window("45").ok(), Some(Duration::from_secs(45 * 60)));
        assert!(matches!(window("-1"), Err(ConfigError::Invalid { name: "ORDER_CANCEL_WINDOW_MINUTES", .. })));
        for (name, value) in
            [("LOGIN_MAX_FAILURES_PER_PAIR", "0"), ("REGISTER_MAX_PER_NETWORK", "-1"), ("LOGIN_WINDOW_SECONDS", "soon")]
        {
            let refused = Limits::from_env(&env(&[(name, value)]));
            assert!(matches!(refused, Err(ConfigError::Invalid { name: n, .. }) if n == name), "{name}={value}");
        }
    }
}
