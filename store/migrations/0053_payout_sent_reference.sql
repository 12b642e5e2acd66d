-- The reference a provider-sent payout was sent under (and is found by when
-- its creation goes unanswered), recorded with the payout before the call:
-- paymentd's payout id for aspayds and Asyncpay. NULL for payouts made before
-- this column existed, whose adapters all sent the caller's
-- transaction_reference, and for sandbox payouts.
ALTER TABLE payouts ADD COLUMN sent_reference TEXT;
