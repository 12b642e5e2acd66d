package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/paymentd/paymentd"
)

// PayoutMethod is a payout method as configured for one account and mode.
type PayoutMethod struct {
	AccountID      string
	Livemode       bool
	ID             string
	Name           string
	Type           string // mobile_banking | bank_transfer | crypto
	Currency       string
	Network        string // crypto methods only
	MinAmount      int64
	MaxAmount      int64
	FeeFixed       int64
	FeeBasisPoints int64
	AccountFormat  string
}

const payoutMethodCols = `id, name, type, currency, network, min_amount, max_amount, fee_fixed, fee_basis_points, account_format`

// PayoutMethods returns the methods configured for the account and mode, in
// their configured order; none means the account uses the defaults.
func (s *Store) PayoutMethods(ctx context.Context, accountID string, livemode bool) ([]*PayoutMethod, error) {
	rows, err := s.query(ctx, `SELECT `+payoutMethodCols+` FROM payout_methods
		WHERE account_id=? AND livemode=? ORDER BY position`, accountID, boolInt(livemode))
	if err != nil {
		return nil, fmt.Errorf("store: payout methods: %w", err)
	}
	defer rows.Close()
	var out []*PayoutMethod
	for rows.Next() {
		m := PayoutMethod{AccountID: accountID, Livemode: livemode}
		var network, format sql.NullString
		if err := rows.Scan(&m.ID, &m.Name, &m.Type, &m.Currency, &network, &m.MinAmount, &m.MaxAmount,
			&m.FeeFixed, &m.FeeBasisPoints, &format); err != nil {
			return nil, fmt.Errorf("store: scan payout method: %w", err)
		}
		m.Network, m.AccountFormat = network.String, format.String
		out = append(out, &m)
	}
	return out, rows.Err()
}

