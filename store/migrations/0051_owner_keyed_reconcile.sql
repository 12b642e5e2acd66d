-- The reconciler's schedule and the operator items are keyed by account and
-- mode first, like every other table, so that each of their statements
-- names the account it touches (one shard, on a database sharded by
-- account). SQLite cannot change a primary key in place: the tables are
-- rebuilt with the same rows.
CREATE TABLE reconcile_checks_new (
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    object_id  TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    next_check INTEGER NOT NULL,
    last_error TEXT,
    PRIMARY KEY (account_id, livemode, object_id)
) WITHOUT ROWID;
INSERT INTO reconcile_checks_new (account_id, livemode, object_id, attempts, next_check, last_error)
    SELECT account_id, livemode, object_id, attempts, next_check, last_error FROM reconcile_checks;
DROP TABLE reconcile_checks;
ALTER TABLE reconcile_checks_new RENAME TO reconcile_checks;

CREATE TABLE operator_items_new (
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    id         TEXT NOT NULL,
    object_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL,
    created    INTEGER NOT NULL,
    resolved   INTEGER,
    PRIMARY KEY (account_id, livemode, id),
    UNIQUE (account_id, livemode, object_id, kind)
) WITHOUT ROWID;
INSERT INTO operator_items_new (account_id, livemode, id, object_id, kind, message, created, resolved)
    SELECT account_id, livemode, id, object_id, kind, message, created, resolved FROM operator_items;
DROP TABLE operator_items;
ALTER TABLE operator_items_new RENAME TO operator_items;
CREATE INDEX operator_items_open ON operator_items (created) WHERE resolved IS NULL;
