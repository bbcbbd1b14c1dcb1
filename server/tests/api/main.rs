#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests of the API over HTTP against real PostgreSQL (each test its own
//! database), plus the Lambda entry points fed API Gateway events. One test binary, so it
//! links once.

mod addresses;
mod auth;
mod bad_input;
mod carts;
mod email;
mod helpers;
mod idempotency;
mod json_numbers;
mod lambda_events;
mod logs;
mod migrate;
mod order_history;
mod orders;
mod process;
mod products;
mod throttling;
