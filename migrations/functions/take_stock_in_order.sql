-- Locks every bucket of the product in bucket order, then takes the line: the path of a
-- retried order (place_order's p_in_order), which never holds a bucket out of order.
CREATE OR REPLACE FUNCTION take_stock_in_order(p_product_id BIGINT, p_quantity INT)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM product_stock WHERE product_id = p_product_id
     ORDER BY bucket FOR NO KEY UPDATE;
    -- Every bucket is held by now: nothing is skipped and the stock cannot move.
    PERFORM take_free_stock(p_product_id, p_quantity);
END;
$$;
