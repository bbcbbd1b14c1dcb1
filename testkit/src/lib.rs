//! Test support of the workspace, dev-only: no shipped binary links it (`bench`, the
//! benchmark tool, takes its fake Lambda Runtime API). It holds
//!
//! - [`lambda`]: the fake Lambda Runtime API and Parameters and Secrets extension that the
//!   real function binaries run against, and [`lambda::spawn_function`];
//! - [`process`]: child processes killed and reaped when their guard drops;
//! - [`services`]: where the shared test services are (`TEST_*_URL`);
//! - [`http`]: a plain HTTP/1 client;
//! - `postgres` (feature `postgres`): fresh databases copied from a template migrated once
//!   per migration set, scratch databases, and a cluster of a test's own to restart;
//! - `app` (feature `app`): the test app, the local server's router on a loopback port
//!   over a fresh database, with a client that speaks to it.
//!
//! A failed set-up fails the test: outside [`lambda`] (which `bench` runs) the kit panics
//! with a message rather than returning errors.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support: a failed set-up fails the test")]

#[cfg(feature = "app")]
pub mod app;
pub mod http;
pub mod lambda;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod process;
pub mod services;

use std::time::{Duration, Instant};

/// `prefix-<random>`: a name (queue, stream, database, address) no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// `prefix-<random>@example.com`: an address no other test registers.
pub fn unique_email(prefix: &str) -> String {
    format!("{}@example.com", unique(prefix))
}

/// Polls `check` every 100 ms until it holds; fails the test after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
