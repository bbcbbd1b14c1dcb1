-- Catalogue search (issue 15): name search that ignores case and accents, price range,
-- in-stock only, sort by id, price or newest, each with keyset pages.
-- Expand-only: new extensions, a function, a generated column and indexes; the previous
-- release reads none of them.
--
-- The indexes are built without CONCURRENTLY: refinery runs every migration in a
-- transaction. Each build holds a SHARE lock on products (product writes wait for it;
-- orders, which only lock product rows FOR KEY SHARE and write product_stock, do not):
-- at 100k products 1.7 s for the trigram index, 0.2 s for each btree (busy 2-core host).

-- Both extensions are trusted (PostgreSQL 13+: a database owner may create them) and on
-- RDS's list of allowed extensions. In a schema of their own, so that `public` holds only
-- the functions of migrations/functions.
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA extensions;
-- The application (V12) computes search_key when it writes a product's name and when it
-- folds a search text, as itself: search_key is not SECURITY DEFINER, so the unaccent it
-- calls needs the application's USAGE and EXECUTE (migrate's default privileges withhold
-- EXECUTE from PUBLIC, on the extensions' functions too). pg_trgm's functions run inside
-- the index and the LIKE operator (pg_catalog's): nothing to grant there.
GRANT USAGE ON SCHEMA extensions TO gamestore_app;
GRANT EXECUTE ON FUNCTION extensions.unaccent(regdictionary, text) TO gamestore_app;

-- Also in migrations/functions/search_key.sql, which must stay identical: products.name_key
-- below is computed by this definition (migrations/README.md).
CREATE FUNCTION search_key(p_text TEXT)
RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lower(extensions.unaccent('extensions.unaccent'::regdictionary, p_text))
$$;

-- The folded name, kept with the row: a search that walks many rows (a common word in
-- price order, or a filter that matches little) compares stored text instead of calling
-- unaccent on every row it passes (LIKE over 100k names: 136 ms against 313 ms). Adding it
-- rewrites products under an ACCESS EXCLUSIVE lock, once: every order waits for it, up to
-- 7 s at 100k products on a busy 2-core host (a per-request cost traded for a deploy-time
-- one). The previous release inserts without it: it is computed on every write.
ALTER TABLE products ADD COLUMN name_key TEXT GENERATED ALWAYS AS (search_key(name)) STORED;
-- Substring and prefix search on names: trigrams of the folded name, for LIKE '%…%'.
CREATE INDEX products_name_key_idx ON products
    USING gin (name_key extensions.gin_trgm_ops) WHERE archived_at IS NULL;
-- Keyset order of sort=price and sort=newest (sort=id has the primary key); the tie on
-- equal prices or creation times is broken by id.
CREATE INDEX products_price_id_idx ON products (price, id) WHERE archived_at IS NULL;
CREATE INDEX products_created_at_id_idx ON products (created_at, id) WHERE archived_at IS NULL;
