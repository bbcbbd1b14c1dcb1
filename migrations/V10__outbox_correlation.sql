-- Which request caused an outbox message (issue 16): its request id and X-Ray trace id,
-- carried on the queue message so the email worker's log lines for the mail name them.
-- Nullable: rows written before this migration, and messages written outside a request,
-- have none.
ALTER TABLE outbox ADD COLUMN request_id TEXT, ADD COLUMN trace_id TEXT;
