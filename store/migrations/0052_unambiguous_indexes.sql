-- PostgreSQL reorders some secondary indexes in this migration (see
-- migrations/postgres/0052_unambiguous_indexes.sql). SQLite's planner
-- already prefers a unique index matched on every column, so its indexes
-- stay as they are; the migration exists under the same name in both
-- dialects so that both report the same schema version.
SELECT 1;
