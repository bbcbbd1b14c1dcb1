//! The one place where the errors of the layers below HTTP become [`AppError`]s, and so
//! statuses and error codes: the store's, the throttle's and the password functions'.
//! Which constraint means what to a client is decided here, not in the store.

use crate::auth::PasswordError;
use crate::error::AppError;
use crate::store::{Entity, StoreError, Unavailable};
use crate::throttle::ThrottleError;

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { entity: Entity::Product, id } => Self::ProductNotFound { product_id: id },
            // The same answer for another user's order as for none: ids are not disclosed.
            StoreError::NotFound { entity: Entity::Order, .. } => Self::OrderNotFound,
            StoreError::Conflict { constraint, source } => match constraint.as_str() {
                "users_email_key" => Self::EmailTaken,
                "products_sku_key" => Self::SkuTaken,
                // Only an order references its user: the token names a user that no longer exists.
                "orders_user_id_fkey" => Self::InvalidToken,
                _ => Self::internal(StoreError::Conflict { constraint, source }),
            },
            StoreError::OutOfStock { product_id } => Self::OutOfStock { product_id },
            StoreError::KeyReused => Self::IdempotencyKeyReused,
            StoreError::Archived { product_id } => Self::ProductArchived { product_id },
            StoreError::StockShort { product_id } => Self::InsufficientStock { product_id },
            StoreError::VersionMismatch => Self::VersionMismatch,
            StoreError::CancelWindowClosed => Self::CancelWindowClosed,
            StoreError::Unavailable { kind: Unavailable::CommitUnknown, source } => Self::CommitUnknown(source),
            StoreError::Unavailable { source, .. } => Self::Unavailable(source),
            StoreError::Unexpected(source) => Self::Internal(source),
        }
    }
}

/// Handlers take connections and open transactions themselves; those errors are classified
/// as the store classifies its own.
impl From<deadpool_postgres::PoolError> for AppError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        StoreError::from(err).into()
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::from(err).into()
    }
}

impl From<ThrottleError> for AppError {
    fn from(err: ThrottleError) -> Self {
        match err {
            ThrottleError::TooManyAttempts { retry_after } => Self::TooManyAttempts { retry_after },
            ThrottleError::TooManyRegistrations { retry_after } => Self::TooManyRegistrations { retry_after },
            ThrottleError::Store(err) => err.into(),
        }
    }
}

impl From<PasswordError> for AppError {
    fn from(err: PasswordError) -> Self {
        Self::internal(err)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::store::tests::classified;

    /// A real violation of a constraint named `name`.
    async fn conflict_on(name: &str) -> StoreError {
        let setup = format!("CREATE TEMP TABLE t (x INT CONSTRAINT {name} UNIQUE); INSERT INTO t VALUES (1)");
        classified(&setup, "INSERT INTO t VALUES (1)").await
    }

    fn answer(err: impl Into<AppError>) -> (StatusCode, &'static str) {
        let err = err.into();
        (err.status(), err.code())
    }

    #[tokio::test]
    async fn constraints_the_api_knows_are_answered_by_name_and_others_are_ours() {
        assert_eq!(answer(conflict_on("users_email_key").await), (StatusCode::CONFLICT, "email_taken"));
        assert_eq!(answer(conflict_on("products_sku_key").await), (StatusCode::CONFLICT, "sku_taken"));
        assert_eq!(answer(conflict_on("orders_user_id_fkey").await), (StatusCode::UNAUTHORIZED, "invalid_token"));
        assert_eq!(answer(conflict_on("some_other_key").await), (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"));
    }

    #[test]
    fn store_outcomes_keep_their_statuses_and_codes() {
        let unavailable = |kind| StoreError::Unavailable { kind, source: "gone".into() };
        assert_eq!(
            answer(StoreError::NotFound { entity: Entity::Product, id: 7 }),
            (StatusCode::NOT_FOUND, "product_not_found")
        );
        assert_eq!(answer(StoreError::OutOfStock { product_id: 7 }), (StatusCode::CONFLICT, "out_of_stock"));
        assert_eq!(answer(StoreError::KeyReused), (StatusCode::CONFLICT, "idempotency_key_reused"));
        assert_eq!(answer(StoreError::Archived { product_id: 7 }), (StatusCode::CONFLICT, "product_archived"));
        assert_eq!(answer(StoreError::StockShort { product_id: 7 }), (StatusCode::CONFLICT, "insufficient_stock"));
        assert_eq!(answer(StoreError::VersionMismatch), (StatusCode::PRECONDITION_FAILED, "version_mismatch"));
        assert_eq!(
            answer(StoreError::NotFound { entity: Entity::Order, id: 7 }),
            (StatusCode::NOT_FOUND, "order_not_found")
        );
        assert_eq!(answer(StoreError::CancelWindowClosed), (StatusCode::CONFLICT, "cancel_window_closed"));
        assert_eq!(answer(unavailable(Unavailable::CommitUnknown)), (StatusCode::BAD_GATEWAY, "commit_unknown"));
        for kind in [Unavailable::Pool, Unavailable::ConnectionLost, Unavailable::Timeout] {
            assert_eq!(answer(unavailable(kind)), (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"));
        }
        assert_eq!(answer(StoreError::unexpected("bad row")), (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"));
        let throttled = ThrottleError::TooManyAttempts { retry_after: std::time::Duration::from_secs(3) };
        assert_eq!(answer(throttled), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"));
    }
}
