-- PostgreSQL dialect of ../0010_pending_operations.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID.
-- A capture or cancel sent to a provider across the network is recorded on
-- the payment before the call (pending_op with its amount, the caller's
-- idempotency key that may resume it, and when it started); only a definite
-- answer clears it. While it is set the payment refuses every operation that
-- could contradict what the provider may have done. The reconciler re-sends
-- the operation (with the same upstream idempotency key) until it knows.
ALTER TABLE payments ADD COLUMN pending_op TEXT;
ALTER TABLE payments ADD COLUMN pending_amount BIGINT;
ALTER TABLE payments ADD COLUMN pending_key TEXT;
ALTER TABLE payments ADD COLUMN pending_since BIGINT;
CREATE INDEX payments_pending_op ON payments (pending_since) WHERE pending_op IS NOT NULL;

-- Operator items: what paymentd could not settle on its own (a provider with
-- no way to ask, an answer that says money moved without saying how). One
-- per object and kind; resolved is set when an operator (or a later
-- definite answer) closes it.
CREATE TABLE operator_items (
    id         TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    object_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL,
    created    BIGINT NOT NULL,
    resolved   BIGINT,
    UNIQUE (object_id, kind)
);
CREATE INDEX operator_items_open ON operator_items (created) WHERE resolved IS NULL;
