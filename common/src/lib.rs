//! Shared library of the game-store functions. Layers, top down: [`lambda`] starts every
//! function whatever its trigger, building the [`resources`] it needs from [`config`];
//! handlers use [`http`], [`auth`] and [`domain`] at the edge and [`store`] for SQL. Each
//! HTTP function crate exports its routes as [`http::Routes`]; its `main` names what it
//! needs and hands them to [`lambda::run_http`].

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
