package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Payment is a payment as stored.
type Payment struct {
	ID               string
	AccountID        string
	Livemode         bool
	Status           string
	Amount           int64
	Currency         string
	AmountCapturable int64
	AmountCaptured   int64
	AmountRefunded   int64
	CaptureMethod    string
	PaymentMethod    string
	Provider         string
	ProviderRef      string
	Description      string
	Metadata         map[string]string
	CustomerName     string
	CustomerEmail    string
	CustomerID       string
	AgentID          string
	FailureCode      string
	FailureMessage   string
	// PendingOp is a capture or cancel sent to the provider and not yet
	// answered definitely ("" when none); PendingAmount is the capture's
	// amount, PendingKey the caller's idempotency key that may resume it
	// and PendingSince when it was recorded.
	PendingOp     string
	PendingAmount int64
	PendingKey    string
	PendingSince  time.Time
	Created       time.Time
	Updated       time.Time
}

const paymentCols = `id, account_id, livemode, status, amount, currency, amount_capturable, amount_captured,
	amount_refunded, capture_method, payment_method, provider, provider_ref, description, metadata,
	customer_name, customer_email, customer_id, agent_id, failure_code, failure_message, created, updated,
	pending_op, pending_amount, pending_key, pending_since`

func scanPayment(row interface{ Scan(...any) error }) (*Payment, error) {
	var p Payment
	var providerRef, desc, meta, cname, cemail, cid, agent, fcode, fmsg sql.NullString
	var created, updated int64
	var pendOp, pendKey sql.NullString
	var pendAmount, pendSince sql.NullInt64
	err := row.Scan(&p.ID, &p.AccountID, &p.Livemode, &p.Status, &p.Amount, &p.Currency,
		&p.AmountCapturable, &p.AmountCaptured, &p.AmountRefunded, &p.CaptureMethod, &p.PaymentMethod,
		&p.Provider, &providerRef, &desc, &meta, &cname, &cemail, &cid, &agent, &fcode, &fmsg, &created, &updated,
		&pendOp, &pendAmount, &pendKey, &pendSince)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan payment: %w", err)
	}
	p.ProviderRef, p.Description, p.CustomerName = providerRef.String, desc.String, cname.String
	p.CustomerEmail, p.CustomerID, p.AgentID = cemail.String, cid.String, agent.String
	p.FailureCode, p.FailureMessage = fcode.String, fmsg.String
	if p.Metadata, err = decodeMetadata(meta); err != nil {
		return nil, err
	}
	p.Created, p.Updated = fromMicros(created), fromMicros(updated)
	p.PendingOp, p.PendingAmount, p.PendingKey = pendOp.String, pendAmount.Int64, pendKey.String
	if pendSince.Valid {
		p.PendingSince = fromMicros(pendSince.Int64)
	}
	return &p, nil
}

func encodeMetadata(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeMetadata(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	m := map[string]string{}
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, fmt.Errorf("store: metadata: %w", err)
	}
	return m, nil
}

// InsertPayment writes a new payment.
func (tx *Tx) InsertPayment(p *Payment) error {
	meta, err := encodeMetadata(p.Metadata)
	if err != nil {
		return err
	}
	err = tx.execLater(`INSERT INTO payments (`+paymentCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, append([]any{
		p.ID, p.AccountID, boolInt(p.Livemode), p.Status, p.Amount, p.Currency, p.AmountCapturable,
		p.AmountCaptured, p.AmountRefunded, p.CaptureMethod, p.PaymentMethod, p.Provider, nullStr(p.ProviderRef),
		nullStr(p.Description), meta, nullStr(p.CustomerName), nullStr(p.CustomerEmail), nullStr(p.CustomerID),
		nullStr(p.AgentID), nullStr(p.FailureCode), nullStr(p.FailureMessage), micros(p.Created), micros(p.Updated)},
		pending(p)...)...)
	if err != nil {
		return fmt.Errorf("store: insert payment: %w", err)
	}
	tx.payments.written(p)
	return nil
}

