-- Spreads a product's stock evenly over p_buckets buckets; a product that already has that
-- many is left alone. Returns the product's bucket count afterwards. Products start with one
-- bucket and take_stock splits the ones orders contend for (V3 tells why).
--
-- Locks every bucket in bucket order, as take_stock_in_order does, so the two cannot
-- deadlock; then the product row, which serializes two splits of one product. FOR NO KEY
-- UPDATE does not conflict with the KEY SHARE lock that inserting an order line takes for its
-- foreign key.
CREATE OR REPLACE FUNCTION split_stock(p_product_id BIGINT, p_buckets INT)
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
