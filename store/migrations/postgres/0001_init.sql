-- PostgreSQL dialect of ../0001_init.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID; the ledger id is an identity column.
-- Accounts own every object; an API key belongs to one account and one mode.
CREATE TABLE accounts (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    created BIGINT NOT NULL
);

-- API keys are stored only as a SHA-256 hash; hint keeps the last four characters for display.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    hash       BYTEA NOT NULL UNIQUE,
    hint       TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    scopes     TEXT NOT NULL,
    created    BIGINT NOT NULL,
    revoked    BIGINT
);

-- Payments. The primary key leads with the owner, so every read is scoped to
-- one account and mode by construction, and a keyset page is one backwards
-- range scan of the table itself. Ids are time-ordered, so inserts append.
CREATE TABLE payments (
    id                TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    livemode          INTEGER NOT NULL,
    status            TEXT NOT NULL,
    amount            BIGINT NOT NULL CHECK (amount > 0),
    currency          TEXT NOT NULL,
    amount_capturable BIGINT NOT NULL CHECK (amount_capturable >= 0),
    amount_captured   BIGINT NOT NULL CHECK (amount_captured >= 0 AND amount_captured <= amount),
    amount_refunded   BIGINT NOT NULL CHECK (amount_refunded >= 0 AND amount_refunded <= amount_captured),
    capture_method    TEXT NOT NULL,
    payment_method    TEXT NOT NULL,
    provider          TEXT NOT NULL,
    provider_ref      TEXT,
    description       TEXT,
    metadata          TEXT,
    customer_name     TEXT,
    customer_email    TEXT,
    customer_id       TEXT,
    agent_id          TEXT,
    failure_code      TEXT,
    failure_message   TEXT,
    created           BIGINT NOT NULL,
    updated           BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, id)
);

CREATE TABLE refunds (
    id         TEXT NOT NULL,
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    payment_id TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0),
    currency   TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    metadata   TEXT,
    created    BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, id),
    FOREIGN KEY (account_id, livemode, payment_id) REFERENCES payments (account_id, livemode, id)
);
CREATE INDEX refunds_by_payment ON refunds (account_id, livemode, payment_id, id);

-- The ledger is append-only: every money movement is a set of entries that sum
-- to zero, written in the same transaction as the state change that caused it.
-- Balances are sums of entries; there is no balance row to update.
CREATE TABLE ledger_entries (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    currency   TEXT NOT NULL,
    book       TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    source_id  TEXT NOT NULL,
    created    BIGINT NOT NULL
);

-- Every state change writes an event; data is the object's protobuf encoding.
CREATE TABLE events (
    id         TEXT NOT NULL,
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    type       TEXT NOT NULL,
    object_id  TEXT NOT NULL,
    data       BYTEA NOT NULL,
    created    BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, id)
);
CREATE INDEX events_by_object ON events (object_id);

-- Idempotency records hold the response of a finished mutating call, written
-- in the same transaction as the state change it made.
CREATE TABLE idempotency_keys (
    account_id   TEXT NOT NULL,
    livemode     INTEGER NOT NULL,
    method       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    code         BIGINT NOT NULL,
    response     BYTEA NOT NULL,
    created      BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, method, key)
);
