-- Places one order in the caller's transaction (one round trip in autocommit) and returns
-- its lines. Lines must come merged and sorted by product id: stock is taken in that order,
-- so two orders for the same products cannot deadlock. Raises GS404 for an unknown product,
-- GS409 when one is short, GS410 when one is archived (product id in DETAIL); either way
-- nothing is written. The order rows are inserted before any stock row is locked, so the
-- locks are held for the stock updates and the commit only.
--
-- p_in_order false takes each line as take_stock does (the one-line fast path, nearly all
-- traffic, inlined: one UPDATE of one random bucket) and raises 40001 when a line would have
-- to wait while holding buckets out of order; true takes each line with take_stock_in_order.
-- Callers try false first and retry with true on 40001 or 40P01.
--
-- With p_mail_kind, a new order writes its confirmation mail's outbox row (kind p_mail_kind,
-- carrying the request's p_request_id and p_trace_id) in the same transaction, and returns
-- it in message_id, message_payload and message_created_ms on every line; a replay writes
-- none. The row is written before the stock, so the bucket locks are not held for it. In
-- this function rather than in the caller's statement: a PL/pgSQL body's statements are
-- planned once per session, a client's unnamed statement on every call (bench/README.md,
-- session 7: the statement with the mail around the six-argument form cost the database
-- 1.9 ms per order, this form 0.5 ms).
--
-- With an idempotency key: a key seen in the last 24 hours replays the order it created
-- (replayed = true) without touching stock; with another fingerprint it raises GS422.
-- Concurrent requests with one key queue on the key's index entry: the second sees the
-- first's order once it commits, or places its own if the first failed (a failed order
-- stores nothing, so retrying it is a new attempt).
CREATE OR REPLACE FUNCTION place_order(p_user_id BIGINT, p_product_ids BIGINT[], p_quantities INT[],
                                       p_key TEXT, p_fingerprint TEXT, p_in_order BOOLEAN,
                                       p_mail_kind TEXT, p_request_id TEXT, p_trace_id TEXT)
RETURNS TABLE (order_id BIGINT, created_at TIMESTAMPTZ, status TEXT, product_id BIGINT, quantity INT,
               unit_price BIGINT, replayed BOOLEAN, message_id BIGINT, message_payload TEXT,
               message_created_ms BIGINT)
