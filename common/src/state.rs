//! The state HTTP handlers share, built once per process (per Lambda execution environment)
//! from the [`Resources`] a function asked for.

use std::sync::Arc;

use crate::db::Pool;
use axum::extract::FromRef;

use crate::auth::Jwt;
use crate::config::{Config, Limits};
use crate::db::{self, DbError};
use crate::queue::Publisher;
use crate::resources::{Needs, NotAsked, Resources};

/// What the store's handlers share. `K` is the token key: [`Arc<Jwt>`] (the default) for
/// the functions that sign or verify tokens and the local server, [`NoKey`] for those that
/// do neither, whose Lambda then reads no key. The `Caller` and `Admin` extractors take the
/// key from the state (`Arc<Jwt>: FromRef<S>`), so a route that authenticates does not
/// compile over a state without one.
#[derive(Clone)]
pub struct AppState<K = Arc<Jwt>> {
    pub db: Pool,
    pub jwt: K,
    /// Where committed outbox messages are published; `None` leaves them to the sweeper.
    pub publisher: Option<Arc<dyn Publisher>>,
    pub limits: Limits,
}

/// The key of a state that holds none.
#[derive(Debug, Clone, Copy)]
pub struct NoKey;

impl AppState {
    pub fn new(config: &Config) -> Result<Self, DbError> {
        Ok(Self {
            db: db::pool(&config.database_url, config.db_pool_size)?,
            jwt: Arc::new(Jwt::new(&config.jwt_secret, config.jwt_ttl)),
            publisher: None,
            limits: config.limits,
        })
    }
}

impl<K> AppState<K> {
    /// This state, publishing outbox messages with `publisher`.
    pub fn with_publisher(self, publisher: Arc<dyn Publisher>) -> Self {
        Self { publisher: Some(publisher), ..self }
    }

    /// This state with `jwt` as its key.
    fn keyed<J>(self, jwt: J) -> AppState<J> {
        AppState { db: self.db, jwt, publisher: self.publisher, limits: self.limits }
    }
}

/// The state a function's routes take, made from the [`Resources`] its `Needs` asked for;
/// `()` for routes that take none.
pub trait FromResources: Sized {
    /// What the state is made of: a function's `Needs` must ask for at least this.
    const NEEDS: Needs;

    fn from_resources(resources: &Resources) -> Result<Self, NotAsked>;
}

/// Needs the database and the JWT key; the publisher when there is one.
impl FromResources for AppState {
    const NEEDS: Needs = Needs::DATABASE.jwt();

    fn from_resources(resources: &Resources) -> Result<Self, NotAsked> {
        Ok(AppState::<NoKey>::from_resources(resources)?.keyed(resources.jwt()?.clone()))
    }
}

/// Needs the database only; the publisher when there is one.
impl FromResources for AppState<NoKey> {
    const NEEDS: Needs = Needs::DATABASE;

    fn from_resources(resources: &Resources) -> Result<Self, NotAsked> {
        Ok(Self {
            db: resources.pool()?.clone(),
            jwt: NoKey,
            publisher: resources.publisher.clone(),
            limits: resources.limits,
        })
    }
}

impl FromResources for () {
    const NEEDS: Needs = Needs::NOTHING;

    fn from_resources(_: &Resources) -> Result<Self, NotAsked> {
        Ok(())
    }
}

impl FromRef<AppState> for Arc<Jwt> {
    fn from_ref(state: &AppState) -> Self {
        state.jwt.clone()
    }
}

/// The routes of a function that needs no key also run over the local server's state.
impl FromRef<AppState> for AppState<NoKey> {
    fn from_ref(state: &AppState) -> Self {
        state.clone().keyed(NoKey)
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use super::*;

    /// Whether a state type gives the auth extractors a key: the inherent method applies
    /// when `Arc<Jwt>: FromRef<S>` holds, the trait's otherwise.
    struct Probe<S>(PhantomData<S>);

    trait WithoutKey {
        fn gives_a_key(&self) -> bool {
            false
        }
    }

    impl<S> WithoutKey for Probe<S> {}

    impl<S> Probe<S>
    where
        Arc<Jwt>: FromRef<S>,
    {
        fn gives_a_key(&self) -> bool {
            true
        }
    }

    #[test]
    fn only_a_state_made_with_the_key_gives_one_to_the_auth_extractors() {
        assert!(Probe::<AppState>(PhantomData).gives_a_key());
        assert!(!Probe::<AppState<NoKey>>(PhantomData).gives_a_key());
        assert!(!Probe::<()>(PhantomData).gives_a_key());
    }
}
