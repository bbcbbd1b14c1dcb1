-- Archives the product (once: a second call keeps the first time); false for an unknown
-- product. Sets archived_at only while it holds every stock bucket: an order that took stock
-- before commits before this does, and one that takes stock after sees the archive in
-- place_order's check, which runs once the order holds its bucket.
CREATE OR REPLACE FUNCTION archive_product(p_product_id BIGINT)
RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
DECLARE
    v_archived BOOLEAN;
BEGIN
    SELECT archived_at IS NOT NULL INTO v_archived FROM products WHERE id = p_product_id;
    IF NOT FOUND THEN
        RETURN FALSE;
    END IF;
    IF NOT v_archived THEN
        PERFORM lock_stock(p_product_id);
        UPDATE products SET archived_at = now() WHERE id = p_product_id AND archived_at IS NULL;
    END IF;
    RETURN TRUE;
END;
$$;
