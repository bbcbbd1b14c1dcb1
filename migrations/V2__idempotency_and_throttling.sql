-- Idempotency keys for POST /orders, and login failure counters for throttling.

-- A key is scoped to the caller. `fingerprint` is the normalised request (lines merged and
-- sorted), so a retry with the same key but another body is told apart from a replay.
CREATE TABLE idempotency_keys (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    order_id    BIGINT REFERENCES orders (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- Failed logins per subject ('email:<address>' or 'ip:<address>') in a fixed window.
-- Shared by every Lambda instance and server process, unlike an in-memory counter.
CREATE TABLE login_failures (
    subject      TEXT PRIMARY KEY,
    failures     INT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL
);

DROP FUNCTION place_order(BIGINT, BIGINT[], INT[]);

-- As in V1, plus an optional idempotency key. A key seen in the last 24 hours replays the
-- order it created (replayed = true) without touching stock; with another fingerprint it
-- raises GS422. Concurrent requests with one key queue on the key's index entry: the
-- second sees the first's order once it commits, or places its own if the first failed
-- (a failed order stores nothing, so retrying it is a new attempt).
CREATE FUNCTION place_order(p_user_id BIGINT, p_product_ids BIGINT[], p_quantities INT[],
                            p_key TEXT, p_fingerprint TEXT)
RETURNS TABLE (order_id BIGINT, created_at TIMESTAMPTZ, product_id BIGINT, quantity INT,
               unit_price BIGINT, replayed BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_prices      BIGINT[];
    v_buckets     INT[];
    v_missing     BIGINT;
    v_order       BIGINT;
    v_created     TIMESTAMPTZ;
    v_fingerprint TEXT;
BEGIN
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k (user_id, key, fingerprint)
        VALUES (p_user_id, p_key, p_fingerprint)
        ON CONFLICT (user_id, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, order_id = NULL, created_at = now()
            WHERE k.created_at < now() - INTERVAL '24 hours';
        IF NOT FOUND THEN
            SELECT k.fingerprint, k.order_id INTO v_fingerprint, v_order
              FROM idempotency_keys k WHERE k.user_id = p_user_id AND k.key = p_key;
            IF v_fingerprint IS DISTINCT FROM p_fingerprint THEN
                RAISE EXCEPTION USING ERRCODE = 'GS422',
                      MESSAGE = 'idempotency key already used for another request';
            END IF;
            RETURN QUERY
            SELECT o.id, o.created_at, i.product_id, i.quantity, i.unit_price, TRUE
              FROM orders o JOIN order_items i ON i.order_id = o.id
             WHERE o.id = v_order ORDER BY i.product_id;
            RETURN;
        END IF;
    END IF;

    SELECT array_agg(p.price ORDER BY l.ord), array_agg(p.stock_buckets ORDER BY l.ord),
           min(l.id) FILTER (WHERE p.id IS NULL)
      INTO v_prices, v_buckets, v_missing
      FROM unnest(p_product_ids) WITH ORDINALITY AS l (id, ord)
      LEFT JOIN products p ON p.id = l.id;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'GS404', MESSAGE = 'product not found',
                              DETAIL = v_missing::TEXT;
    END IF;

    INSERT INTO orders (user_id, total)
    SELECT p_user_id, sum(q::BIGINT * pr)
      FROM unnest(p_quantities, v_prices) AS t (q, pr)
    RETURNING orders.id, orders.created_at INTO v_order, v_created;

    INSERT INTO order_items (order_id, product_id, quantity, unit_price)
    SELECT v_order, t.pid, t.q, t.pr FROM unnest(p_product_ids, p_quantities, v_prices) AS t (pid, q, pr);

    IF p_key IS NOT NULL THEN
        UPDATE idempotency_keys k SET order_id = v_order WHERE k.user_id = p_user_id AND k.key = p_key;
    END IF;

    -- Stock last: its row locks are held only from here to the commit.
    FOR i IN 1 .. cardinality(p_product_ids) LOOP
        PERFORM take_stock(p_product_ids[i], v_buckets[i], p_quantities[i]);
    END LOOP;

    RETURN QUERY
    SELECT v_order, v_created, t.pid, t.q, t.pr, FALSE
      FROM unnest(p_product_ids, p_quantities, v_prices) AS t (pid, q, pr);
END;
$$;
