-- The transactional outbox and the record of sent mails (welcome email pipeline).

-- One row per message to publish, written in the transaction that causes it (register
-- inserts the user and its welcome-email row together). `published_at` is set once the
-- queue acknowledged the message; the sweeper republishes rows that still have none after
-- a grace period. `last_attempt_at` is the sweeper's lease: a row is retried only when its
-- last attempt is older than the grace period, so concurrent sweepers do not pile up.
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INT NOT NULL DEFAULT 0,
    published_at    TIMESTAMPTZ
);
-- The sweeper's scan: only unpublished rows, oldest attempt first.
CREATE INDEX outbox_unpublished_idx ON outbox (last_attempt_at) WHERE published_at IS NULL;

-- One row per mail, keyed by the outbox message id: a redelivered message finds its row
-- and is not sent again. A row with `sent_at` NULL is a claim (a worker is sending it);
-- a claim older than the lease is taken over (the worker that held it died).
CREATE TABLE email_deliveries (
    message_id BIGINT PRIMARY KEY REFERENCES outbox (id),
    recipient  TEXT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts   INT NOT NULL DEFAULT 1,
    sent_at    TIMESTAMPTZ
);
