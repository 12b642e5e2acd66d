package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PendingOperations returns up to limit payments with a capture or cancel
// sent to their provider and not answered definitely, that are due a
// reconciler call: never asked and pending since before firstBefore (so the
// call that started it must have ended), or asked before and due again at now.
func (s *Store) PendingOperations(ctx context.Context, firstBefore, now time.Time, limit int) ([]*Payment, []ReconcileState, error) {
	rows, err := s.query(ctx, `SELECT `+hookPrefixCols("p.", paymentCols)+`, c.attempts, c.next_check
		FROM payments AS p INDEXED BY payments_pending_op LEFT JOIN reconcile_checks AS c ON c.account_id = p.account_id AND c.livemode = p.livemode AND c.object_id = p.id
		WHERE p.pending_op IS NOT NULL
		  AND ((c.next_check IS NULL AND p.pending_since <= ?) OR c.next_check <= ?)
		LIMIT ?`, micros(firstBefore), micros(now), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: pending operations: %w", err)
	}
	return scanDue(rows, scanPayment)
}

// OperatorItem is something paymentd could not settle on its own and an
// operator must look at: an object whose provider offers no way to ask, or
// answered that money moved without saying how.
type OperatorItem struct {
	ID        string
	AccountID string
	Livemode  bool
	ObjectID  string // the payment, refund, invoice or payout concerned
	Kind      string // what is wrong, e.g. payment_unsettled_no_status_endpoint
	Message   string // what is known and what the operator should do
	Created   time.Time
	Resolved  time.Time // zero while open
}

