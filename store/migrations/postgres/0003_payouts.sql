-- PostgreSQL dialect of ../0003_payouts.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID.
-- Payouts and balances.

-- The payout methods an account offers, per mode, in display order. An
-- account and mode without rows uses the built-in defaults (the sandbox
-- methods in test mode, none in live mode); `paymentd payout-methods set`
-- replaces the rows. Payouts copy what they need of their method, so a later
-- change of a method never changes an existing payout.
CREATE TABLE payout_methods (
    account_id       TEXT NOT NULL,
    livemode         INTEGER NOT NULL,
    id               TEXT NOT NULL,
    position         BIGINT NOT NULL,
    name             TEXT NOT NULL,
    type             TEXT NOT NULL CHECK (type IN ('mobile_banking', 'bank_transfer', 'crypto')),
    currency         TEXT NOT NULL,
    network          TEXT,
    min_amount       BIGINT NOT NULL CHECK (min_amount > 0),
    max_amount       BIGINT NOT NULL CHECK (max_amount >= min_amount),
    fee_fixed        BIGINT NOT NULL CHECK (fee_fixed >= 0),
    fee_basis_points BIGINT NOT NULL CHECK (fee_basis_points BETWEEN 0 AND 10000),
    account_format   TEXT,
    updated          BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, id)
);

-- Payouts. total_amount (amount + fee) is reserved in the ledger when the
-- payout is created, consumed when it completes and released when it is
-- rejected or cancelled.
CREATE TABLE payouts (
    id                    TEXT NOT NULL,
    account_id            TEXT NOT NULL,
    livemode              INTEGER NOT NULL,
    transaction_reference TEXT NOT NULL,
    status                TEXT NOT NULL,
    method_id             TEXT NOT NULL,
    method_type           TEXT NOT NULL,
    network               TEXT,
    currency              TEXT NOT NULL,
    amount                BIGINT NOT NULL CHECK (amount > 0),
    fee                   BIGINT NOT NULL CHECK (fee >= 0),
    total_amount          BIGINT NOT NULL CHECK (total_amount = amount + fee),
    recipient_name        TEXT NOT NULL,
    recipient_account     TEXT NOT NULL,
    description           TEXT,
    callback_url          TEXT,
    metadata              TEXT,
    provider              TEXT NOT NULL,
    provider_ref          TEXT,
    failure_code          TEXT,
    failure_message       TEXT,
    created               BIGINT NOT NULL,
    updated               BIGINT NOT NULL,
    processed             BIGINT,
    PRIMARY KEY (account_id, livemode, id)
);
-- transaction_reference is unique per account and mode, and a second way in.
CREATE UNIQUE INDEX payouts_by_reference ON payouts (account_id, livemode, transaction_reference);
-- The payout processor's queue: payouts still moving, oldest change first.
CREATE INDEX payouts_active ON payouts (status, updated) WHERE status IN ('pending', 'processing');

-- Balances are sums of ledger entries. There is deliberately no index by
-- owner on ledger_entries: the writer keeps the books it guards in memory
-- (store/balancecache.go), and the balance API sums the newest checkpoint
-- plus the entries after it, an id range that the checkpointer keeps short.

-- Checkpoints bound how many entries a balance must sum: each checkpoint is
-- the balance of every (currency, book) of one account and mode over the
-- entries with id <= through_id, so a balance is the latest checkpoint plus
-- the entries after it. Checkpoints are appended, never updated, and
-- `paymentd check` recomputes each one from the entries.
CREATE TABLE ledger_checkpoints (
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    through_id BIGINT NOT NULL,
    currency   TEXT NOT NULL,
    book       TEXT NOT NULL,
    balance    BIGINT NOT NULL,
    created    BIGINT NOT NULL,
    PRIMARY KEY (account_id, livemode, through_id, currency, book)
);
