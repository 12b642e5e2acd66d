package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"

	"github.com/paymentd/paymentd"
)

// Books of the ledger that hold the account's own money. Every other book is
// a counterparty's view, e.g. "provider:sandbox" (what the provider collected
// for the account, negative while it owes it).
// They are the domain's books (package paymentd), as the strings ledger rows hold.
const (
	// BookAvailable is money the account can pay out or refund now.
	BookAvailable = string(paymentd.BookAvailable)
	// BookPending is money collected but not yet available.
	BookPending = string(paymentd.BookPending)
	// BookReserved holds the total_amount of payouts that are pending or
	// processing, and the amount of pending refunds.
	BookReserved = string(paymentd.BookReserved)
	// PayoutsBookPrefix + provider name is what completed payouts sent through
	// that provider, fees included.
	PayoutsBookPrefix = paymentd.PayoutsBookPrefix
)

// OwnBook reports whether book holds the account's own money, which must
// never be negative.
func OwnBook(book string) bool { return paymentd.Book(book).Own() }

// BookBalance is the sum of one book's entries in one currency.
type BookBalance struct {
	Currency string
	Book     string
	Amount   int64
}

// latestCheckpoint is the through_id of the account's newest checkpoint, 0 if none.
const latestCheckpoint = `COALESCE((SELECT MAX(through_id) FROM ledger_checkpoints WHERE account_id=?1 AND livemode=?2), 0)`

// balancesQuery sums every book of an account and mode in one statement (one
// snapshot): the newest checkpoint plus the entries after it.
const balancesQuery = `SELECT currency, book, SUM(amount) FROM (
		SELECT currency, book, balance AS amount FROM ledger_checkpoints
			WHERE account_id=?1 AND livemode=?2 AND through_id=` + latestCheckpoint + `
		UNION ALL
		SELECT currency, book, amount FROM ledger_entries
			WHERE account_id=?1 AND livemode=?2 AND id > ` + latestCheckpoint + `
	) AS book_amounts GROUP BY currency, book ORDER BY currency, book`

// Balances returns the balance of every book and currency the account and
// mode have used, ordered by currency and book.
func (s *Store) Balances(ctx context.Context, accountID string, livemode bool) ([]BookBalance, error) {
	rows, err := s.query(ctx, balancesQuery, accountID, boolInt(livemode))
	if err != nil {
		return nil, fmt.Errorf("store: balances: %w", err)
	}
	return scanBalances(rows)
}

