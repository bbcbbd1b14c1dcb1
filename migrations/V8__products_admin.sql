-- Products an admin can edit, restock and archive (issue 15). Expand-only: the previous
-- release inserts products without these columns and reads none of them.

-- Bumped by every edit (PATCH); the ETag a client sends back in If-Match.
ALTER TABLE products ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- Set once by DELETE: hidden from the catalogue, refused by place_order, still readable by
-- id, its SKU still taken (the row stays).
ALTER TABLE products ADD COLUMN archived_at TIMESTAMPTZ;

-- Every change of stock made outside orders: who, when, by how much and why. Written in the
-- transaction that changes the stock.
CREATE TABLE stock_movements (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id BIGINT NOT NULL REFERENCES products (id),
    delta      INT NOT NULL CHECK (delta <> 0),
    reason     TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX stock_movements_product_id_idx ON stock_movements (product_id, id);
