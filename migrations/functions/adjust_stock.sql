-- Adds p_delta units to the product's stock (removes them when negative) and records the
-- movement in stock_movements, in one statement; returns the stock afterwards. GS404 for an
-- unknown product, GS409 (product id in DETAIL) when fewer than -p_delta units are left.
--
-- Safe beside orders: adding waits for one bucket while holding no other, as an order's
-- first try does; removing takes the units as a retried order does (take_stock_in_order:
-- every bucket in bucket order), and may raise 40001 as it can, which the caller retries.
CREATE OR REPLACE FUNCTION adjust_stock(p_product_id BIGINT, p_delta INT, p_reason TEXT, p_user_id BIGINT)
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    v_buckets INT;
    v_bucket  SMALLINT;
    v_stock   BIGINT;
BEGIN
    SELECT stock_buckets INTO v_buckets FROM products WHERE id = p_product_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'GS404', MESSAGE = 'product not found',
                              DETAIL = p_product_id::TEXT;
    END IF;
    IF p_delta > 0 THEN
        -- Drawn once, here: random() in the WHERE clause would be drawn per row and match
        -- no bucket, or several. The bucket exists whatever a concurrent split does (splits
        -- only add buckets).
        v_bucket := floor(random() * v_buckets)::SMALLINT;
        UPDATE product_stock SET stock = stock + p_delta
         WHERE product_id = p_product_id AND bucket = v_bucket;
    ELSE
        PERFORM take_stock_in_order(p_product_id, -p_delta);
    END IF;
    INSERT INTO stock_movements (product_id, delta, reason, user_id)
    VALUES (p_product_id, p_delta, p_reason, p_user_id);
    SELECT coalesce(sum(stock), 0) INTO v_stock FROM product_stock WHERE product_id = p_product_id;
    RETURN v_stock;
END;
$$;
