package store

import (
	"context"
	"database/sql"
	"fmt"

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
	) GROUP BY currency, book ORDER BY currency, book`

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
// until the commit: the single writer runs every other change before or
// after this one, never between the check and the entries that follow it.
func (tx *Tx) BookBalance(accountID string, livemode bool, currency, book string) (int64, error) {
	return tx.balances.balance(balanceKey{accountID, livemode, currency, book}, func() (int64, error) {
		return tx.sumBook(accountID, livemode, currency, book)
	})
}

// sumBook sums one book from the ledger: the newest checkpoint plus the entries after it.
func (tx *Tx) sumBook(accountID string, livemode bool, currency, book string) (int64, error) {
	row, err := tx.queryRow(`SELECT
		COALESCE((SELECT balance FROM ledger_checkpoints WHERE account_id=?1 AND livemode=?2
			AND through_id=`+latestCheckpoint+` AND currency=?3 AND book=?4), 0)
		+ COALESCE((SELECT SUM(amount) FROM ledger_entries WHERE account_id=?1 AND livemode=?2
			AND id > `+latestCheckpoint+` AND currency=?3 AND book=?4), 0)`,
		accountID, boolInt(livemode), currency, book)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := row.Scan(&n); err != nil {
		return 0, fmt.Errorf("store: book balance: %w", err)
	}
	return n, nil
}

// CheckpointLedger writes a checkpoint for every account and mode with at
// least minEntries ledger entries after its newest checkpoint, and reports
// how many it wrote. The sums are computed on the read pool over committed
// entries (which never change), so the writer only appends the result.
func (s *Store) CheckpointLedger(ctx context.Context, minEntries int) (int, error) {
	accts, err := s.Accounts(ctx)
	if err != nil {
		return 0, err
	}
	written := 0
	for _, a := range accts {
		for _, live := range []bool{false, true} {
			ok, err := s.checkpoint(ctx, a.ID, live, minEntries)
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

func (s *Store) checkpoint(ctx context.Context, accountID string, livemode bool, minEntries int) (bool, error) {
	rtx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return false, err
	}
	defer rtx.Rollback()
	var prev, n int64
	var through sql.NullInt64
	err = rtx.QueryRowContext(ctx, `SELECT `+latestCheckpoint+`, COUNT(*), MAX(id) FROM ledger_entries
		WHERE account_id=?1 AND livemode=?2 AND id > `+latestCheckpoint, accountID, boolInt(livemode)).Scan(&prev, &n, &through)
	if err != nil {
		return false, fmt.Errorf("store: checkpoint: %w", err)
	}
	if n == 0 || n < int64(minEntries) {
		return false, nil
	}
	// The same snapshot: the newest checkpoint plus the entries up to through.
	rows, err := rtx.QueryContext(ctx, `SELECT currency, book, SUM(amount) FROM (
			SELECT currency, book, balance AS amount FROM ledger_checkpoints WHERE account_id=?1 AND livemode=?2 AND through_id=?3
			UNION ALL
			SELECT currency, book, amount FROM ledger_entries WHERE account_id=?1 AND livemode=?2 AND id > ?3 AND id <= ?4
		) GROUP BY currency, book`, accountID, boolInt(livemode), prev, through.Int64)
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
		// Another checkpointer may have been quicker; keep checkpoints in order.
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
				VALUES (?,?,?,?,?,?,?)`, accountID, boolInt(livemode), through.Int64, b.Currency, b.Book, b.Amount, micros(tx.now)); err != nil {
				return fmt.Errorf("store: insert checkpoint: %w", err)
			}
		}
		wrote = true
		return nil
	})
	return wrote, err
}