// pending returns the pending-operation columns of p, all NULL when it has none.
func pending(p *Payment) []any {
	if p.PendingOp == "" {
		return []any{nil, nil, nil, nil}
	}
	return []any{p.PendingOp, p.PendingAmount, nullStr(p.PendingKey), micros(p.PendingSince)}
}

// UpdatePayment writes a payment's mutable fields (status, amounts, failure,
// provider and its reference).
func (tx *Tx) UpdatePayment(p *Payment) error {
	res, err := tx.exec(`UPDATE payments SET status=?, amount_capturable=?, amount_captured=?, amount_refunded=?,
		provider=?, provider_ref=?, failure_code=?, failure_message=?, updated=?,
		pending_op=?, pending_amount=?, pending_key=?, pending_since=? WHERE account_id=? AND livemode=? AND id=?`,
		append(append([]any{p.Status, p.AmountCapturable, p.AmountCaptured, p.AmountRefunded, p.Provider, nullStr(p.ProviderRef),
			nullStr(p.FailureCode), nullStr(p.FailureMessage), micros(p.Updated)}, pending(p)...),
			p.AccountID, boolInt(p.Livemode), p.ID)...)
	if err != nil {
		return fmt.Errorf("store: update payment: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	tx.payments.written(p)
	return nil
}

// GetPayment reads a payment inside the write transaction, so that a check
// made on it holds until the commit.
func (tx *Tx) GetPayment(accountID string, livemode bool, id string) (*Payment, error) {
	row, err := tx.queryRow(`SELECT `+paymentCols+` FROM payments WHERE account_id=? AND livemode=? AND id=?`+tx.d.forUpdate(),
		accountID, boolInt(livemode), id)
	if err != nil {
		return nil, err
	}
	return scanPayment(row)
}

// PaymentProvider returns the provider a payment was made through, read
// inside the write transaction without locking the payment (GetPayment
// does): a payment's provider never changes once it can be refunded, and a
// refund's settlement that needs no more than this must not wait for, or
// deadlock with, a new refund of the same payment that holds its row.
func (tx *Tx) PaymentProvider(accountID string, livemode bool, id string) (string, error) {
	return tx.queryString("payment provider", `SELECT provider FROM payments WHERE account_id=? AND livemode=? AND id=?`,
		accountID, boolInt(livemode), id)
}

// GetPayment reads one payment of the account and mode, from memory if it
// is in the payment cache (and then keeps it there).
func (s *Store) GetPayment(ctx context.Context, accountID string, livemode bool, id string) (*Payment, error) {
	if p, ok := s.payments.get(accountID, livemode, id); ok {
		return p, nil
	}
	return s.readPayment(ctx, accountID, livemode, id)
}

// ReadPayment is GetPayment for a caller that only reads the payment: one
// served from the cache is the cached version itself, not a copy, and the
// caller must not change it (a change publishes a new version; it never
// alters one handed out).
func (s *Store) ReadPayment(ctx context.Context, accountID string, livemode bool, id string) (*Payment, error) {
	if p, ok := s.payments.kept(accountID, livemode, id); ok {
		return p, nil
	}
	return s.readPayment(ctx, accountID, livemode, id)
}

func (s *Store) readPayment(ctx context.Context, accountID string, livemode bool, id string) (*Payment, error) {
	gen := s.payments.generation()
	p, err := scanPayment(s.r.getPayment.QueryRowContext(ctx, accountID, boolInt(livemode), id))
	if err == nil {
		s.payments.fill(gen, p)
	}
	return p, err
}

// PageFilter selects a page of objects of one account and mode, newest first.
// Ids are time-ordered, so time bounds are expressed as id bounds.
type PageFilter struct {
	AccountID string
	Livemode  bool
	// Before, if set, keeps ids strictly below it (the page token, or a created_before bound).
	Before string
	// AtOrAfter, if set, keeps ids at or above it (a created_after bound).
	AtOrAfter string
	// Status, if set, keeps objects in this status.
	Status string
	// Limit is the page size.
	Limit int
}

func (f PageFilter) where(extra ...string) (string, []any) {
	conds := []string{"account_id = ?", "livemode = ?"}
	args := []any{f.AccountID, boolInt(f.Livemode)}
	if f.Before != "" {
		conds = append(conds, "id < ?")
		args = append(args, f.Before)
	}
	if f.AtOrAfter != "" {
		conds = append(conds, "id >= ?")
		args = append(args, f.AtOrAfter)
	}
	if f.Status != "" {
		conds = append(conds, "status = ?")
		args = append(args, f.Status)
	}
	conds = append(conds, extra...)
	return strings.Join(conds, " AND "), args
}

// newestFirst orders a page newest first and cuts it at f.Limit. The limit
// is written into the statement, not bound: PostgreSQL plans a prepared
// statement whose LIMIT is a parameter as if it could return a tenth of the
// account's rows, finds that generic plan dearer than a custom one, and so
// plans the statement again at every execution (~50 µs of the database's
// CPU per page); with the limit in the text its generic plan is chosen and
// kept. A statement per page size (at most 101) is prepared instead of one.
func (f PageFilter) newestFirst() string {
	return " ORDER BY account_id DESC, livemode DESC, id DESC LIMIT " + strconv.Itoa(f.Limit)
}

// ListPayments returns up to f.Limit payments, newest first. A page listed
// since the last published payment write is answered from memory. Otherwise
// it first reads only the ids of the page and takes the payments from the
// payment cache; if any is missing (or no longer matches the status filter),
// it reads the whole rows instead.
func (s *Store) ListPayments(ctx context.Context, f PageFilter) ([]*Payment, error) {
	if ps, ok := s.payments.page(f); ok {
		return ps, nil
	}
	gen := s.payments.generation()
	where, args := f.where()
	order := f.newestFirst()
	if s.payments.limit > 0 {
		if page, ok, err := s.cachedPage(ctx, f, `SELECT id FROM payments WHERE `+where+order, args); ok || err != nil {
			if err == nil {
				s.payments.keepPage(gen, f, page)
				page = copyPayments(page)
			}
			return page, err
		}
	}
	rows, err := s.query(ctx, `SELECT `+paymentCols+` FROM payments WHERE `+where+order, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list payments: %w", err)
	}
	defer rows.Close()
	var out []*Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	s.payments.fill(gen, out...)
	if s.payments.limit > 0 {
		s.payments.keepPage(gen, f, copyPayments(out))
	}
	return out, nil
}

// cachedPage reads the ids of a page and takes its payments from the payment
// cache: the versions kept there, not copies, which the caller must not
// change. It returns false if any is missing or no longer matches the filter.
func (s *Store) cachedPage(ctx context.Context, f PageFilter, query string, args []any) ([]*Payment, bool, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: list payments: %w", err)
	}
	defer rows.Close()
	out := make([]*Payment, 0, f.Limit)
	var id string
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return nil, false, err
		}
		p, ok := s.payments.kept(f.AccountID, f.Livemode, id)
		if !ok || (f.Status != "" && p.Status != f.Status) {
			return nil, false, nil
		}
		out = append(out, p)
	}
	return out, rows.Err() == nil, rows.Err()
}

// UnsettledInvoicePayment returns the newest payment made for an invoice
// (metadata invoice_id) since idFloor that the invoice does not reflect yet:
// one with no definite answer (processing, unknown, requires_capture), or
// one that succeeded after its answer came late (the reconciler settled it)
// — callers ask only about open invoices, whose own payment would have
// made them paid. ErrNotFound if there is none. idFloor is a payment id no
// later than the invoice's creation, so the scan is one range of the
// owner's payments, never the whole table.
func (s *Store) UnsettledInvoicePayment(ctx context.Context, accountID string, livemode bool, invoiceID, idFloor string) (*Payment, error) {
	p, err := scanPayment(s.queryRow(ctx, `SELECT `+paymentCols+` FROM payments
		WHERE account_id = ? AND livemode = ? AND id >= ? AND `+invoiceAttempt+`
		AND `+s.d.jsonText("metadata", "invoice_id")+` = ? ORDER BY id DESC LIMIT 1`,
		accountID, boolInt(livemode), idFloor, invoiceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: unsettled invoice payment: %w", err)
	}
	return p, nil
}
