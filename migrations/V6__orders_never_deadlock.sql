-- Orders for a product that runs low no longer deadlock.
--
-- An UPDATE that waited for a bucket another order held, and then found too little in it,
-- keeps that bucket's row lock until it commits (READ COMMITTED locks the newest row version
-- before it rechecks the WHERE clause). take_stock then went on to wait for more buckets:
-- a second random one, then every bucket in bucket order. Two orders each holding the
-- bucket the other waited for deadlocked, and Postgres broke the cycle only after
-- deadlock_timeout (1 s). With pgbench (48 clients ordering 3-9 units of one product split
-- into 16 buckets of 12, bench/low-stock) a third to a half of the attempts ended that way.
--
-- Now an order that holds any bucket out of bucket order never waits for another bucket of
-- that product: after the first attempt it takes only buckets nobody holds (SKIP LOCKED);
-- when those are not enough while the committed stock is, it gives up with 40001, which
-- rolls back its locks, and the caller retries the order with p_in_order, which locks each
-- product's buckets in bucket order before taking any. Waiting happens only (a) on the
-- first bucket of a product, holding no other bucket of it, or (b) in bucket order: a cycle
-- of waits is impossible. Lines are still taken in product id order, so across products
-- nothing changes. The one-line fast path is the same single UPDATE as before.

-- Takes the line from buckets nobody else holds, without waiting for a lock: one bucket that
-- covers the line if there is one (picked at random, so buyers stay spread), else the free
-- buckets in bucket order. Buckets this transaction holds already count as free. Raises
-- GS409 when the committed stock is short, 40001 when only buckets held by other orders
-- could cover the line.
CREATE FUNCTION take_free_stock(p_product_id BIGINT, p_quantity INT)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_available BIGINT;
    v_bucket    SMALLINT;
    v_stock     INT;
    v_left      INT := p_quantity;
    v_take      INT;
BEGIN
    -- Committed stock only shrinks under orders, so an unlocked read that finds too little
    -- is already the answer.
    SELECT coalesce(sum(stock), 0) INTO v_available
      FROM product_stock WHERE product_id = p_product_id;
    IF v_available < p_quantity THEN
        RAISE EXCEPTION USING ERRCODE = 'GS409', MESSAGE = 'out of stock',
                              DETAIL = p_product_id::TEXT;
    END IF;

    -- The lock is taken on the newest row version and the condition rechecked on it, so the
    -- stock read here is the stock the UPDATE decrements.
    SELECT bucket INTO v_bucket FROM product_stock
     WHERE product_id = p_product_id AND stock >= p_quantity
     ORDER BY random() LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
    IF FOUND THEN
        UPDATE product_stock SET stock = stock - p_quantity
         WHERE product_id = p_product_id AND bucket = v_bucket;
        RETURN;
    END IF;

    v_bucket := -1;
    LOOP
        SELECT bucket, stock INTO v_bucket, v_stock FROM product_stock
         WHERE product_id = p_product_id AND bucket > v_bucket AND stock > 0
         ORDER BY bucket LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
        EXIT WHEN NOT FOUND;
        v_take := least(v_stock, v_left);
        UPDATE product_stock SET stock = stock - v_take
         WHERE product_id = p_product_id AND bucket = v_bucket;
        v_left := v_left - v_take;
        IF v_left = 0 THEN
            RETURN;
        END IF;
    END LOOP;

    -- The rest is in buckets other orders hold. Waiting for them while holding buckets taken
    -- out of order could close a cycle; the caller retries with p_in_order instead.
    RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'stock held by concurrent orders',
                          DETAIL = p_product_id::TEXT,
                          HINT = 'retry the order with place_order(..., p_in_order => true)';
END;
$$;

-- Locks every bucket of the product in bucket order, then takes the line: the path of a
-- retried order, which never holds a bucket out of order.
CREATE FUNCTION take_stock_in_order(p_product_id BIGINT, p_quantity INT)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM product_stock WHERE product_id = p_product_id
     ORDER BY bucket FOR NO KEY UPDATE;
    -- Every bucket is held by now: nothing is skipped and the stock cannot move.
    PERFORM take_free_stock(p_product_id, p_quantity);
END;
$$;

