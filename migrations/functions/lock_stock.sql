-- Locks every stock bucket of the product in bucket order (the order split_stock and
-- take_stock_in_order lock in, so none of them can deadlock with another) and returns how
-- many it holds. A split that committed while the first pass waited made buckets that
-- pass's snapshot did not see; the count tells, and a second pass (a new snapshot) locks them.
CREATE OR REPLACE FUNCTION lock_stock(p_product_id BIGINT)
RETURNS INT
LANGUAGE plpgsql AS $$
DECLARE
    v_locked  INT;
    v_buckets INT;
BEGIN
    LOOP
        SELECT count(*) INTO v_locked FROM (
            SELECT 1 FROM product_stock WHERE product_id = p_product_id
             ORDER BY bucket FOR NO KEY UPDATE
        ) AS b;
        SELECT stock_buckets INTO v_buckets FROM products WHERE id = p_product_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'GS404', MESSAGE = 'product not found',
                                  DETAIL = p_product_id::TEXT;
        END IF;
        IF v_locked >= v_buckets THEN
            RETURN v_locked;
        END IF;
    END LOOP;
END;
$$;
