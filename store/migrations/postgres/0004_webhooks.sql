-- PostgreSQL dialect of ../0004_webhooks.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID.
-- Webhooks, events delivery and reconciliation.

-- An account's webhook endpoints. The signing secret is kept in clear
-- because every delivery is signed with it; after a rotation the previous
-- secret keeps signing (alongside the new one) until previous_expires.
-- event_types is a comma-separated list of event types or "prefix.*"
-- patterns; NULL means every event. Deleted endpoints are kept (deleted set)
-- so that past deliveries still name them.
CREATE TABLE webhook_endpoints (
    id               TEXT NOT NULL,
    account_id       TEXT NOT NULL,
    livemode         INTEGER NOT NULL,
    url              TEXT NOT NULL,
    event_types      TEXT,
    description      TEXT,
    secret           TEXT NOT NULL,
    previous_secret  TEXT,
    previous_expires BIGINT,
    created          BIGINT NOT NULL,
    deleted          BIGINT,
    PRIMARY KEY (account_id, livemode, id)
);

-- The account's default signing secret (one per account and mode), used for
-- deliveries to an object's own callback_url.
CREATE TABLE webhook_secrets (
    account_id       TEXT NOT NULL,
    livemode         INTEGER NOT NULL,
    secret           TEXT NOT NULL,
    previous_secret  TEXT,
    previous_expires BIGINT,
    created          BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode)
);

-- The outbox: one row per (event, destination), written in the same
-- transaction as the event. status is pending | delivered | failed;
-- next_attempt is when a pending delivery is due; retry_from is when its
-- retry window began (creation, or the last redelivery): a delivery that
-- keeps failing is given up (failed) once the window has passed.
CREATE TABLE webhook_deliveries (
    id           TEXT NOT NULL,
    account_id   TEXT NOT NULL,
    livemode     INTEGER NOT NULL,
    event_id     TEXT NOT NULL,
    endpoint_id  TEXT,          -- NULL for a delivery to the object's callback_url
    url          TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT,
    retry_from   BIGINT NOT NULL,
    last_attempt BIGINT,
    last_code    BIGINT,
    last_error   TEXT,
    created      BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, id)
);
-- The dispatcher's queue: only pending rows are in it.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (account_id, livemode, event_id);
-- ListEvents' delivery_status filter.
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (account_id, livemode, status, event_id);

-- Every HTTP attempt of a delivery; response holds a short excerpt only.
CREATE TABLE webhook_attempts (
    account_id  TEXT NOT NULL,
    livemode    INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    n           BIGINT NOT NULL,
    url         TEXT NOT NULL,
    attempted   BIGINT NOT NULL,
    http_status BIGINT,
    latency_us  BIGINT NOT NULL,
    error       TEXT,
    response    TEXT,
    PRIMARY KEY (account_id, livemode, event_id, delivery_id, n)
);

-- Inbound provider webhooks already handled, by the provider's event id, so
-- that a duplicate changes nothing.
CREATE TABLE provider_events (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    type        TEXT NOT NULL,
    object_id   TEXT,
    outcome     TEXT NOT NULL,
    received    BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- Payments the provider left unsettled. Partial indexes hold only these few
-- rows, so the hot path (payments created succeeded) never writes to them;
-- the reconciler scans them and inbound webhooks find payments through them.
CREATE INDEX payments_unsettled ON payments (id) WHERE status IN ('unknown', 'processing');
CREATE INDEX payments_unsettled_by_ref ON payments (provider, provider_ref)
    WHERE status IN ('unknown', 'processing') AND provider_ref IS NOT NULL;
CREATE INDEX refunds_pending ON refunds (id) WHERE status = 'pending';

-- The reconciler's schedule: one row per object it has asked about and not
-- yet settled. attempts counts the status calls made; next_check is when to
-- ask again.
CREATE TABLE reconcile_checks (
    object_id  TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    attempts   BIGINT NOT NULL,
    next_check BIGINT NOT NULL,
    last_error TEXT
);
