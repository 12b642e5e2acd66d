-- PostgreSQL dialect of ../0013_ledger_by_owner.sql (which does nothing on
-- SQLite). A balance is the newest checkpoint plus the entries after it:
-- with this index that is a range of the owner's own entries, not of every
-- account's entries since the checkpoint, so a balance guard (BookBalance
-- under its row lock) and the balance API stay cheap however many
-- accounts write. INCLUDE lets the sums read the index alone.
CREATE INDEX ledger_entries_by_owner ON ledger_entries (account_id, livemode, id) INCLUDE (currency, book, amount);
