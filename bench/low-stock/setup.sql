-- 1000 buyers, product 1 with 16 buckets, and the order as pgbench calls it: out of stock is
-- an answer (0), anything else (40P01, 40001) fails the transaction and pgbench counts it.
INSERT INTO users (email, password_hash) SELECT 'u' || g || '@example.com', 'x' FROM generate_series(1, 1000) g;
INSERT INTO products (name, price, sku, stock_buckets) VALUES ('hot', 100, 'HOT', 16);

CREATE FUNCTION bench_order(p_user BIGINT, p_qty INT) RETURNS INT LANGUAGE plpgsql AS $$
BEGIN
    PERFORM * FROM place_order(p_user, ARRAY[1::BIGINT], ARRAY[p_qty], NULL, NULL);
    RETURN 1;
EXCEPTION WHEN SQLSTATE 'GS409' THEN
    RETURN 0;
END;
$$;

-- As the store does since V6: first try, then in bucket order on 40001 or 40P01. The
-- subtransaction stands in for the store's second statement (its rollback drops the locks of
-- the first try, as the store's rolled-back first statement does).
CREATE FUNCTION bench_order_retried(p_user BIGINT, p_qty INT) RETURNS INT LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM * FROM place_order(p_user, ARRAY[1::BIGINT], ARRAY[p_qty], NULL, NULL, FALSE);
        RETURN 1;
    EXCEPTION WHEN serialization_failure OR deadlock_detected THEN
        NULL;
    END;
    PERFORM * FROM place_order(p_user, ARRAY[1::BIGINT], ARRAY[p_qty], NULL, NULL, TRUE);
    RETURN 2;
EXCEPTION WHEN SQLSTATE 'GS409' THEN
    RETURN 0;
END;
$$;