LANGUAGE plpgsql
-- Every statement below (and in the functions it calls) finds its rows by key: the generic
-- plan is the custom plan. Left to choose, Postgres kept planning several of them again on
-- every call, a fifth of the database's CPU per order (bench/README.md, session 7).
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_prices      BIGINT[];
    v_names       TEXT[];
    v_buckets     INT[];
    v_missing     BIGINT;
    v_order       BIGINT;
    v_created     TIMESTAMPTZ;
    v_status      TEXT;
    v_name        TEXT;
    v_message     BIGINT;
    v_payload     TEXT;
    v_message_ms  BIGINT;
    v_fingerprint TEXT;
    v_price       BIGINT;
    v_nbucket     INT;
    v_pick        SMALLINT;
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
            SELECT o.id, o.created_at, o.status, i.product_id, i.quantity, i.unit_price, TRUE,
                   NULL::BIGINT, NULL::TEXT, NULL::BIGINT
              FROM orders o JOIN order_items i ON i.order_id = o.id
             WHERE o.id = v_order ORDER BY i.product_id;
            RETURN;
        END IF;
    END IF;

    -- One line (the seed's order shape, nearly all traffic): the same steps in fewer
    -- statements, without arrays or a nested call on the fast path.
    IF cardinality(p_product_ids) = 1 THEN
        SELECT p.price, p.stock_buckets, p.name INTO v_price, v_nbucket, v_name
          FROM products p WHERE p.id = p_product_ids[1];
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'GS404', MESSAGE = 'product not found',
                                  DETAIL = p_product_ids[1]::TEXT;
        END IF;
        -- The order and its line in one statement, before any stock row is locked.
        WITH o AS (
            INSERT INTO orders (user_id, total)
            VALUES (p_user_id, p_quantities[1]::BIGINT * v_price)
            RETURNING orders.id, orders.created_at, orders.status
        ), i AS (
            INSERT INTO order_items (order_id, product_id, quantity, unit_price)
            SELECT o.id, p_product_ids[1], p_quantities[1], v_price FROM o
        )
        SELECT o.id, o.created_at, o.status INTO v_order, v_created, v_status FROM o;
        IF p_key IS NOT NULL THEN
            UPDATE idempotency_keys k SET order_id = v_order WHERE k.user_id = p_user_id AND k.key = p_key;
        END IF;
        IF p_mail_kind IS NOT NULL THEN
            INSERT INTO outbox (kind, payload, request_id, trace_id)
            SELECT p_mail_kind,
                   jsonb_build_object('to', u.email, 'order_id', v_order,
                                      'total', p_quantities[1]::BIGINT * v_price,
                                      'lines', jsonb_build_array(jsonb_build_object(
                                          'product_id', p_product_ids[1], 'name', v_name,
                                          'quantity', p_quantities[1], 'unit_price', v_price))),
                   p_request_id, p_trace_id
              FROM users u WHERE u.id = p_user_id
            RETURNING outbox.id, outbox.payload::TEXT, (extract(epoch FROM outbox.created_at) * 1000)::BIGINT
                 INTO v_message, v_payload, v_message_ms;
        END IF;
        -- Stock last. For a split product, take_stock's first attempt inlined: one random
        -- bucket that covers the line. The bucket is drawn once, here: random() inside the
        -- WHERE clause would be drawn per row and could match (and lock, in any order)
        -- several buckets. A product not yet split goes to take_stock, which splits it if
        -- contended.
        IF p_in_order THEN
            PERFORM take_stock_in_order(p_product_ids[1], p_quantities[1]);
        ELSIF v_nbucket < 16 THEN
            -- Not split yet: take_stock's probe and update as one statement (bench/README,
            -- session 4): the drawn bucket if no other order holds it, else (or if it is
            -- short, or moved since this statement's snapshot) take_stock, which splits a
            -- contended product.
            v_pick := floor(random() * v_nbucket)::SMALLINT;
            UPDATE product_stock SET stock = stock - p_quantities[1]
             WHERE ctid = (SELECT s.ctid FROM product_stock s
                            WHERE s.product_id = p_product_ids[1] AND s.bucket = v_pick
                              FOR UPDATE SKIP LOCKED)
               AND stock >= p_quantities[1];
            IF NOT FOUND THEN
                PERFORM take_stock(p_product_ids[1], v_nbucket, p_quantities[1]);
            END IF;
        ELSE
            v_pick := floor(random() * v_nbucket)::SMALLINT;
            UPDATE product_stock SET stock = stock - p_quantities[1]
             WHERE product_stock.product_id = p_product_ids[1]
               AND bucket = v_pick
               AND stock >= p_quantities[1];
            IF NOT FOUND THEN
                PERFORM take_free_stock(p_product_ids[1], p_quantities[1]);
            END IF;
        END IF;
        PERFORM refuse_archived(p_product_ids);
        order_id := v_order;
        created_at := v_created;
        status := v_status;
        product_id := p_product_ids[1];
        quantity := p_quantities[1];
        unit_price := v_price;
        replayed := FALSE;
        message_id := v_message;
        message_payload := v_payload;
        message_created_ms := v_message_ms;
        RETURN NEXT;
        RETURN;
    END IF;

    SELECT array_agg(p.price ORDER BY l.ord), array_agg(p.stock_buckets ORDER BY l.ord),
           array_agg(p.name ORDER BY l.ord), min(l.id) FILTER (WHERE p.id IS NULL)
      INTO v_prices, v_buckets, v_names, v_missing
      FROM unnest(p_product_ids) WITH ORDINALITY AS l (id, ord)
      LEFT JOIN products p ON p.id = l.id;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'GS404', MESSAGE = 'product not found',
                              DETAIL = v_missing::TEXT;
    END IF;

    INSERT INTO orders (user_id, total)
    SELECT p_user_id, sum(q::BIGINT * pr)
      FROM unnest(p_quantities, v_prices) AS t (q, pr)
    RETURNING orders.id, orders.created_at, orders.status INTO v_order, v_created, v_status;

    INSERT INTO order_items (order_id, product_id, quantity, unit_price)
    SELECT v_order, t.pid, t.q, t.pr FROM unnest(p_product_ids, p_quantities, v_prices) AS t (pid, q, pr);

    IF p_key IS NOT NULL THEN
        UPDATE idempotency_keys k SET order_id = v_order WHERE k.user_id = p_user_id AND k.key = p_key;
    END IF;

    IF p_mail_kind IS NOT NULL THEN
        INSERT INTO outbox (kind, payload, request_id, trace_id)
        SELECT p_mail_kind,
               jsonb_build_object('to', (SELECT u.email FROM users u WHERE u.id = p_user_id),
                                  'order_id', v_order, 'total', sum(t.q::BIGINT * t.pr),
                                  'lines', jsonb_agg(jsonb_build_object('product_id', t.pid, 'name', t.name,
                                                                        'quantity', t.q, 'unit_price', t.pr)
                                                     ORDER BY t.pid)),
               p_request_id, p_trace_id
          FROM unnest(p_product_ids, p_quantities, v_prices, v_names) AS t (pid, q, pr, name)
        RETURNING outbox.id, outbox.payload::TEXT, (extract(epoch FROM outbox.created_at) * 1000)::BIGINT
             INTO v_message, v_payload, v_message_ms;
    END IF;

    -- Stock last: its row locks are held only from here to the commit.
    FOR i IN 1 .. cardinality(p_product_ids) LOOP
        IF p_in_order THEN
            PERFORM take_stock_in_order(p_product_ids[i], p_quantities[i]);
        ELSE
            PERFORM take_stock(p_product_ids[i], v_buckets[i], p_quantities[i]);
        END IF;
    END LOOP;
    PERFORM refuse_archived(p_product_ids);

    RETURN QUERY
    SELECT v_order, v_created, v_status, t.pid, t.q, t.pr, FALSE, v_message, v_payload, v_message_ms
      FROM unnest(p_product_ids, p_quantities, v_prices) AS t (pid, q, pr);
END;
$$;

-- The six-argument form the release before the nine-argument one calls (it writes the
-- confirmation's outbox row itself): the same without the mail. Pending drop:
-- migrations/README.md.
CREATE OR REPLACE FUNCTION place_order(p_user_id BIGINT, p_product_ids BIGINT[], p_quantities INT[],
                                       p_key TEXT, p_fingerprint TEXT, p_in_order BOOLEAN)
RETURNS TABLE (order_id BIGINT, created_at TIMESTAMPTZ, product_id BIGINT, quantity INT,
               unit_price BIGINT, replayed BOOLEAN)
LANGUAGE sql AS $$
    SELECT p.order_id, p.created_at, p.product_id, p.quantity, p.unit_price, p.replayed
      FROM place_order(p_user_id, p_product_ids, p_quantities, p_key, p_fingerprint, p_in_order,
                       NULL, NULL, NULL) AS p;
$$;

-- The five-argument form the release before V6 calls: the first try of the form above (that
-- release retries 40001 as before). Pending drop: migrations/README.md.
CREATE OR REPLACE FUNCTION place_order(p_user_id BIGINT, p_product_ids BIGINT[], p_quantities INT[],
                                       p_key TEXT, p_fingerprint TEXT)
RETURNS TABLE (order_id BIGINT, created_at TIMESTAMPTZ, product_id BIGINT, quantity INT,
               unit_price BIGINT, replayed BOOLEAN)
LANGUAGE sql AS $$
    SELECT * FROM place_order(p_user_id, p_product_ids, p_quantities, p_key, p_fingerprint, FALSE);
$$;
