//! What login and registration count, and when they refuse: the lockout design of the
//! README's "Login throttling and lockout" and "Registration limits". Every attempt is
//! counted before the costly work (the argon2 check or hash), in one atomic statement.
//!
//! A policy over `store::rate_limits`: it refuses with its own [`ThrottleError`], which
//! `crate::http` answers with 429 and `Retry-After`.

use std::net::IpAddr;
use std::time::Duration;

use crate::db::Executor;

use crate::config::Limits;
use crate::domain::Email;
use crate::metrics::{self, Metric};
use crate::store::StoreError;
use crate::store::rate_limits::{self, Backoff, Counter};

/// Why an attempt was refused; `crate::http` answers it with 429 and `Retry-After`.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error("too many login attempts; retry after {retry_after:?}")]
    TooManyAttempts { retry_after: Duration },
    #[error("too many registrations from this network; retry after {retry_after:?}")]
    TooManyRegistrations { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A login attempt that was counted; report its success with [`LoginAttempt::succeeded`].
pub struct LoginAttempt {
    /// This account from this network: the only lockout.
    pair: Counter,
    /// This account from anywhere: slowed down by a growing delay, never locked.
    account: Counter,
    /// This network, whatever the accounts (credential stuffing): a higher limit.
    network: Counter,
}

impl LoginAttempt {
    /// Counts an attempt to sign in as `email` from `client`, or refuses it with
    /// [`ThrottleError::TooManyAttempts`] (counting nothing) when any of its counters is past
    /// its limit. An unknown email is counted exactly like a real one.
    pub async fn count(
        db: &impl Executor,
        limits: &Limits,
        email: &Email,
        client: Option<IpAddr>,
    ) -> Result<Self, ThrottleError> {
        let network = network(client);
        let counter =
            |subject: String, limit, backoff| Counter { subject, limit, window: limits.login_window, backoff };
        let attempt = Self {
            pair: counter(format!("login:pair:{network} {}", email.as_str()), limits.login_per_pair, None),
            account: counter(
                format!("login:account:{}", email.as_str()),
                limits.login_per_account,
                Some(Backoff { first: limits.login_account_delay, max: limits.login_account_max_delay }),
            ),
            network: counter(format!("login:network:{network}"), limits.login_per_network, None),
        };
        match rate_limits::hit(db, &[&attempt.pair, &attempt.account, &attempt.network]).await? {
            None => Ok(attempt),
            Some(retry_after) => Err(ThrottleError::TooManyAttempts { retry_after })
                .inspect_err(|_| metrics::count(Metric::LoginsThrottled)),
        }
    }

    /// The password was right: this pair starts afresh, and the account's and network's
    /// counters forget this pair's attempts (its typos), not the failures of others.
    pub async fn succeeded(self, db: &impl Executor) -> Result<(), StoreError> {
        rate_limits::forgive(db, &self.pair, &[&self.account, &self.network]).await
    }
}

/// Counts a registration from `client` before its password is hashed, or refuses it with
/// [`ThrottleError::TooManyRegistrations`].
pub async fn count_registration(
    db: &impl Executor,
    limits: &Limits,
    client: Option<IpAddr>,
) -> Result<(), ThrottleError> {
    let counter = Counter {
        subject: format!("register:network:{}", network(client)),
        limit: limits.register_per_network,
        window: limits.register_window,
        backoff: None,
    };
    match rate_limits::hit(db, &[&counter]).await? {
        None => Ok(()),
        Some(retry_after) => Err(ThrottleError::TooManyRegistrations { retry_after }),
    }
}

/// The network a client is counted as: its IPv4 address, or the /64 prefix of its IPv6
/// address (one subscriber gets a whole /64, so single IPv6 addresses cost nothing to
/// change). A request with no known address (none reaches the API without one: API
/// Gateway's `sourceIp`, the TCP peer locally) shares one `unknown` network.
fn network(client: Option<IpAddr>) -> String {
    match client.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_ipv4_addresses_and_ipv6_prefixes() {
        let net = |ip: &str| network(ip.parse().ok());
        assert_eq!(net("203.0.113.7"), "203.0.113.7");
        assert_eq!(net("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(net("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
        assert_ne!(net("2001:db8:1:3::1"), net("2001:db8:1:2::1"));
        assert_eq!(network(None), "unknown");
    }
}
