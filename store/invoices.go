package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Invoice is an invoice as stored. Receipts are loaded with it by the read
// methods; the write methods store the invoice row only (receipts have their
// own methods).
type Invoice struct {
	ID                    string
	AccountID             string
	Livemode              bool
	Status                string
	Amount                int64
	Currency              string
	Network               string // crypto only
	AmountPaid            int64
	TransactionReference  string
	CallbackURL           string
	PaymentURL            string
	Description           string
	Metadata              map[string]string
	CustomerName          string
	CustomerEmail         string
	CustomerID            string
	Provider              string
	ProviderRef           string
	DepositAddress        string // crypto only
	ConfirmationsRequired int    // crypto only
	PaymentID             string // the payment that paid a card invoice
	ExpiresAt             time.Time
	PaidAt                time.Time // zero until paid
	Created               time.Time
	Updated               time.Time

	Receipts []*InvoiceReceipt // oldest first
}

// InvoiceReceipt is one incoming transfer towards a crypto invoice.
type InvoiceReceipt struct {
	AccountID     string
	Livemode      bool
	InvoiceID     string
	TxnID         string
	Amount        int64
	Confirmations int
	// Counted is true once Amount has been added to the invoice's AmountPaid.
	Counted bool
	Created time.Time // when the transfer was first reported
	Updated time.Time
}

// InvoiceKey names one invoice.
type InvoiceKey struct {
	AccountID string
	Livemode  bool
	ID        string
}

const invoiceCols = `id, account_id, livemode, status, amount, currency, network, amount_paid, transaction_reference,
	callback_url, payment_url, description, metadata, customer_name, customer_email, customer_id, provider,
	provider_ref, deposit_address, confirmations_required, payment_id, expires_at, paid_at, created, updated`

const receiptCols = `account_id, livemode, invoice_id, txn_id, amount, confirmations, counted, created, updated`

func scanInvoice(row interface{ Scan(...any) error }) (*Invoice, error) {
	var inv Invoice
	var network, desc, meta, cname, cemail, cid, pref, addr, payID sql.NullString
	var paidAt sql.NullInt64
	var expires, created, updated int64
	err := row.Scan(&inv.ID, &inv.AccountID, &inv.Livemode, &inv.Status, &inv.Amount, &inv.Currency, &network,
		&inv.AmountPaid, &inv.TransactionReference, &inv.CallbackURL, &inv.PaymentURL, &desc, &meta, &cname, &cemail,
		&cid, &inv.Provider, &pref, &addr, &inv.ConfirmationsRequired, &payID, &expires, &paidAt, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan invoice: %w", err)
	}
	inv.Network, inv.Description, inv.CustomerName = network.String, desc.String, cname.String
	inv.CustomerEmail, inv.CustomerID, inv.ProviderRef = cemail.String, cid.String, pref.String
	inv.DepositAddress, inv.PaymentID = addr.String, payID.String
	if inv.Metadata, err = decodeMetadata(meta); err != nil {
		return nil, err
	}
	inv.ExpiresAt, inv.Created, inv.Updated = fromMicros(expires), fromMicros(created), fromMicros(updated)
	if paidAt.Valid {
		inv.PaidAt = fromMicros(paidAt.Int64)
	}
	return &inv, nil
}

func scanReceipt(row interface{ Scan(...any) error }) (*InvoiceReceipt, error) {
	var r InvoiceReceipt
	var created, updated int64
	err := row.Scan(&r.AccountID, &r.Livemode, &r.InvoiceID, &r.TxnID, &r.Amount, &r.Confirmations, &r.Counted, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan invoice receipt: %w", err)
	}
	r.Created, r.Updated = fromMicros(created), fromMicros(updated)
	return &r, nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

// InsertInvoice writes a new invoice. A transaction_reference already used by
// the account in the same mode is ErrConflict.
func (tx *Tx) InsertInvoice(inv *Invoice) error {
	meta, err := encodeMetadata(inv.Metadata)
	if err != nil {
		return err
	}
	_, err = tx.exec(`INSERT INTO invoices (`+invoiceCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		inv.ID, inv.AccountID, boolInt(inv.Livemode), inv.Status, inv.Amount, inv.Currency, nullStr(inv.Network),
		inv.AmountPaid, inv.TransactionReference, inv.CallbackURL, inv.PaymentURL, nullStr(inv.Description), meta,
		nullStr(inv.CustomerName), nullStr(inv.CustomerEmail), nullStr(inv.CustomerID), inv.Provider,
		nullStr(inv.ProviderRef), nullStr(inv.DepositAddress), inv.ConfirmationsRequired, nullStr(inv.PaymentID),
		micros(inv.ExpiresAt), nullTime(inv.PaidAt), micros(inv.Created), micros(inv.Updated))
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: insert invoice: %w", ErrConflict)
		}
		return fmt.Errorf("store: insert invoice: %w", err)
	}
	return nil
}

