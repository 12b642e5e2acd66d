-- A secondary index that begins with (account_id, livemode), like every
-- primary key here, is as good as the primary key to the planner when a
-- table has no statistics yet (a new database, before autovacuum's first
-- ANALYZE): for a lookup by primary key it may pick the secondary index,
-- which bounds only the account, and then reads every row of the account
-- to find one. Prepared statements keep that generic plan until the
-- table's statistics change, so each refund's update scanned all of the
-- account's refunds. These indexes lead with the column they exist for;
-- they still name the account (a unique index must, to shard by account).
DROP INDEX refunds_by_payment;
CREATE INDEX refunds_by_payment ON refunds (payment_id, account_id, livemode, id);
DROP INDEX payouts_by_reference;
CREATE UNIQUE INDEX payouts_by_reference ON payouts (transaction_reference, account_id, livemode);
DROP INDEX invoices_by_reference;
CREATE UNIQUE INDEX invoices_by_reference ON invoices (transaction_reference, account_id, livemode);
DROP INDEX webhook_deliveries_by_event;
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id, account_id, livemode);
DROP INDEX webhook_deliveries_by_status;
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (status, account_id, livemode, event_id);
ALTER TABLE operator_items DROP CONSTRAINT operator_items_account_id_livemode_object_id_kind_key;
ALTER TABLE operator_items ADD CONSTRAINT operator_items_object_kind UNIQUE (object_id, kind, account_id, livemode);
