#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests of the API over HTTP against real PostgreSQL (each test its own
//! database), plus the Lambda entry points fed API Gateway events. One test binary, so it
//! links once.

mod addresses;
mod app_role;
mod archive;
mod auth;
mod bad_input;
mod carts;
mod commit_unknown;
mod connections;
mod deadlocks;
mod email;
mod idempotency;
mod json_numbers;
mod lambda_events;
mod logs;
mod mail_failures;
mod metrics;
mod migrate;
mod order_history;
mod order_lifecycle;
mod orders;
mod outbox_recovery;
mod process;
mod product_edit;
mod products;
mod registration_limits;
mod retention;
mod soak;
mod sql_functions;
mod stock_changes;
mod throttling;
