-- PostgreSQL only: postgres/0013_ledger_by_owner.sql indexes the ledger by
-- owner there, where several writers debit balances that must be summed
-- from the ledger inside the write (no single writer keeps them in
-- memory). SQLite keeps its ledger without that index (0003_payouts.sql
-- says why); this file keeps the two dialects' migration names the same.
SELECT 1;
