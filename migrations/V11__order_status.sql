-- Orders have a lifecycle (issue 15): placed, then possibly cancelled. Expand-only: the
-- previous release inserts orders without a status and gets `placed`, and never reads it.
-- A text column with a CHECK rather than an enum type: a later state is one constraint
-- swap (added NOT VALID, validated), where an enum value cannot be removed again.
ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'placed',
                   ADD COLUMN cancelled_at TIMESTAMPTZ;
-- Validated apart, under a lock that lets orders keep coming while it scans the table.
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('placed', 'cancelled')) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_status_check;
