-- PostgreSQL dialect of ../0011_invoice_attempts.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID.
-- A provider-served invoice is recorded as an attempt before the provider
-- is asked to create it, keyed by the caller's transaction reference; the
-- invoice itself is written once the provider answered (and the attempt
-- deleted in the same write). An attempt left behind by an answer that was
-- lost is resumed by a retry with the same request, or resolved by the
-- reconciler: it looks the invoice up at the provider instead of creating
-- a second one. invoice is the invoice as it was to be written (JSON).
CREATE TABLE invoice_attempts (
    account_id            TEXT NOT NULL,
    livemode              INTEGER NOT NULL,
    transaction_reference TEXT NOT NULL,
    invoice_id            TEXT NOT NULL,
    provider              TEXT NOT NULL,
    request_hash          BYTEA NOT NULL,
    invoice               TEXT NOT NULL,
    created               BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, transaction_reference)
);
CREATE INDEX invoice_attempts_by_age ON invoice_attempts (created);
