TRUNCATE order_items, orders, idempotency_keys;
DELETE FROM product_stock;
INSERT INTO product_stock SELECT 1, b, 12 FROM generate_series(0, 15) b;
