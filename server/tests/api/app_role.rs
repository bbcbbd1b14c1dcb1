//! The application role (V12, README "Least privilege") the functions connect as: it may
//! read and write rows and call the functions (every other test's app connects as it), and
//! nothing more. Each statement here must fail with 42501 (insufficient_privilege).

use testkit::postgres::{Client, as_application, connect, fresh_database};
use tokio_postgres::error::SqlState;

async fn application() -> Client {
    connect(&as_application(&fresh_database().await)).await
}

async fn refused(client: &Client, sql: &str) {
    let err = client.batch_execute(sql).await.err();
    let code = err.as_ref().and_then(|e| e.code());
    assert_eq!(code, Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{sql}: {err:?}");
}

#[tokio::test]
async fn it_connects_as_its_own_role_not_the_owner() {
    let client = application().await;
    let row = client.query_one("SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user", &[]);
    let row = row.await.expect("who am I");
    assert_eq!(row.get::<_, String>(0), common::db::APPLICATION_ROLE);
    assert!(!row.get::<_, bool>(1));
}

#[tokio::test]
async fn it_cannot_change_the_schema() {
    let client = application().await;
    refused(&client, "DROP TABLE orders").await;
    refused(&client, "ALTER TABLE users ADD COLUMN nickname TEXT").await;
    refused(&client, "TRUNCATE outbox").await;
    refused(&client, "CREATE TABLE scratch (x INT)").await;
    refused(&client, "CREATE INDEX ON users (created_at)").await;
    refused(
        &client,
        "CREATE OR REPLACE FUNCTION place_order(p_user_id BIGINT, p_product_ids BIGINT[], p_quantities INT[], \
         p_key TEXT, p_fingerprint TEXT) RETURNS TABLE (order_id BIGINT, created_at TIMESTAMPTZ, \
         product_id BIGINT, quantity INT, unit_price BIGINT, replayed BOOLEAN) LANGUAGE plpgsql AS 'BEGIN END'",
    )
    .await;
    refused(&client, "DROP FUNCTION list_products(BIGINT, BIGINT)").await;
}

#[tokio::test]
async fn it_cannot_touch_what_the_code_does_not_use() {
    let client = application().await;
    // The migration history is migrate's alone.
    refused(&client, "SELECT * FROM refinery_schema_history").await;
    refused(&client, "DELETE FROM refinery_schema_history").await;
    // Unused since V4.
    refused(&client, "SELECT * FROM login_failures").await;
    // Orders and their lines are written once and never changed or deleted.
    refused(&client, "UPDATE orders SET total = 0").await;
    refused(&client, "DELETE FROM order_items").await;
    // A cancel changes the status alone; the stock ledger is append-only.
    refused(&client, "UPDATE orders SET user_id = user_id").await;
    refused(&client, "UPDATE stock_movements SET delta = 1").await;
    refused(&client, "DELETE FROM stock_movements").await;
    // Accounts and products are never deleted.
    refused(&client, "DELETE FROM users").await;
    refused(&client, "DELETE FROM products").await;
    // Nor may it give itself more.
    refused(&client, "ALTER ROLE gamestore_app CREATEROLE").await;
}

/// Every function in the schema, those defined by the versioned migrations and by
/// `migrations/functions/` (created after V12 by migrate's default privileges included), is
/// the application's to call and nobody else's.
#[tokio::test]
async fn every_function_is_executable_by_the_application_alone() {
    let database = fresh_database().await;
    let owner = connect(&database).await;
    let rows = owner
        .query(
            "SELECT p.oid::regprocedure::text, \
                    has_function_privilege($1, p.oid, 'EXECUTE'), \
                    p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a \
                                                 WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') \
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
              WHERE n.nspname = 'public' ORDER BY 1",
            &[&common::db::APPLICATION_ROLE],
        )
        .await
        .expect("functions");
    assert!(rows.len() >= 10, "the schema's functions: {}", rows.len());
    let wrong: Vec<String> = rows
        .iter()
        .filter(|row| !row.get::<_, bool>(1) || row.get::<_, bool>(2))
        .map(|row| row.get::<_, String>(0))
        .collect();
    assert_eq!(wrong, Vec::<String>::new(), "not the application's alone");
}
