//! The classification of driver errors, against the real Postgres of the tests
//! (`TEST_DATABASE_URL`). Each test works in temporary tables of its own session, so it
//! needs no database of its own and leaves nothing behind.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::{StoreError, Unavailable};

pub(crate) async fn session() -> Client {
    let url = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL is not set: run `make test`, or point it at a test Postgres");
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect to test Postgres");
    tokio::spawn(connection);
    client
}

/// The error `sql`, run after `setup` in a fresh session, fails with, classified.
pub(crate) async fn classified(setup: &str, sql: &str) -> StoreError {
    let client = session().await;
    client.batch_execute(setup).await.expect("set up");
    let err = client.batch_execute(sql).await.expect_err("the statement must fail");
    StoreError::from(err)
}

const TABLES: &str = "\
    CREATE TEMP TABLE parents (id INT PRIMARY KEY, name TEXT CONSTRAINT parents_name_key UNIQUE); \
    CREATE TEMP TABLE children (parent_id INT CONSTRAINT children_parent_id_fkey REFERENCES parents, \
                                n INT CONSTRAINT children_n_check CHECK (n > 0)); \
    INSERT INTO parents VALUES (1, 'taken');";

fn constraint(err: &StoreError) -> Option<&str> {
    match err {
        StoreError::Conflict { constraint, .. } => Some(constraint),
        _ => None,
    }
}

#[tokio::test]
async fn a_unique_violation_is_a_conflict_on_its_constraint() {
    let err = classified(TABLES, "INSERT INTO parents VALUES (2, 'taken')").await;
    assert_eq!(constraint(&err), Some("parents_name_key"), "{err:?}");
}

#[tokio::test]
async fn foreign_key_and_check_violations_are_conflicts_on_their_constraints() {
    let err = classified(TABLES, "INSERT INTO children VALUES (42, 1)").await;
    assert_eq!(constraint(&err), Some("children_parent_id_fkey"), "{err:?}");
    let err = classified(TABLES, "INSERT INTO children VALUES (1, 0)").await;
    assert_eq!(constraint(&err), Some("children_n_check"), "{err:?}");
}

#[tokio::test]
async fn a_statement_timeout_is_unavailable() {
    let err = classified("SET statement_timeout = '50ms'", "SELECT pg_sleep(30)").await;
    assert!(matches!(err, StoreError::Unavailable { kind: Unavailable::Timeout, .. }), "{err:?}");
}

#[tokio::test]
async fn a_closed_connection_is_unavailable() {
    let client = session().await;
    // This session's own backend, and no other.
    let _ = client.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())").await;
    for _ in 0..500 {
        if client.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = StoreError::from(client.batch_execute("SELECT 1").await.expect_err("the connection is gone"));
    assert!(matches!(err, StoreError::Unavailable { kind: Unavailable::ConnectionLost, .. }), "{err:?}");
}

#[tokio::test]
async fn no_connection_from_the_pool_is_unavailable() {
    // Nothing listens on port 1: the pool cannot open a connection.
    let pool = crate::db::pool("postgres://u@127.0.0.1:1/db", 1).expect("pool");
    let err = StoreError::from(pool.get().await.expect_err("no server"));
    assert!(matches!(err, StoreError::Unavailable { kind: Unavailable::Pool, .. }), "{err:?}");
}

#[tokio::test]
async fn any_other_error_is_unexpected() {
    for sql in ["SELEC 1", "SELECT 1 / 0", "INSERT INTO parents (id) VALUES (NULL)"] {
        let err = classified(TABLES, sql).await;
        assert!(matches!(err, StoreError::Unexpected(_)), "{sql}: {err:?}");
    }
}