// ReplacePayoutMethods makes methods the whole configuration of the account
// and mode (none: back to the defaults).
func (tx *Tx) ReplacePayoutMethods(accountID string, livemode bool, methods []*PayoutMethod) error {
	if _, err := tx.exec(`DELETE FROM payout_methods WHERE account_id=? AND livemode=?`, accountID, boolInt(livemode)); err != nil {
		return fmt.Errorf("store: delete payout methods: %w", err)
	}
	for i, m := range methods {
		_, err := tx.exec(`INSERT INTO payout_methods (account_id, livemode, position, updated, `+payoutMethodCols+`)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			accountID, boolInt(livemode), i, micros(tx.now), m.ID, m.Name, m.Type, m.Currency, nullStr(m.Network),
			m.MinAmount, m.MaxAmount, m.FeeFixed, m.FeeBasisPoints, nullStr(m.AccountFormat))
		if err != nil {
			return fmt.Errorf("store: insert payout method %s: %w", m.ID, err)
		}
	}
	return nil
}

// Payout is a payout as stored.
type Payout struct {
	ID                   string
	AccountID            string
	Livemode             bool
	TransactionReference string
	Status               string
	MethodID             string
	MethodType           string
	Network              string
	Currency             string
	Amount               int64
	Fee                  int64
	TotalAmount          int64
	RecipientName        string
	RecipientAccount     string
	Description          string
	CallbackURL          string
	Metadata             map[string]string
	Provider             string
	ProviderRef          string
	// SentReference is the reference the payout was sent to its provider
	// under, recorded before the call ("" for payouts recorded before it
	// was, which were sent under TransactionReference, and sandbox ones).
	SentReference  string
	FailureCode    string
	FailureMessage string
	Created        time.Time
	Updated        time.Time
	Processed      time.Time // zero until completed or rejected
}

const payoutCols = `id, account_id, livemode, transaction_reference, status, method_id, method_type, network, currency,
	amount, fee, total_amount, recipient_name, recipient_account, description, callback_url, metadata, provider,
	provider_ref, failure_code, failure_message, created, updated, processed, sent_reference`

func scanPayout(row interface{ Scan(...any) error }) (*Payout, error) {
	var p Payout
	var network, desc, callback, meta, providerRef, fcode, fmsg, sentRef sql.NullString
	var created, updated int64
	var processed sql.NullInt64
	err := row.Scan(&p.ID, &p.AccountID, &p.Livemode, &p.TransactionReference, &p.Status, &p.MethodID, &p.MethodType,
		&network, &p.Currency, &p.Amount, &p.Fee, &p.TotalAmount, &p.RecipientName, &p.RecipientAccount, &desc,
		&callback, &meta, &p.Provider, &providerRef, &fcode, &fmsg, &created, &updated, &processed, &sentRef)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan payout: %w", err)
	}
	p.Network, p.Description, p.CallbackURL = network.String, desc.String, callback.String
	p.ProviderRef, p.FailureCode, p.FailureMessage = providerRef.String, fcode.String, fmsg.String
	p.SentReference = sentRef.String
	if p.Metadata, err = decodeMetadata(meta); err != nil {
		return nil, err
	}
	p.Created, p.Updated = fromMicros(created), fromMicros(updated)
	if processed.Valid {
		p.Processed = fromMicros(processed.Int64)
	}
	return &p, nil
}

func optMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

// InsertPayout writes a new payout; a transaction_reference already used by
// the account and mode is ErrConflict.
func (tx *Tx) InsertPayout(p *Payout) error {
	meta, err := encodeMetadata(p.Metadata)
	if err != nil {
		return err
	}
	_, err = tx.exec(`INSERT INTO payouts (`+payoutCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		p.ID, p.AccountID, boolInt(p.Livemode), p.TransactionReference, p.Status, p.MethodID, p.MethodType,
		nullStr(p.Network), p.Currency, p.Amount, p.Fee, p.TotalAmount, p.RecipientName, p.RecipientAccount,
		nullStr(p.Description), nullStr(p.CallbackURL), meta, p.Provider, nullStr(p.ProviderRef), nullStr(p.FailureCode),
		nullStr(p.FailureMessage), micros(p.Created), micros(p.Updated), optMicros(p.Processed), nullStr(p.SentReference))
	if err != nil {
		if isUniqueViolation(err) {
			return ErrConflict
		}
		return fmt.Errorf("store: insert payout: %w", err)
	}
	return nil
}

// UpdatePayout writes a payout's mutable fields: status, provider reference,
// failure, times, and the fee and total_amount (which a provider that
// charges its own fee reports only in its answer).
func (tx *Tx) UpdatePayout(p *Payout) error {
	res, err := tx.exec(`UPDATE payouts SET status=?, provider_ref=?, failure_code=?, failure_message=?, updated=?, processed=?,
		fee=?, total_amount=?
		WHERE account_id=? AND livemode=? AND id=?`,
		p.Status, nullStr(p.ProviderRef), nullStr(p.FailureCode), nullStr(p.FailureMessage), micros(p.Updated),
		optMicros(p.Processed), p.Fee, p.TotalAmount, p.AccountID, boolInt(p.Livemode), p.ID)
	if err != nil {
		return fmt.Errorf("store: update payout: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// GetPayout reads a payout by id inside the write transaction, so that a
// check made on its status holds until the commit.
func (tx *Tx) GetPayout(accountID string, livemode bool, id string) (*Payout, error) {
	row, err := tx.queryRow(`SELECT `+payoutCols+` FROM payouts WHERE account_id=? AND livemode=? AND id=?`+tx.d.forUpdate(),
		accountID, boolInt(livemode), id)
	if err != nil {
		return nil, err
	}
	return scanPayout(row)
}

// PayoutIDByReference finds the id of the payout with the reference inside
// the write transaction, or ErrNotFound.
func (tx *Tx) PayoutIDByReference(accountID string, livemode bool, reference string) (string, error) {
	return tx.queryString("payout by reference", `SELECT id FROM payouts WHERE account_id=? AND livemode=? AND transaction_reference=?`,
		accountID, boolInt(livemode), reference)
}

func (s *Store) payouts(ctx context.Context, query string, args ...any) ([]*Payout, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: payouts: %w", err)
	}
	defer rows.Close()
	var out []*Payout
	for rows.Next() {
		p, err := scanPayout(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// GetPayout reads one payout of the account and mode by its id or, failing
// that, by its transaction reference.
func (s *Store) GetPayout(ctx context.Context, accountID string, livemode bool, idOrReference string) (*Payout, error) {
	ps, err := s.BatchGetPayouts(ctx, accountID, livemode, []string{idOrReference})
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, ErrNotFound
	}
	return ps[0], nil
}

// BatchGetPayouts reads the payouts of the account and mode whose id or
// transaction reference is among keys, in no particular order. A payout
// whose reference is another payout's id is found by both.
func (s *Store) BatchGetPayouts(ctx context.Context, accountID string, livemode bool, keys []string) ([]*Payout, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	in := strings.Repeat(",?", len(keys))[1:]
	args := make([]any, 0, 4+2*len(keys))
	args = append(args, accountID, boolInt(livemode))
	for _, k := range keys {
		args = append(args, k)
	}
	args = append(args, accountID, boolInt(livemode))
	for _, k := range keys {
		args = append(args, k)
	}
	// Two index lookups per key (primary key, reference index); UNION drops
	// a payout found both ways.
	return s.payouts(ctx, `SELECT `+payoutCols+` FROM payouts WHERE account_id=? AND livemode=? AND id IN (`+in+`)
		UNION SELECT `+payoutCols+` FROM payouts WHERE account_id=? AND livemode=? AND transaction_reference IN (`+in+`)`,
		args...)
}

// ListPayouts returns up to f.Limit payouts, newest first.
func (s *Store) ListPayouts(ctx context.Context, f PageFilter) ([]*Payout, error) {
	where, args := f.where()
	return s.payouts(ctx, `SELECT `+payoutCols+` FROM payouts WHERE `+where+
		f.newestFirst(), args...)
}

// DuePayouts returns up to limit payouts of the provider, of every account,
// that have been pending since pendingBefore or processing since
// processingBefore, oldest change first: the work of a payout processor.
func (s *Store) DuePayouts(ctx context.Context, provider string, pendingBefore, processingBefore time.Time, limit int) ([]*Payout, error) {
	return s.payouts(ctx, `SELECT `+payoutCols+` FROM payouts WHERE `+activePayout+`
		AND provider = ? AND ((status = ? AND updated <= ?) OR (status = ? AND updated <= ?))
		ORDER BY updated LIMIT ?`, provider, string(paymentd.PayoutPending), micros(pendingBefore),
		string(paymentd.PayoutProcessing), micros(processingBefore), limit)
}
