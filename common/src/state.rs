use std::sync::Arc;

use axum::extract::FromRef;
use deadpool_postgres::Pool;

use crate::auth::Jwt;
use crate::config::{Config, Limits};
use crate::db::{self, DbError};
use crate::queue::Publisher;

/// What handlers share: built once per process (per Lambda execution environment).
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

impl FromRef<AppState> for Arc<Jwt> {
    fn from_ref(state: &AppState) -> Self {
        state.jwt.clone()
    }
}
