-- Takes the line from buckets nobody else holds, without waiting for a lock: one bucket that
-- covers the line if there is one (picked at random, so buyers stay spread), else the free
-- buckets in bucket order. Buckets this transaction holds already count as free. Raises
-- GS409 when the committed stock is short, 40001 when only buckets held by other orders
-- could cover the line: the caller then retries the order with place_order(..., p_in_order
-- => true), which waits for buckets only in bucket order, so no cycle of waits can form.
CREATE OR REPLACE FUNCTION take_free_stock(p_product_id BIGINT, p_quantity INT)
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
