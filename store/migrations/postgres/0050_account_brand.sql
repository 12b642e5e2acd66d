-- PostgreSQL dialect of ../0050_account_brand.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID.
-- What the hosted payment page shows of the merchant: a display name and
-- optional brand settings, each checked by the service before it is stored
-- (logo_url https on a public host, accent_color #rrggbb). NULL means unset:
-- the page falls back to the account's name and its own colours.
ALTER TABLE accounts ADD COLUMN display_name TEXT;
ALTER TABLE accounts ADD COLUMN logo_url TEXT;
ALTER TABLE accounts ADD COLUMN accent_color TEXT;
ALTER TABLE accounts ADD COLUMN support_email TEXT;
ALTER TABLE accounts ADD COLUMN support_url TEXT;
