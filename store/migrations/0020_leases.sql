-- Leases: which process works an item now. With one process per database
-- (SQLite) paymentd keeps these claims in memory; replicas sharing a
-- PostgreSQL database claim items here instead, so that exactly one replica
-- works an item at a time and a crashed replica's items are taken over once
-- its lease expires (store/leases.go).
--
-- name says what is held: "idempotency/<method>/<key>" (a call in flight),
-- "reconcile/<object id>" (a status call to a provider), "sweep/<name>" (a
-- background sweep, account_id ''). owner identifies the holder: a random id
-- per process, plus a random id per call for idempotency keys. expires is in
-- microseconds since the epoch; a lease past it may be taken over.
CREATE TABLE leases (
    account_id TEXT NOT NULL,
    livemode   INTEGER NOT NULL,
    name       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    expires    INTEGER NOT NULL,
    PRIMARY KEY (account_id, livemode, name)
) WITHOUT ROWID;

-- A webhook delivery being attempted is leased to the replica attempting it
-- (lease_until in microseconds); the attempt's record clears the lease.
ALTER TABLE webhook_deliveries ADD COLUMN lease_owner TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN lease_until INTEGER;
