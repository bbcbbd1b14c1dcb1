-- Stock starts in one bucket and is split into 16 when orders contend for it, and the
-- catalogue page sums its stock in one scan.
--
-- V1 gave every product 16 buckets, so every catalogue page summed 16 rows per product to
-- serve what only a few products need: the ones many buyers order at the same moment. On
-- `make bench` a 50-product page then cost the database about four times the CPU of the
-- seed's list. A product now starts with one bucket, and the first order that finds the
-- bucket it wants locked by another order splits the product (bench/README.md).

ALTER TABLE products ALTER COLUMN stock_buckets SET DEFAULT 1;

-- Spreads a product's stock evenly over p_buckets buckets; a product that already has that
-- many is left alone. Returns the product's bucket count afterwards. Locks every bucket in
-- bucket order, as take_stock's slow path does, so the two cannot deadlock; then the product
-- row, which serializes two splits of one product. FOR NO KEY UPDATE does not conflict with
-- the KEY SHARE lock that inserting an order line takes for its foreign key.
CREATE FUNCTION split_stock(p_product_id BIGINT, p_buckets INT)
RETURNS INT
LANGUAGE plpgsql AS $$
DECLARE
    v_buckets INT;
    v_total   BIGINT;
BEGIN
    PERFORM 1 FROM product_stock WHERE product_id = p_product_id ORDER BY bucket FOR UPDATE;
    SELECT stock_buckets INTO v_buckets FROM products WHERE id = p_product_id FOR NO KEY UPDATE;
    IF v_buckets >= p_buckets THEN
        RETURN v_buckets;
    END IF;
    -- Every bucket that exists is locked by now: the sum cannot move under us.
    SELECT sum(stock) INTO v_total FROM product_stock WHERE product_id = p_product_id;
    INSERT INTO product_stock (product_id, bucket, stock)
    SELECT p_product_id, b, v_total / p_buckets + (b < v_total % p_buckets)::INT
      FROM generate_series(0, p_buckets - 1) AS b
    ON CONFLICT (product_id, bucket) DO UPDATE SET stock = EXCLUDED.stock;
    UPDATE products SET stock_buckets = p_buckets WHERE id = p_product_id;
    RETURN p_buckets;
END;
$$;

-- A page of the catalogue (keyset: ids above p_after, in id order) with each product's stock.
-- The page's stock is summed in one range scan of product_stock; a subquery per product
-- started one index scan per product, which cost more than everything else the list does.
-- PL/pgSQL keeps the plan for the session: the statement is unnamed (RDS Proxy never pins
-- the connection), so as a plain query it was planned again on every request, about as
-- costly as running it.
CREATE FUNCTION list_products(p_after BIGINT, p_limit BIGINT)
RETURNS TABLE (id BIGINT, name TEXT, description TEXT, price BIGINT, sku TEXT,
               created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, stock BIGINT)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    WITH page AS (
        SELECT p.id, p.name, p.description, p.price, p.sku, p.created_at, p.updated_at
          FROM products p WHERE p.id > p_after ORDER BY p.id LIMIT p_limit
    )
    SELECT g.id, g.name, g.description, g.price, g.sku, g.created_at, g.updated_at,
           coalesce(s.stock, 0)::BIGINT
      FROM page g
      LEFT JOIN (
          SELECT ps.product_id, sum(ps.stock)::BIGINT AS stock FROM product_stock ps
           WHERE ps.product_id > p_after AND ps.product_id <= (SELECT max(page.id) FROM page)
           GROUP BY ps.product_id
      ) s ON s.product_id = g.id
     ORDER BY g.id;
END;
$$;

-- As in V1, plus: a product with fewer than 16 buckets whose drawn bucket is locked by
-- another order is in demand, and is split before the line is taken. SKIP LOCKED only
-- detects the contention here; the line itself still waits for its bucket.
CREATE OR REPLACE FUNCTION take_stock(p_product_id BIGINT, p_buckets INT, p_quantity INT)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_bucket    SMALLINT := floor(random() * p_buckets)::SMALLINT;
    v_available BIGINT;
    v_left      INT := p_quantity;
    v_take      INT;
    r           RECORD;
