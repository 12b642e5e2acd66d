-- The reconciler's schedule and the operator items are keyed by account and
-- mode first, like every other table, so that each of their statements
-- names the account it touches (one shard, on a database sharded by
-- account with account_id as the distribution column).
ALTER TABLE reconcile_checks DROP CONSTRAINT reconcile_checks_pkey;
ALTER TABLE reconcile_checks ADD PRIMARY KEY (account_id, livemode, object_id);
ALTER TABLE operator_items DROP CONSTRAINT operator_items_pkey;
ALTER TABLE operator_items DROP CONSTRAINT operator_items_object_id_kind_key;
ALTER TABLE operator_items ADD PRIMARY KEY (account_id, livemode, id);
ALTER TABLE operator_items ADD UNIQUE (account_id, livemode, object_id, kind);
