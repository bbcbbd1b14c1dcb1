-- A page of the catalogue (keyset: ids above p_after, in id order, archived products left
-- out) with each product's stock.
-- The page's stock is summed in one range scan of product_stock; a subquery per product
-- started one index scan per product, which cost more than everything else the list does.
-- PL/pgSQL keeps the plan for the session: the statement is unnamed (RDS Proxy never pins
-- the connection), so as a plain query it was planned again on every request, about as
-- costly as running it.
CREATE OR REPLACE FUNCTION list_products(p_after BIGINT, p_limit BIGINT)
RETURNS TABLE (id BIGINT, name TEXT, description TEXT, price BIGINT, sku TEXT,
               created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, stock BIGINT)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    WITH page AS (
        SELECT p.id, p.name, p.description, p.price, p.sku, p.created_at, p.updated_at
          FROM products p WHERE p.id > p_after AND p.archived_at IS NULL ORDER BY p.id LIMIT p_limit
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
