-- The role the functions connect as (README "Least privilege", migrations/README.md
-- "The application role"): it reads and writes the rows the code uses and calls its
-- functions; it owns nothing, so it cannot drop, alter, truncate or redefine anything,
-- create in the schema, or read the migration history. `migrate` (connected as the
-- owner) gives it LOGIN and its password from the application secret after this runs.
--
-- Roles are cluster-wide and one cluster holds many databases (the tests copy one
-- template into many): create it only when missing, NOLOGIN until migrate says otherwise.
-- Two databases migrated at once may both find it missing; the loser of that race finds
-- it created.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gamestore_app') THEN
        CREATE ROLE gamestore_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- PostgreSQL 15 and later already withhold CREATE on public from PUBLIC; older
-- clusters grant it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO gamestore_app;

-- Exactly the verbs the store modules and the SQL functions use on each table. Locking
-- reads (FOR UPDATE / FOR NO KEY UPDATE) need UPDATE; ON CONFLICT DO UPDATE needs UPDATE.
-- Identity columns draw from their sequences without a grant on them.
-- login_failures (unused since V4) and refinery_schema_history get nothing.
GRANT SELECT, INSERT, UPDATE ON users, products, product_stock TO gamestore_app;
GRANT SELECT, INSERT ON orders, order_items TO gamestore_app;
-- A cancel changes an order's status, nothing else (its row lock needs UPDATE on a column).
GRANT UPDATE (status, cancelled_at) ON orders TO gamestore_app;
-- The stock ledger is append-only.
GRANT SELECT, INSERT ON stock_movements TO gamestore_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON idempotency_keys, registration_keys, rate_limits, outbox, email_deliveries TO gamestore_app;

-- Functions are executable by PUBLIC by default, so by every role of the cluster: only
-- the application may call them. CREATE OR REPLACE (migrate re-applies
-- migrations/functions/*.sql on every run) keeps these grants.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO gamestore_app;
-- The same for the functions migrate creates later (migrations/functions/*.sql after this
-- version, new files included): default privileges of the role that migrates. Per-schema
-- defaults can only add to the global ones, so the PUBLIC grant is taken away globally.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO gamestore_app;
