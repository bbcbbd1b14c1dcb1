//! Shared library of the game-store functions. Each HTTP function crate exposes a router
//! built from these pieces; its `main` hands the router to [`lambda::run_http`].

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod lambda;
pub mod state;
pub mod store;
pub mod telemetry;

pub use error::AppError;
pub use state::AppState;
