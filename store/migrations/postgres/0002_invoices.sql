-- PostgreSQL dialect of ../0002_invoices.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID.
-- Invoices: hosted payment requests. Like payments, the primary key leads
-- with the owner, so reads and keyset pages are range scans of the table.
CREATE TABLE invoices (
    id                     TEXT NOT NULL,
    account_id             TEXT NOT NULL,
    livemode               INTEGER NOT NULL,
    status                 TEXT NOT NULL,
    amount                 BIGINT NOT NULL CHECK (amount > 0),
    currency               TEXT NOT NULL,
    network                TEXT,
    amount_paid            BIGINT NOT NULL CHECK (amount_paid >= 0),
    transaction_reference  TEXT NOT NULL,
    callback_url           TEXT NOT NULL,
    payment_url            TEXT NOT NULL,
    description            TEXT,
    metadata               TEXT,
    customer_name          TEXT,
    customer_email         TEXT,
    customer_id            TEXT,
    provider               TEXT NOT NULL,
    provider_ref           TEXT,
    deposit_address        TEXT,
    confirmations_required BIGINT NOT NULL DEFAULT 0,
    payment_id             TEXT,
    expires_at             BIGINT NOT NULL,
    paid_at                BIGINT,
    created                BIGINT NOT NULL,
    updated                BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, id)
);

-- The caller's reference is unique per account and mode, and is a lookup key.
CREATE UNIQUE INDEX invoices_by_reference ON invoices (account_id, livemode, transaction_reference);

-- The hosted payment page knows only the invoice id (unguessable, from the URL).
CREATE UNIQUE INDEX invoices_by_id ON invoices (id);

-- Invoices that can still expire, by expiry time, for the expiry sweep. Only
-- open and partially paid invoices are in it, so it stays small.
CREATE INDEX invoices_due ON invoices (expires_at, account_id, livemode)
    WHERE status IN ('open', 'partially_paid');

-- Receipts are the incoming transfers towards crypto invoices. A transfer is
-- identified by its transaction id within its invoice: the same transfer
-- reported again updates its confirmations and never counts twice. counted is
-- 1 once the transfer's amount has been added to the invoice's amount_paid
-- (and to the ledger).
CREATE TABLE invoice_receipts (
    account_id    TEXT NOT NULL,
    livemode      INTEGER NOT NULL,
    invoice_id    TEXT NOT NULL,
    txn_id        TEXT NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    confirmations BIGINT NOT NULL CHECK (confirmations >= 0),
    counted       INTEGER NOT NULL,
    created       BIGINT NOT NULL,
    updated       BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, invoice_id, txn_id),
    FOREIGN KEY (account_id, livemode, invoice_id) REFERENCES invoices (account_id, livemode, id)
);