BEGIN
    IF p_buckets < 16 THEN
        PERFORM 1 FROM product_stock
         WHERE product_id = p_product_id AND bucket = v_bucket FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            p_buckets := split_stock(p_product_id, 16);
            v_bucket := floor(random() * p_buckets)::SMALLINT;
        END IF;
    END IF;

    -- Fast path: a random bucket covers the line. Waits for that bucket's lock only.
    UPDATE product_stock SET stock = stock - p_quantity
     WHERE product_id = p_product_id AND bucket = v_bucket AND stock >= p_quantity;
    IF FOUND THEN
        RETURN;
    END IF;

    -- Committed stock only shrinks under orders, so an unlocked read that finds too little
    -- is already the answer; otherwise try one bucket that looked big enough.
    SELECT coalesce(sum(stock), 0),
           (array_agg(bucket ORDER BY random()) FILTER (WHERE stock >= p_quantity))[1]
      INTO v_available, v_bucket
      FROM product_stock WHERE product_id = p_product_id;
    IF v_available < p_quantity THEN
        RAISE EXCEPTION USING ERRCODE = 'GS409', MESSAGE = 'out of stock',
                              DETAIL = p_product_id::TEXT;
    END IF;
    IF v_bucket IS NOT NULL THEN
        UPDATE product_stock SET stock = stock - p_quantity
         WHERE product_id = p_product_id AND bucket = v_bucket AND stock >= p_quantity;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;

    -- Slow path: no single bucket covers the line (low stock or a big quantity). Lock every
    -- bucket in bucket order, so two slow paths on one product cannot deadlock, and take
    -- what the line needs from as many buckets as it takes.
    PERFORM 1 FROM product_stock WHERE product_id = p_product_id ORDER BY bucket FOR UPDATE;
    SELECT coalesce(sum(stock), 0) INTO v_available
      FROM product_stock WHERE product_id = p_product_id;
    IF v_available < p_quantity THEN
        RAISE EXCEPTION USING ERRCODE = 'GS409', MESSAGE = 'out of stock',
                              DETAIL = p_product_id::TEXT;
    END IF;
    FOR r IN SELECT bucket, stock FROM product_stock
              WHERE product_id = p_product_id AND stock > 0 ORDER BY bucket LOOP
        v_take := least(r.stock, v_left);
        UPDATE product_stock SET stock = stock - v_take
         WHERE product_id = p_product_id AND bucket = r.bucket;
        v_left := v_left - v_take;
        EXIT WHEN v_left = 0;
    END LOOP;
END;
$$;

-- As in V1, except that a one-line order of a product not yet split goes through take_stock,
-- which splits it when contended (the inlined first attempt stays for split products).
CREATE OR REPLACE FUNCTION place_order(p_user_id BIGINT, p_product_ids BIGINT[], p_quantities INT[],
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
    v_price       BIGINT;
    v_nbucket     INT;
    v_pick        SMALLINT;
    v_taken       BOOLEAN;
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
    -- statements, without arrays or a nested call on the fast path. With pgbench (64
    -- clients, 1000 products, unnamed statements) it placed ~20 % more orders per second.
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
        -- Stock last. For a split product, take_stock's fast path inlined: one random bucket
        -- that covers the line. The bucket is drawn once, here: random() inside the WHERE
        -- clause would be drawn per row and could match (and lock, in any order) several
        -- buckets. A product not yet split goes to take_stock, which splits it if contended.
        v_taken := FALSE;
        IF v_nbucket >= 16 THEN
            v_pick := floor(random() * v_nbucket)::SMALLINT;
            UPDATE product_stock SET stock = stock - p_quantities[1]
             WHERE product_stock.product_id = p_product_ids[1]
               AND bucket = v_pick
               AND stock >= p_quantities[1];
            v_taken := FOUND;
        END IF;
        IF NOT v_taken THEN
            PERFORM take_stock(p_product_ids[1], v_nbucket, p_quantities[1]);
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
        PERFORM take_stock(p_product_ids[i], v_buckets[i], p_quantities[i]);
    END LOOP;

    RETURN QUERY
    SELECT v_order, v_created, t.pid, t.q, t.pr, FALSE
      FROM unnest(p_product_ids, p_quantities, v_prices) AS t (pid, q, pr);
END;
$$;