-- As in V3 (split a contended product, then one random bucket that covers the line, waiting
-- for it), except that a failed first attempt goes to take_free_stock, which never waits.
CREATE OR REPLACE FUNCTION take_stock(p_product_id BIGINT, p_buckets INT, p_quantity INT)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_bucket SMALLINT := floor(random() * p_buckets)::SMALLINT;
BEGIN
    IF p_buckets < 16 THEN
        PERFORM 1 FROM product_stock
         WHERE product_id = p_product_id AND bucket = v_bucket FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            p_buckets := split_stock(p_product_id, 16);
            v_bucket := floor(random() * p_buckets)::SMALLINT;
        END IF;
    END IF;

    UPDATE product_stock SET stock = stock - p_quantity
     WHERE product_id = p_product_id AND bucket = v_bucket AND stock >= p_quantity;
    IF NOT FOUND THEN
        PERFORM take_free_stock(p_product_id, p_quantity);
    END IF;
END;
$$;

-- As in V3, plus p_in_order: false takes each line as take_stock does (the one-line fast
-- path stays inlined: one UPDATE of one random bucket) and raises 40001 when a line would
-- have to wait while holding buckets out of order; true takes each line with
-- take_stock_in_order. Callers try false first and retry with true on 40001 or 40P01.
CREATE FUNCTION place_order(p_user_id BIGINT, p_product_ids BIGINT[], p_quantities INT[],
                            p_key TEXT, p_fingerprint TEXT, p_in_order BOOLEAN)
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
            SELECT o.id, o.created_at, i.product_id, i.quantity, i.unit_price, TRUE
              FROM orders o JOIN order_items i ON i.order_id = o.id
             WHERE o.id = v_order ORDER BY i.product_id;
            RETURN;
        END IF;
    END IF;

    -- One line (the seed's order shape, nearly all traffic): the same steps in fewer
    -- statements, without arrays or a nested call on the fast path.
    IF cardinality(p_product_ids) = 1 THEN
        SELECT p.price, p.stock_buckets INTO v_price, v_nbucket
          FROM products p WHERE p.id = p_product_ids[1];
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'GS404', MESSAGE = 'product not found',
                                  DETAIL = p_product_ids[1]::TEXT;
        END IF;
        -- The order and its line in one statement, before any stock row is locked.
        WITH o AS (
            INSERT INTO orders (user_id, total)
            VALUES (p_user_id, p_quantities[1]::BIGINT * v_price)
            RETURNING orders.id, orders.created_at
        ), i AS (
            INSERT INTO order_items (order_id, product_id, quantity, unit_price)
            SELECT o.id, p_product_ids[1], p_quantities[1], v_price FROM o
        )
        SELECT o.id, o.created_at INTO v_order, v_created FROM o;
        IF p_key IS NOT NULL THEN
            UPDATE idempotency_keys k SET order_id = v_order WHERE k.user_id = p_user_id AND k.key = p_key;
        END IF;
        -- Stock last. For a split product, take_stock's first attempt inlined: one random
        -- bucket that covers the line. The bucket is drawn once, here: random() inside the
        -- WHERE clause would be drawn per row and could match (and lock, in any order)
        -- several buckets. A product not yet split goes to take_stock, which splits it if
        -- contended.
        IF p_in_order THEN
            PERFORM take_stock_in_order(p_product_ids[1], p_quantities[1]);
        ELSIF v_nbucket < 16 THEN
            PERFORM take_stock(p_product_ids[1], v_nbucket, p_quantities[1]);
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
        order_id := v_order;
        created_at := v_created;
        product_id := p_product_ids[1];
        quantity := p_quantities[1];
        unit_price := v_price;
        replayed := FALSE;
        RETURN NEXT;
        RETURN;
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
        IF p_in_order THEN
            PERFORM take_stock_in_order(p_product_ids[i], p_quantities[i]);
        ELSE
            PERFORM take_stock(p_product_ids[i], v_buckets[i], p_quantities[i]);
        END IF;
    END LOOP;

    RETURN QUERY
    SELECT v_order, v_created, t.pid, t.q, t.pr, FALSE
      FROM unnest(p_product_ids, p_quantities, v_prices) AS t (pid, q, pr);
END;
$$;

-- The five-argument form the previous release calls, now the first try of the new one (it
-- retries 40001 as before). Drop it once no deployed release calls it.
CREATE OR REPLACE FUNCTION place_order(p_user_id BIGINT, p_product_ids BIGINT[], p_quantities INT[],
                                       p_key TEXT, p_fingerprint TEXT)
RETURNS TABLE (order_id BIGINT, created_at TIMESTAMPTZ, product_id BIGINT, quantity INT,
               unit_price BIGINT, replayed BOOLEAN)
LANGUAGE sql AS $$
    SELECT * FROM place_order(p_user_id, p_product_ids, p_quantities, p_key, p_fingerprint, FALSE);
$$;
