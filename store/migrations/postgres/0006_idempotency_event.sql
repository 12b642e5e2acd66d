-- PostgreSQL dialect of ../0006_idempotency_event.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID.
-- A successful call whose response is the object its event already holds
-- stores a reference to that event instead of a second copy of the object.
ALTER TABLE idempotency_keys ADD COLUMN event_id TEXT;