// AddOperatorItem records an item, unless one of the same kind is already
// recorded for the object (open or resolved): it reports whether it added one.
func (tx *Tx) AddOperatorItem(it *OperatorItem) (bool, error) {
	res, err := tx.exec(`INSERT INTO operator_items (id, account_id, livemode, object_id, kind, message, created)
		VALUES (?,?,?,?,?,?,?) ON CONFLICT (account_id, livemode, object_id, kind) DO NOTHING`,
		it.ID, it.AccountID, boolInt(it.Livemode), it.ObjectID, it.Kind, it.Message, micros(tx.now))
	if err != nil {
		return false, fmt.Errorf("store: operator item: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ResolveOperatorItem closes the open item of one kind of an object, when
// what it asked a person to look at has resolved itself.
func (tx *Tx) ResolveOperatorItem(accountID string, livemode bool, objectID, kind string) error {
	if _, err := tx.exec(`UPDATE operator_items SET resolved=? WHERE account_id=? AND livemode=? AND object_id=? AND kind=? AND resolved IS NULL`,
		micros(tx.now), accountID, boolInt(livemode), objectID, kind); err != nil {
		return fmt.Errorf("store: operator item: %w", err)
	}
	return nil
}

// ResolveOperatorItems closes the open items of an object, when a definite
// answer settled it after all.
func (tx *Tx) ResolveOperatorItems(accountID string, livemode bool, objectID string) error {
	if _, err := tx.exec(`UPDATE operator_items SET resolved=? WHERE account_id=? AND livemode=? AND object_id=? AND resolved IS NULL`,
		micros(tx.now), accountID, boolInt(livemode), objectID); err != nil {
		return fmt.Errorf("store: operator item: %w", err)
	}
	return nil
}

// OperatorItems lists items, oldest first: the open ones only unless all is set.
func (s *Store) OperatorItems(ctx context.Context, all bool) ([]*OperatorItem, error) {
	q := `SELECT id, account_id, livemode, object_id, kind, message, created, resolved FROM operator_items`
	if !all {
		q += ` WHERE resolved IS NULL`
	}
	rows, err := s.query(ctx, q+` ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("store: operator items: %w", err)
	}
	defer rows.Close()
	var out []*OperatorItem
	for rows.Next() {
		var it OperatorItem
		var created int64
		var resolved sql.NullInt64
		if err := rows.Scan(&it.ID, &it.AccountID, &it.Livemode, &it.ObjectID, &it.Kind, &it.Message, &created, &resolved); err != nil {
			return nil, fmt.Errorf("store: operator items: %w", err)
		}
		it.Created = fromMicros(created)
		if resolved.Valid {
			it.Resolved = fromMicros(resolved.Int64)
		}
		out = append(out, &it)
	}
	return out, rows.Err()
}

// OpenOperatorItems counts the items still open, for /v1/status.
func (s *Store) OpenOperatorItems(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT count(*) FROM operator_items INDEXED BY operator_items_open WHERE resolved IS NULL`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: operator items: %w", err)
	}
	return n, nil
}

// UnsettledInvoicePayment is Store.UnsettledInvoicePayment inside the write
// transaction, so that a check that an invoice has no unsettled payment
// attempt holds until the commit that records a new one.
func (tx *Tx) UnsettledInvoicePayment(accountID string, livemode bool, invoiceID, idFloor string) (*Payment, error) {
	row, err := tx.queryRow(`SELECT `+paymentCols+` FROM payments
		WHERE account_id = ? AND livemode = ? AND id >= ? AND `+openPayment+`
		AND `+tx.d.jsonText("metadata", "invoice_id")+` = ? ORDER BY id DESC LIMIT 1`,
		accountID, boolInt(livemode), idFloor, invoiceID)
	if err != nil {
		return nil, err
	}
	return scanPayment(row)
}

// InvoiceAttempt is a provider-served invoice whose creation was sent to
// its provider and not yet answered definitely.
type InvoiceAttempt struct {
	AccountID            string
	Livemode             bool
	TransactionReference string
	InvoiceID            string
	Provider             string // the connection asked
	RequestHash          []byte
	Invoice              []byte // the invoice to write, JSON
	Created              time.Time
}

// PutInvoiceAttempt records an attempt, or updates the connection asked of
// an existing one with the same invoice id.
func (tx *Tx) PutInvoiceAttempt(a *InvoiceAttempt) error {
	_, err := tx.exec(`INSERT INTO invoice_attempts (account_id, livemode, transaction_reference, invoice_id, provider,
		request_hash, invoice, created) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (account_id, livemode, transaction_reference) DO UPDATE SET provider=excluded.provider
		WHERE invoice_attempts.invoice_id = excluded.invoice_id`,
		a.AccountID, boolInt(a.Livemode), a.TransactionReference, a.InvoiceID, a.Provider, a.RequestHash,
		string(a.Invoice), micros(tx.now))
	if err != nil {
		return fmt.Errorf("store: invoice attempt: %w", err)
	}
	return nil
}

// DeleteInvoiceAttempt forgets the attempt of a reference, once settled.
func (tx *Tx) DeleteInvoiceAttempt(accountID string, livemode bool, ref string) error {
	if _, err := tx.exec(`DELETE FROM invoice_attempts WHERE account_id=? AND livemode=? AND transaction_reference=?`,
		accountID, boolInt(livemode), ref); err != nil {
		return fmt.Errorf("store: invoice attempt: %w", err)
	}
	return nil
}

const invoiceAttemptCols = `account_id, livemode, transaction_reference, invoice_id, provider, request_hash, invoice, created`

func scanInvoiceAttempt(row interface{ Scan(...any) error }) (*InvoiceAttempt, error) {
	var a InvoiceAttempt
	var inv string
	var created int64
	err := row.Scan(&a.AccountID, &a.Livemode, &a.TransactionReference, &a.InvoiceID, &a.Provider, &a.RequestHash, &inv, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan invoice attempt: %w", err)
	}
	a.Invoice, a.Created = []byte(inv), fromMicros(created)
	return &a, nil
}

// GetInvoiceAttempt reads the attempt of a reference.
func (s *Store) GetInvoiceAttempt(ctx context.Context, accountID string, livemode bool, ref string) (*InvoiceAttempt, error) {
	return scanInvoiceAttempt(s.queryRow(ctx, `SELECT `+invoiceAttemptCols+` FROM invoice_attempts
		WHERE account_id=? AND livemode=? AND transaction_reference=?`, accountID, boolInt(livemode), ref))
}

// InvoiceAttemptsBefore returns up to limit attempts recorded before t, oldest first.
func (s *Store) InvoiceAttemptsBefore(ctx context.Context, t time.Time, limit int) ([]*InvoiceAttempt, error) {
	rows, err := s.query(ctx, `SELECT `+invoiceAttemptCols+` FROM invoice_attempts INDEXED BY invoice_attempts_by_age
		WHERE created <= ? ORDER BY created LIMIT ?`, micros(t), limit)
	if err != nil {
		return nil, fmt.Errorf("store: invoice attempts: %w", err)
	}
	defer rows.Close()
	var out []*InvoiceAttempt
	for rows.Next() {
		a, err := scanInvoiceAttempt(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
