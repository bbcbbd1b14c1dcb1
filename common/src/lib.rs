//! Shared library of the game-store functions. [`lambda`] starts every function whatever its
//! trigger, building the [`resources`] it needs from [`config`]. Each HTTP function crate
//! exports its routes as [`http::Routes`] and, with what it needs, as a
//! [`lambda::HttpFunction`] that its `main` hands to [`lambda::run_http`].
//!
//! # Layers
//!
//! A request goes down, and each layer imports only the ones below it:
//!
//! 1. handler (`functions/*`): parse, act, respond; answers [`AppError`].
//! 2. HTTP and domain: [`http`] (extractors, the router's shared layers, and
//!    `http::errors`, the one mapping of the lower layers' errors to [`AppError`] and so to
//!    statuses and codes), [`auth`] (tokens, passwords), [`throttle`] and [`outbox`]
//!    (policies over the store, with their own errors), [`domain`] (validated values).
//! 3. [`store`]: all SQL, one module per aggregate; answers [`store::StoreError`] and
//!    knows nothing of HTTP.
//! 4. SQL: the migrations and their PL/pgSQL functions.
//!
//! Beside them: [`error`] (the HTTP error type, importing nothing of this crate),
//! [`message`] (the outbox message, a leaf that `outbox`, `queue` and `store::outbox`
//! share), [`queue`] and [`mail`] (transports), [`db`] (the pool and migrations), `setup`
//! (migrations plus the first admin, above `db`, `store` and `auth`), [`retention`],
//! and the process plumbing ([`config`], [`resources`], [`state`], [`lambda`], [`telemetry`]). The
//! module graph has no cycle.

pub mod auth;
#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod lambda;
pub mod mail;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod queue;
pub mod resources;
pub mod retention;
#[cfg(feature = "migrations")]
pub mod setup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;

pub use error::AppError;
pub use state::AppState;
