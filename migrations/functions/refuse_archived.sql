-- Raises GS410 (the lowest such product id in DETAIL) when one of the products is archived.
-- place_order calls it once it holds the stock it took: archive_product sets archived_at only
-- while holding every bucket of the product, so a check made after taking a bucket (a new
-- snapshot) sees every archive that committed before the order got its bucket.
CREATE OR REPLACE FUNCTION refuse_archived(p_product_ids BIGINT[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_archived BIGINT;
BEGIN
    SELECT min(id) INTO v_archived FROM products
     WHERE id = ANY (p_product_ids) AND archived_at IS NOT NULL;
    IF v_archived IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'GS410', MESSAGE = 'product archived',
                              DETAIL = v_archived::TEXT;
    END IF;
END;
$$;
