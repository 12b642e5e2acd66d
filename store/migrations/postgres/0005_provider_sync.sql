-- PostgreSQL dialect of ../0005_provider_sync.sql: BIGINT for INTEGER, BYTEA for BLOB; no WITHOUT ROWID.
-- Provider-served invoices and payouts: how inbound provider webhooks find
-- them. A webhook names the provider's id for the object (aspayds'
-- invoice_id or payout_id), not paymentd's, and is not scoped to an account,
-- so it is looked up by (connection, provider reference). Only objects a
-- provider has answered for have a provider_ref, so sandbox invoices and
-- payouts stay out of these indexes.
CREATE INDEX invoices_by_provider_ref ON invoices (provider, provider_ref) WHERE provider_ref IS NOT NULL;
CREATE INDEX payouts_by_provider_ref ON payouts (provider, provider_ref) WHERE provider_ref IS NOT NULL;