// UpdateInvoice writes an invoice's mutable fields: status, amount paid, the
// paying payment, paid time and provider reference.
func (tx *Tx) UpdateInvoice(inv *Invoice) error {
	res, err := tx.exec(`UPDATE invoices SET status=?, amount_paid=?, payment_id=?, paid_at=?, provider_ref=?, updated=?
		WHERE account_id=? AND livemode=? AND id=?`,
		inv.Status, inv.AmountPaid, nullStr(inv.PaymentID), nullTime(inv.PaidAt), nullStr(inv.ProviderRef),
		micros(inv.Updated), inv.AccountID, boolInt(inv.Livemode), inv.ID)
	if err != nil {
		return fmt.Errorf("store: update invoice: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// GetInvoice reads an invoice and its receipts inside the write transaction,
// so that a check made on it holds until the commit.
func (tx *Tx) GetInvoice(accountID string, livemode bool, id string) (*Invoice, error) {
	row, err := tx.queryRow(`SELECT `+invoiceCols+` FROM invoices WHERE account_id=? AND livemode=? AND id=?`+tx.d.forUpdate(),
		accountID, boolInt(livemode), id)
	if err != nil {
		return nil, err
	}
	inv, err := scanInvoice(row)
	if err != nil {
		return nil, err
	}
	return inv, tx.loadReceipts(inv)
}

// InvoiceIDByReference finds the id of the account's invoice with the
// transaction reference, inside the write transaction.
func (tx *Tx) InvoiceIDByReference(accountID string, livemode bool, ref string) (string, error) {
	return tx.queryString("invoice by reference", `SELECT id FROM invoices WHERE account_id=? AND livemode=? AND transaction_reference=?`,
		accountID, boolInt(livemode), ref)
}

func (tx *Tx) loadReceipts(inv *Invoice) error {
	st, err := tx.stmt(`SELECT ` + receiptCols + ` FROM invoice_receipts WHERE account_id=? AND livemode=? AND invoice_id=?
		ORDER BY created, txn_id`)
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(context.Background(), inv.AccountID, boolInt(inv.Livemode), inv.ID)
	if err != nil {
		return fmt.Errorf("store: invoice receipts: %w", err)
	}
	defer rows.Close()
	inv.Receipts = nil
	for rows.Next() {
		r, err := scanReceipt(rows)
		if err != nil {
			return err
		}
		inv.Receipts = append(inv.Receipts, r)
	}
	return rows.Err()
}

// InsertInvoiceReceipt writes a new receipt; the same transaction id twice
// on one invoice is ErrConflict.
func (tx *Tx) InsertInvoiceReceipt(r *InvoiceReceipt) error {
	_, err := tx.exec(`INSERT INTO invoice_receipts (`+receiptCols+`) VALUES (?,?,?,?,?,?,?,?,?)`,
		r.AccountID, boolInt(r.Livemode), r.InvoiceID, r.TxnID, r.Amount, r.Confirmations, boolInt(r.Counted),
		micros(r.Created), micros(r.Updated))
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: insert invoice receipt: %w", ErrConflict)
		}
		return fmt.Errorf("store: insert invoice receipt: %w", err)
	}
	return nil
}

// UpdateInvoiceReceipt writes a receipt's confirmations and whether it is counted.
func (tx *Tx) UpdateInvoiceReceipt(r *InvoiceReceipt) error {
	res, err := tx.exec(`UPDATE invoice_receipts SET confirmations=?, counted=?, updated=?
		WHERE account_id=? AND livemode=? AND invoice_id=? AND txn_id=?`,
		r.Confirmations, boolInt(r.Counted), micros(r.Updated), r.AccountID, boolInt(r.Livemode), r.InvoiceID, r.TxnID)
	if err != nil {
		return fmt.Errorf("store: update invoice receipt: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// GetInvoice reads one invoice of the account and mode, with its receipts.
func (s *Store) GetInvoice(ctx context.Context, accountID string, livemode bool, id string) (*Invoice, error) {
	inv, err := scanInvoice(s.queryRow(ctx, `SELECT `+invoiceCols+` FROM invoices
		WHERE account_id=? AND livemode=? AND id=?`, accountID, boolInt(livemode), id))
	if err != nil {
		return nil, err
	}
	return inv, s.attachReceipts(ctx, []*Invoice{inv})
}

// GetInvoiceByReference reads the account's invoice with the transaction
// reference, with its receipts.
func (s *Store) GetInvoiceByReference(ctx context.Context, accountID string, livemode bool, ref string) (*Invoice, error) {
	inv, err := scanInvoice(s.queryRow(ctx, `SELECT `+invoiceCols+` FROM invoices
		WHERE account_id=? AND livemode=? AND transaction_reference=?`, accountID, boolInt(livemode), ref))
	if err != nil {
		return nil, err
	}
	return inv, s.attachReceipts(ctx, []*Invoice{inv})
}

// GetInvoiceByID reads an invoice by id alone, whatever its account. It is
// for the hosted payment page, whose only credential is the unguessable
// invoice id in its URL; API reads must use GetInvoice.
func (s *Store) GetInvoiceByID(ctx context.Context, id string) (*Invoice, error) {
	inv, err := scanInvoice(s.queryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE id=?`, id))
	if err != nil {
		return nil, err
	}
	return inv, s.attachReceipts(ctx, []*Invoice{inv})
}

// FindInvoices reads the account's invoices whose id or transaction
// reference is among keys (at most a few hundred), with their receipts, in
// no particular order; callers match them to their keys.
func (s *Store) FindInvoices(ctx context.Context, accountID string, livemode bool, ids, refs []string) ([]*Invoice, error) {
	var out []*Invoice
	for _, q := range []struct {
		col  string
		vals []string
	}{{"id", ids}, {"transaction_reference", refs}} {
		if len(q.vals) == 0 {
			continue
		}
		args := []any{accountID, boolInt(livemode)}
		for _, v := range q.vals {
			args = append(args, v)
		}
		rows, err := s.query(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE account_id=? AND livemode=? AND `+
			q.col+` IN (?`+strings.Repeat(",?", len(q.vals)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: find invoices: %w", err)
		}
		for rows.Next() {
			inv, err := scanInvoice(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, inv)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, s.attachReceipts(ctx, out)
}

// ListInvoices returns up to f.Limit invoices with their receipts, newest first.
func (s *Store) ListInvoices(ctx context.Context, f PageFilter) ([]*Invoice, error) {
	where, args := f.where()
	rows, err := s.query(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE `+where+
		f.newestFirst(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list invoices: %w", err)
	}
	var out []*Invoice
	for rows.Next() {
		inv, err := scanInvoice(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, inv)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, err
	}
	return out, s.attachReceipts(ctx, out)
}

// attachReceipts loads the receipts of invoices of one account and mode in
// one query per account and mode.
func (s *Store) attachReceipts(ctx context.Context, invs []*Invoice) error {
	type owner struct {
		account string
		live    bool
	}
	byOwner := map[owner][]any{}
	index := map[InvoiceKey]*Invoice{}
	for _, inv := range invs {
		inv.Receipts = nil
		o := owner{inv.AccountID, inv.Livemode}
		byOwner[o] = append(byOwner[o], inv.ID)
		index[InvoiceKey{inv.AccountID, inv.Livemode, inv.ID}] = inv
	}
	for o, ids := range byOwner {
		args := append([]any{o.account, boolInt(o.live)}, ids...)
		rows, err := s.query(ctx, `SELECT `+receiptCols+` FROM invoice_receipts WHERE account_id=? AND livemode=?
			AND invoice_id IN (?`+strings.Repeat(",?", len(ids)-1)+`) ORDER BY created, txn_id`, args...)
		if err != nil {
			return fmt.Errorf("store: invoice receipts: %w", err)
		}
		for rows.Next() {
			r, err := scanReceipt(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if inv := index[InvoiceKey{r.AccountID, r.Livemode, r.InvoiceID}]; inv != nil {
				inv.Receipts = append(inv.Receipts, r)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// DueInvoices returns up to limit open or partially paid invoices whose
// expiry is at or before now, of one account and mode if accountID is set,
// or of every account otherwise.
func (s *Store) DueInvoices(ctx context.Context, now time.Time, accountID string, livemode bool, limit int) ([]InvoiceKey, error) {
	query := `SELECT account_id, livemode, id FROM invoices WHERE ` + payableInvoice + ` AND expires_at <= ?`
	args := []any{micros(now)}
	if accountID != "" {
		query += ` AND account_id=? AND livemode=?`
		args = append(args, accountID, boolInt(livemode))
	}
	rows, err := s.query(ctx, query+` ORDER BY expires_at LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: due invoices: %w", err)
	}
	defer rows.Close()
	var out []InvoiceKey
	for rows.Next() {
		var k InvoiceKey
		if err := rows.Scan(&k.AccountID, &k.Livemode, &k.ID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Account reads one account. The hosted payment page shows its name as the merchant's.
func (s *Store) Account(ctx context.Context, id string) (*Account, error) {
	a, err := scanAccount(s.queryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: account: %w", err)
	}
	return a, nil
}
