-- Takes p_quantity units of one product's stock, or raises GS409 (product id in DETAIL)
-- when the product has fewer; place_order calls it for each line.
--
-- A product with fewer than 16 buckets whose drawn bucket another order holds is in demand
-- and is split into 16 first (split_stock); SKIP LOCKED only detects the contention, the
-- line itself still waits for its bucket. Then one random bucket that covers the line,
-- waiting for it; when that bucket is short, take_free_stock, which never waits: an order
-- holding a bucket out of bucket order must not wait for another one (V6 tells the deadlock).
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
