-- One row per account, mode and currency whose available balance has been
-- debited under a guard (a payout or refund must fit in it). On PostgreSQL,
-- where several replicas write, such a debit locks its row (FOR UPDATE)
-- before it sums the balance, so two debits of one account serialize while
-- payments (credits) never touch it: there is no row every payment updates.
-- SQLite's single writer needs no lock; the table stays empty there.
CREATE TABLE balance_locks (
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    currency   TEXT NOT NULL,
    PRIMARY KEY (account_id, livemode, currency)
) WITHOUT ROWID;
