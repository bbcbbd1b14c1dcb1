-- Welcome mails that are never lost, permanent mail failures, and retention (issue 12).

-- The outbox stays the source of truth until the mail is settled: sent, or rejected for
-- good by the mail service. `published_at` only says the queue took the message once; a
-- queue can still lose it (Redis restarted empty, a failover), so the sweeper republishes
-- rows that stay unsettled long after their last publish. The previous release does not
-- set `settled_at`: the rows it settles are republished once and then settled by the new
-- worker, which finds their delivery already sent.
ALTER TABLE outbox ADD COLUMN settled_at TIMESTAMPTZ;
UPDATE outbox o SET settled_at = d.sent_at
  FROM email_deliveries d WHERE d.message_id = o.id AND d.sent_at IS NOT NULL;
-- The sweeper's scan: every unsettled row, oldest attempt first. `outbox_unpublished_idx`
-- is what the previous release's sweeper scans; drop it once that release is gone.
CREATE INDEX outbox_unsettled_idx ON outbox (last_attempt_at) WHERE settled_at IS NULL;
-- Retention: settled rows by age.
CREATE INDEX outbox_settled_at_idx ON outbox (settled_at) WHERE settled_at IS NOT NULL;

-- A mail the mail service refused for good (invalid or rejected recipient) is recorded,
-- with the service's reason, and never retried. `status` is derived, so rows written by the
-- previous release (which knows only `sent_at`) read correctly too.
ALTER TABLE email_deliveries
    ADD COLUMN rejected_at TIMESTAMPTZ,
    ADD COLUMN failure     TEXT,
    ADD COLUMN status      TEXT GENERATED ALWAYS AS (
        CASE WHEN sent_at IS NOT NULL THEN 'sent'
             WHEN rejected_at IS NOT NULL THEN 'rejected'
             ELSE 'sending' END) STORED;

-- Retention: expired registration keys by age (idempotency_keys has its index already).
CREATE INDEX registration_keys_created_at_idx ON registration_keys (created_at);
