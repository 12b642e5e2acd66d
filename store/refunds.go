package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Refund is a refund as stored.
type Refund struct {
	ID        string
	AccountID string
	Livemode  bool
	PaymentID string
	Amount    int64
	Currency  string
	Status    string
	Reason    string
	Metadata  map[string]string
	Created   time.Time
}

const refundCols = `id, account_id, livemode, payment_id, amount, currency, status, reason, metadata, created`

func scanRefund(row interface{ Scan(...any) error }) (*Refund, error) {
	var r Refund
	var reason, meta sql.NullString
	var created int64
	err := row.Scan(&r.ID, &r.AccountID, &r.Livemode, &r.PaymentID, &r.Amount, &r.Currency, &r.Status,
		&reason, &meta, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan refund: %w", err)
	}
	r.Reason = reason.String
	if r.Metadata, err = decodeMetadata(meta); err != nil {
		return nil, err
	}
	r.Created = fromMicros(created)
	return &r, nil
}

// InsertRefund writes a new refund.
func (tx *Tx) InsertRefund(r *Refund) error {
	meta, err := encodeMetadata(r.Metadata)
	if err != nil {
		return err
	}
	err = tx.execLater(`INSERT INTO refunds (`+refundCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.AccountID, boolInt(r.Livemode), r.PaymentID, r.Amount, r.Currency, r.Status,
		nullStr(r.Reason), meta, micros(r.Created))
	if err != nil {
		return fmt.Errorf("store: insert refund: %w", err)
	}
	return nil
}

// GetRefund reads one refund of the account and mode.
func (s *Store) GetRefund(ctx context.Context, accountID string, livemode bool, id string) (*Refund, error) {
	return scanRefund(s.r.getRefund.QueryRowContext(ctx, accountID, boolInt(livemode), id))
}

// ListRefunds returns up to f.Limit refunds, newest first, of one payment if paymentID is set.
func (s *Store) ListRefunds(ctx context.Context, f PageFilter, paymentID string) ([]*Refund, error) {
	where, args := f.where()
	if paymentID != "" {
		where += " AND payment_id = ?"
		args = append(args, paymentID)
	}
	rows, err := s.query(ctx, `SELECT `+refundCols+` FROM refunds WHERE `+where+
		f.newestFirst(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list refunds: %w", err)
	}
	defer rows.Close()
	var out []*Refund
	for rows.Next() {
		r, err := scanRefund(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// UpdateRefundStatus sets a refund's status.
func (tx *Tx) UpdateRefundStatus(r *Refund) error {
	res, err := tx.exec(`UPDATE refunds SET status=? WHERE account_id=? AND livemode=? AND id=?`,
		r.Status, r.AccountID, boolInt(r.Livemode), r.ID)
	if err != nil {
		return fmt.Errorf("store: update refund: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}
