-- Cancels order p_order_id for user p_user_id (any user's when p_admin) and returns its
-- lines; `cancelled` is true only for the call that cancelled it, which also gets the
-- cancellation mail's outbox row (message_id, payload, created_ms), carrying the ids of the
-- request that cancels (p_request_id, p_trace_id). Raises GS404 when the order does
-- not exist or is another user's (p_admin false), GS410 when a buyer's window is over
-- (`now() >= created_at + p_window`; an admin has no window). Cancelling an order that is
-- no longer placed changes nothing and answers it as it is (cancelled: idempotent).
--
-- The order row is locked first: racing cancels of one order queue on it and all but the
-- first find it cancelled, so its stock goes back once. Stock goes back line by line in
-- product id order, each line into one bucket of its product, the way place_order takes
-- it: a bucket nobody holds if any (SKIP LOCKED), else one random bucket, waited for while
-- holding no other bucket of that product. Orders never lock an existing order row, so no
-- wait cycle can form with them (migrations/V6__orders_never_deadlock.sql tells the rule).
CREATE OR REPLACE FUNCTION cancel_order(p_order_id BIGINT, p_user_id BIGINT, p_admin BOOLEAN,
                                        p_window INTERVAL, p_request_id TEXT, p_trace_id TEXT)
RETURNS TABLE (order_id BIGINT, created_at TIMESTAMPTZ, status TEXT, product_id BIGINT,
               quantity INT, unit_price BIGINT, cancelled BOOLEAN, message_id BIGINT,
               message_payload TEXT, message_created_ms BIGINT)
LANGUAGE plpgsql
-- Every statement finds its rows by key, so the generic plan is the custom plan; left to
-- choose, Postgres re-plans them on every call, as in place_order. A place-then-cancel
-- pgbench pair cost the database about a fifth less with it (bench/README.md, session 8).
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_user    BIGINT;
    v_status  TEXT;
    v_created TIMESTAMPTZ;
    v_line    RECORD;
    v_bucket  SMALLINT;
    v_message BIGINT;
    v_payload TEXT;
    v_message_ms BIGINT;
BEGIN
    SELECT o.user_id, o.status, o.created_at INTO v_user, v_status, v_created
      FROM orders o WHERE o.id = p_order_id FOR UPDATE;
    IF NOT FOUND OR (NOT p_admin AND v_user <> p_user_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'GS404', MESSAGE = 'order not found',
                              DETAIL = p_order_id::TEXT;
    END IF;

    IF v_status = 'placed' THEN
        IF NOT p_admin AND now() >= v_created + p_window THEN
            RAISE EXCEPTION USING ERRCODE = 'GS410', MESSAGE = 'cancel window closed',
                                  DETAIL = p_order_id::TEXT;
        END IF;
        FOR v_line IN SELECT i.product_id, i.quantity FROM order_items i
                       WHERE i.order_id = p_order_id ORDER BY i.product_id LOOP
            SELECT s.bucket INTO v_bucket FROM product_stock s
             WHERE s.product_id = v_line.product_id
             ORDER BY random() LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                SELECT s.bucket INTO v_bucket FROM product_stock s
                 WHERE s.product_id = v_line.product_id
                 ORDER BY random() LIMIT 1 FOR NO KEY UPDATE;
            END IF;
            UPDATE product_stock s SET stock = s.stock + v_line.quantity
             WHERE s.product_id = v_line.product_id AND s.bucket = v_bucket;
        END LOOP;
        UPDATE orders o SET status = 'cancelled', cancelled_at = now() WHERE o.id = p_order_id;
        v_status := 'cancelled';

        INSERT INTO outbox (kind, payload, request_id, trace_id)
        SELECT 'order_cancelled',
               jsonb_build_object('to', u.email, 'order_id', p_order_id, 'total', sum(i.quantity::BIGINT * i.unit_price),
                                  'lines', jsonb_agg(jsonb_build_object('product_id', i.product_id, 'name', p.name,
                                                                        'quantity', i.quantity, 'unit_price', i.unit_price)
                                                     ORDER BY i.product_id)),
               p_request_id, p_trace_id
          FROM order_items i JOIN products p ON p.id = i.product_id JOIN users u ON u.id = v_user
         WHERE i.order_id = p_order_id
         GROUP BY u.email
        RETURNING outbox.id, outbox.payload::TEXT, (extract(epoch FROM outbox.created_at) * 1000)::BIGINT
             INTO v_message, v_payload, v_message_ms;
    END IF;

    RETURN QUERY
    SELECT p_order_id, v_created, v_status, i.product_id, i.quantity, i.unit_price,
           v_message IS NOT NULL, v_message, v_payload, v_message_ms
      FROM order_items i WHERE i.order_id = p_order_id ORDER BY i.product_id;
END;
$$;
