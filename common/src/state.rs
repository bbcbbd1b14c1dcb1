//! The state HTTP handlers share, built once per process (per Lambda execution environment)
//! from the [`Resources`] a function asked for.

use std::sync::Arc;

use crate::db::Pool;
use axum::extract::FromRef;

use crate::auth::Jwt;
use crate::config::{Config, Limits};
use crate::db::{self, DbError};
use crate::queue::Publisher;
use crate::resources::{NotAsked, Resources};

/// What the store's handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Pool,
    pub jwt: Arc<Jwt>,
    /// Where committed outbox messages are published; `None` leaves them to the sweeper.
    pub publisher: Option<Arc<dyn Publisher>>,
    pub limits: Limits,
}

impl AppState {
    pub fn new(config: &Config) -> Result<Self, DbError> {
        Ok(Self {
            db: db::pool(&config.database_url, config.db_pool_size)?,
            jwt: Arc::new(Jwt::new(&config.jwt_secret, config.jwt_ttl)),
            publisher: None,
            limits: config.limits,
        })
    }

    /// This state, publishing outbox messages with `publisher`.
    pub fn with_publisher(self, publisher: Arc<dyn Publisher>) -> Self {
        Self { publisher: Some(publisher), ..self }
    }
}

/// The state a function's routes take, made from the [`Resources`] its `Needs` asked for;
/// `()` for routes that take none.
pub trait FromResources: Sized {
    fn from_resources(resources: &Resources) -> Result<Self, NotAsked>;
}

/// Needs the database and the JWT key; the publisher when there is one.
impl FromResources for AppState {
    fn from_resources(resources: &Resources) -> Result<Self, NotAsked> {
        Ok(Self {
            db: resources.pool()?.clone(),
            jwt: resources.jwt()?.clone(),
            publisher: resources.publisher.clone(),
            limits: resources.limits,
        })
    }
}

impl FromResources for () {
    fn from_resources(_: &Resources) -> Result<Self, NotAsked> {
        Ok(())
    }
}

impl FromRef<AppState> for Arc<Jwt> {
    fn from_ref(state: &AppState) -> Self {
        state.jwt.clone()
    }
}
