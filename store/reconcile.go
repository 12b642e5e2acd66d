package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ProviderEventSeen reports whether an inbound provider webhook with this
// event id was already handled.
func (s *Store) ProviderEventSeen(ctx context.Context, provider, eventID string) (bool, error) {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM provider_events WHERE provider=? AND event_id=?`, provider, eventID).Scan(&one)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: provider event: %w", err)
	}
	return true, nil
}

// InsertProviderEvent records that an inbound provider webhook was handled
// and how. A second record of the same event id is ErrConflict.
func (tx *Tx) InsertProviderEvent(provider, eventID, typ, objectID, outcome string) error {
	res, err := tx.exec(`INSERT INTO provider_events (provider, event_id, type, object_id, outcome, received)
		VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING`, provider, eventID, typ, nullStr(objectID), outcome, micros(tx.now))
	if err != nil {
		return fmt.Errorf("store: insert provider event: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrConflict
	}
	return nil
}

// UnsettledPayment finds a payment in status unknown or processing by
// paymentd's id or by the provider's reference, in any account. Settled
// payments are not found: nothing a provider says can change them.
func (s *Store) UnsettledPayment(ctx context.Context, provider, id, providerRef string) (*Payment, error) {
	if id != "" {
		p, err := scanPayment(s.queryRow(ctx, `SELECT `+paymentCols+` FROM payments INDEXED BY payments_unsettled
			WHERE id=? AND provider=? AND `+unsettledPayment, id, provider))
		if err != ErrNotFound || providerRef == "" {
			return p, err
		}
	}
	return scanPayment(s.queryRow(ctx, `SELECT `+paymentCols+` FROM payments INDEXED BY payments_unsettled_by_ref
		WHERE provider=? AND provider_ref=? AND `+unsettledPayment+` AND provider_ref IS NOT NULL`, provider, providerRef))
}

// ReconcileState is where the reconciler stands with one unsettled object.
type ReconcileState struct {
	Attempts  int       // status calls made so far
	NextCheck time.Time // zero before the first call
}

// UnsettledPayments returns up to limit payments in status unknown or
// processing that are due a status call: never asked and unchanged since
// firstBefore, or asked before and due again at now.
func (s *Store) UnsettledPayments(ctx context.Context, firstBefore, now time.Time, limit int) ([]*Payment, []ReconcileState, error) {
	rows, err := s.query(ctx, `SELECT `+hookPrefixCols("p.", paymentCols)+`, c.attempts, c.next_check
		FROM payments AS p INDEXED BY payments_unsettled LEFT JOIN reconcile_checks AS c ON c.account_id = p.account_id AND c.livemode = p.livemode AND c.object_id = p.id
		WHERE p.`+unsettledPayment+`
		  AND ((c.next_check IS NULL AND p.updated <= ?) OR c.next_check <= ?)
		LIMIT ?`, micros(firstBefore), micros(now), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: unsettled payments: %w", err)
	}
	return scanDue(rows, scanPayment)
}

// PendingRefunds returns up to limit refunds in status pending that are due
// a status call, as UnsettledPayments does for payments.
func (s *Store) PendingRefunds(ctx context.Context, firstBefore, now time.Time, limit int) ([]*Refund, []ReconcileState, error) {
	rows, err := s.query(ctx, `SELECT `+hookPrefixCols("r.", refundCols)+`, c.attempts, c.next_check
		FROM refunds AS r INDEXED BY refunds_pending LEFT JOIN reconcile_checks AS c ON c.account_id = r.account_id AND c.livemode = r.livemode AND c.object_id = r.id
		WHERE `+pendingRefund+`
		  AND ((c.next_check IS NULL AND r.created <= ?) OR c.next_check <= ?)
		LIMIT ?`, micros(firstBefore), micros(now), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: pending refunds: %w", err)
	}
	return scanDue(rows, scanRefund)
}

// scanDue reads the rows of a reconciler query, whose columns are an
// object's own followed by its reconcile_checks attempts and next_check,
// and closes them.
func scanDue[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, []ReconcileState, error) {
	defer rows.Close()
	var objs []T
	var states []ReconcileState
	for rows.Next() {
		var attempts, next sql.NullInt64
		o, err := scan(hookScanTail{rows, []any{&attempts, &next}})
		if err != nil {
			return nil, nil, err
		}
		objs = append(objs, o)
		states = append(states, ReconcileState{Attempts: int(attempts.Int64), NextCheck: hookFromMicros(next)})
	}
	return objs, states, rows.Err()
}

// hookScanTail lets a row scanner for a table read extra columns after its own.
type hookScanTail struct {
	rows  *sql.Rows
	extra []any
}

func (s hookScanTail) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.extra...)...) }

// prefixCols qualifies a column list with a table alias.
func hookPrefixCols(alias, cols string) string {
	out := []byte{}
	start := true
	for i := 0; i < len(cols); i++ {
		c := cols[i]
		if start && c != ' ' && c != '\t' && c != '\n' {
			out = append(out, alias...)
			start = false
		}
		if c == ',' {
			start = true
		}
		out = append(out, c)
	}
	return string(out)
}

// SetReconcileCheck records a status call that left the object unsettled.
func (tx *Tx) SetReconcileCheck(objectID, accountID string, livemode bool, st ReconcileState, lastErr string) error {
	_, err := tx.exec(`INSERT INTO reconcile_checks (object_id, account_id, livemode, attempts, next_check, last_error)
		VALUES (?,?,?,?,?,?) ON CONFLICT (account_id, livemode, object_id) DO UPDATE SET attempts=excluded.attempts,
		next_check=excluded.next_check, last_error=excluded.last_error`,
		objectID, accountID, boolInt(livemode), st.Attempts, micros(st.NextCheck), nullStr(lastErr))
	if err != nil {
		return fmt.Errorf("store: reconcile check: %w", err)
	}
	return nil
}

// DeleteReconcileCheck forgets a settled object's schedule.
func (tx *Tx) DeleteReconcileCheck(accountID string, livemode bool, objectID string) error {
	if _, err := tx.exec(`DELETE FROM reconcile_checks WHERE account_id=? AND livemode=? AND object_id=?`,
		accountID, boolInt(livemode), objectID); err != nil {
		return fmt.Errorf("store: reconcile check: %w", err)
	}
	return nil
}

// ReloadRefund reads a refund inside the write, so that a check made on it
// holds until the commit.
func (tx *Tx) ReloadRefund(accountID string, livemode bool, id string) (*Refund, error) {
	row, err := tx.queryRow(`SELECT `+refundCols+` FROM refunds WHERE account_id=? AND livemode=? AND id=?`+tx.d.forUpdate(),
		accountID, boolInt(livemode), id)
	if err != nil {
		return nil, err
	}
	return scanRefund(row)
}