func scanBalances(rows *sql.Rows) ([]BookBalance, error) {
	defer rows.Close()
	var out []BookBalance
	for rows.Next() {
		var b BookBalance
		if err := rows.Scan(&b.Currency, &b.Book, &b.Amount); err != nil {
			return nil, fmt.Errorf("store: scan balance: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// BookBalance sums one book in one currency inside the write transaction, so
// that a guard such as "the payout fits in the available balance" holds
// until the commit. On SQLite the single writer runs every other change
// before or after this one, never between the check and the entries that
// follow it, and keeps the guarded books in memory (balancecache.go). On
// PostgreSQL other connections and replicas write beside it, so it first
// locks the account's row for the currency (lockBalance): the debits that
// check a balance serialize per account and currency, and the sum, read
// after the lock, sees every one committed before. Credits (captures) lock
// nothing; one not yet committed is simply not counted yet. The lock is
// held to the commit, so the transaction's later guards of the book read
// it from memory (balanceCache, perTx). Changes that call it should be
// written with Store.WriteDebit.
func (tx *Tx) BookBalance(accountID string, livemode bool, currency, book string) (int64, error) {
	return tx.balances.balance(balanceKey{accountID, livemode, currency, book}, func() (int64, error) {
		if !tx.d.postgres {
			sum, _, err := tx.sumBook(accountID, livemode, currency, book)
			return sum, err
		}
		if err := tx.lockBalance(accountID, livemode, currency); err != nil {
			return 0, err
		}
		sum, entries, err := tx.sumBook(accountID, livemode, currency, book)
		if err == nil && entries >= checkpointAfter && tx.checkpointSoon != nil {
			tx.checkpointSoon(accountID, livemode)
		}
		return sum, err
	})
}

// lockBalance locks the balance_locks row of the account, mode and
// currency until the transaction ends, creating it on first use.
func (tx *Tx) lockBalance(accountID string, livemode bool, currency string) error {
	if _, err := tx.exec(`INSERT INTO balance_locks (account_id, livemode, currency) VALUES (?,?,?) ON CONFLICT DO NOTHING`,
		accountID, boolInt(livemode), currency); err != nil {
		return fmt.Errorf("store: balance lock: %w", err)
	}
	row, err := tx.queryRow(`SELECT 1 FROM balance_locks WHERE account_id=? AND livemode=? AND currency=?`+tx.d.forUpdate(),
		accountID, boolInt(livemode), currency)
	if err != nil {
		return err
	}
	var one int
	if err := row.Scan(&one); err != nil {
		return fmt.Errorf("store: balance lock: %w", err)
	}
	return nil
}

// sumBook sums one book from the ledger: the newest checkpoint plus the
// entries after it. It also counts every entry of the account and mode
// after the checkpoint, of any book and currency, since that is what the
// sum reads (the index is by account, mode and id).
func (tx *Tx) sumBook(accountID string, livemode bool, currency, book string) (sum, entries int64, err error) {
	row, err := tx.queryRow(`SELECT
		COALESCE((SELECT balance FROM ledger_checkpoints WHERE account_id=?1 AND livemode=?2
			AND through_id=`+latestCheckpoint+` AND currency=?3 AND book=?4), 0)
			+ COALESCE(SUM(amount) FILTER (WHERE currency=?3 AND book=?4), 0), COUNT(*)
		FROM ledger_entries WHERE account_id=?1 AND livemode=?2 AND id > `+latestCheckpoint,
		accountID, boolInt(livemode), currency, book)
	if err != nil {
		return 0, 0, err
	}
	if err := row.Scan(&sum, &entries); err != nil {
		return 0, 0, fmt.Errorf("store: book balance: %w", err)
	}
	return sum, entries, nil
}

// checkpointAfter is how many entries a guarded sum on PostgreSQL may read
// past the newest checkpoint before the store writes a new one for the
// account by itself (checkpointSoon), so that the next guards read few:
// the sum runs under the account's balance lock, which every debit of the
// account waits for.
const checkpointAfter = 1000

// checkpointSoon writes a checkpoint of the account and mode in the
// background, unless one is being written already. A balance guard on
// PostgreSQL holds the account's balance lock while it sums, so a long sum
// makes every debit of the account wait; the periodic checkpointer
// (CheckpointLedger) may be a minute away.
func (s *Store) checkpointSoon(accountID string, livemode bool) {
	k := acctMode{accountID, livemode}
	if _, busy := s.checkpointing.LoadOrStore(k, true); busy {
		return
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer s.checkpointing.Delete(k)
		horizon, err := s.ledgerHorizon(s.bgCtx)
		if err == nil {
			_, err = s.checkpoint(s.bgCtx, accountID, livemode, 1, horizon)
		}
		_ = err // the periodic checkpointer tries again; nothing waits for this one
	}()
}

// CheckpointLedger writes a checkpoint for every account and mode with at
// least minEntries ledger entries after its newest checkpoint, and reports
// how many it wrote. The sums are computed on the read pool over committed
// entries (which never change), so the writer only appends the result.
func (s *Store) CheckpointLedger(ctx context.Context, minEntries int) (int, error) {
	horizon, err := s.ledgerHorizon(ctx)
	if err != nil {
		return 0, err
	}
	accts, err := s.Accounts(ctx)
	if err != nil {
		return 0, err
	}
	written := 0
	for _, a := range accts {
		for _, live := range []bool{false, true} {
			ok, err := s.checkpoint(ctx, a.ID, live, minEntries, horizon)
			if err != nil {
				return written, err
			}
			if ok {
				written++
			}
		}
	}
	return written, nil
}

// ledgerHorizon returns a ledger id at or below which every entry there
// will ever be is committed, so that a checkpoint through it can never miss
// one. With one writer (SQLite) ids are handed out in commit order and any
// committed id will do. On PostgreSQL several connections insert at once
// and an entry may commit after one with a higher id; so it takes a SHARE
// lock on the ledger for a moment: that waits for every transaction that
// has inserted entries (each holds ROW EXCLUSIVE, taken before its ids
// were drawn) to end, and the highest id then is the horizon. Inserts wait
// only while the lock is held, a few milliseconds; lock_timeout bounds it.
func (s *Store) ledgerHorizon(ctx context.Context) (int64, error) {
	if !s.d.postgres {
		return math.MaxInt64, nil
	}
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var horizon int64
	for _, q := range []string{`SET LOCAL lock_timeout = '10s'`, `LOCK TABLE ledger_entries IN SHARE MODE`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("store: checkpoint horizon: %w", err)
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM ledger_entries`).Scan(&horizon); err != nil {
		return 0, fmt.Errorf("store: checkpoint horizon: %w", err)
	}
	return horizon, tx.Commit()
}

func (s *Store) checkpoint(ctx context.Context, accountID string, livemode bool, minEntries int, horizon int64) (bool, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.d.postgres {
		opts.Isolation = sql.LevelRepeatableRead // one snapshot for both queries
	}
	rtx, err := s.rdb.BeginTx(ctx, opts)
	if err != nil {
		return false, err
	}
	defer rtx.Rollback()
	var prev, n int64
	var through sql.NullInt64
	err = rtx.QueryRowContext(ctx, s.d.bind(`SELECT `+latestCheckpoint+`, COUNT(*), MAX(id) FROM ledger_entries
		WHERE account_id=?1 AND livemode=?2 AND id > `+latestCheckpoint+` AND id <= ?3`), accountID, boolInt(livemode), horizon).Scan(&prev, &n, &through)
	if err != nil {
		return false, fmt.Errorf("store: checkpoint: %w", err)
	}
	if n == 0 || n < int64(minEntries) {
		return false, nil
	}
	// The same snapshot: the newest checkpoint plus the entries up to through.
	rows, err := rtx.QueryContext(ctx, s.d.bind(`SELECT currency, book, SUM(amount) FROM (
			SELECT currency, book, balance AS amount FROM ledger_checkpoints WHERE account_id=?1 AND livemode=?2 AND through_id=?3
			UNION ALL
			SELECT currency, book, amount FROM ledger_entries WHERE account_id=?1 AND livemode=?2 AND id > ?3 AND id <= ?4
		) AS book_amounts GROUP BY currency, book`), accountID, boolInt(livemode), prev, through.Int64)
	if err != nil {
		return false, fmt.Errorf("store: checkpoint sums: %w", err)
	}
	sums, err := scanBalances(rows)
	if err != nil {
		return false, err
	}
	rtx.Rollback()
	wrote := false
	err = s.Write(ctx, func(tx *Tx) error {
		// Another checkpointer may have been quicker; keep checkpoints in
		// order. (One on another replica that read the same prev writes an
		// equally correct checkpoint; the same one twice is kept once.)
		row, err := tx.queryRow(`SELECT `+latestCheckpoint, accountID, boolInt(livemode))
		if err != nil {
			return err
		}
		var latest int64
		if err := row.Scan(&latest); err != nil {
			return err
		}
		if latest != prev {
			return nil
		}
		for _, b := range sums {
			if _, err := tx.exec(`INSERT INTO ledger_checkpoints (account_id, livemode, through_id, currency, book, balance, created)
				VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`, accountID, boolInt(livemode), through.Int64, b.Currency, b.Book, b.Amount, micros(tx.now)); err != nil {
				return fmt.Errorf("store: insert checkpoint: %w", err)
			}
		}
		wrote = true
		return nil
	})
	return wrote, err
}
