-- Provider-served invoices that ended (paid, expired or canceled), by expiry
-- time: the reconciler keeps asking their provider for a while after the
-- expiry (service.LateTransferWindow), so that money that arrives or
-- confirms late at the provider is recorded, not left there unknown.
CREATE INDEX invoices_ended_by_provider ON invoices (expires_at)
    WHERE status IN ('paid', 'expired', 'canceled') AND provider_ref IS NOT NULL;
