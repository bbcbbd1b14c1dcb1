//! Shared library of the game-store functions. Each HTTP function crate exposes a router
//! built from these pieces; its `main` hands the router to [`lambda::run_http`].

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
pub mod outbox;
pub mod queue;
pub mod resources;
pub mod retention;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;

pub use error::AppError;
pub use state::AppState;
