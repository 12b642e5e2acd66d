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

// Event records one state change. Data is the changed object's protobuf
// encoding as it was after the change.
type Event struct {
	ID        string
	AccountID string
	Livemode  bool
	Type      string
	ObjectID  string
	Data      []byte
	Created   time.Time
	// Source is the in-memory value Data was encoded from, set by the
	// change that inserts the event and never stored (nil on an event read
	// back). It lets that change's later steps see that the event holds an
	// object they answer with without decoding Data again (LastEvent).
	Source any
}

// InsertEvent writes an event.
func (tx *Tx) InsertEvent(e *Event) error {
	err := tx.execLater(`INSERT INTO events (id, account_id, livemode, type, object_id, data, created) VALUES (?,?,?,?,?,?,?)`,
		e.ID, e.AccountID, boolInt(e.Livemode), e.Type, e.ObjectID, e.Data, micros(e.Created))
	if err != nil {
		return fmt.Errorf("store: insert event: %w", err)
	}
	tx.events = append(tx.events, e.Type)
	tx.lastEvent = e
	return nil
}

// EventsFor returns the events of one object, oldest first.
func (s *Store) EventsFor(ctx context.Context, accountID string, livemode bool, objectID string) ([]*Event, error) {
	rows, err := s.query(ctx, `SELECT id, account_id, livemode, type, object_id, data, created FROM events
		WHERE object_id=? AND account_id=? AND livemode=? ORDER BY id`, objectID, accountID, boolInt(livemode))
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	var out []*Event
	for rows.Next() {
		var e Event
		var created int64
		if err := rows.Scan(&e.ID, &e.AccountID, &e.Livemode, &e.Type, &e.ObjectID, &e.Data, &created); err != nil {
			return nil, err
		}
		e.Created = fromMicros(created)
		out = append(out, &e)
	}
	return out, rows.Err()
}

// LedgerEntry is one line of a money movement. The entries written for one
// movement sum to zero per currency.
type LedgerEntry struct {
	AccountID string
	Livemode  bool
	Currency  string
	// Book names the balance the entry moves, e.g. "available" (the
	// account's money) or "provider:sandbox" (what the provider owes or is owed).
	Book     string
	Amount   int64
	SourceID string // the payment or refund that caused the movement
}

// ErrUnbalanced is returned when ledger entries for one movement do not sum to zero.
var ErrUnbalanced = errors.New("store: ledger entries do not balance")

// InsertLedgerEntries appends the entries of one money movement; they must sum to zero per currency.
func (tx *Tx) InsertLedgerEntries(entries ...LedgerEntry) error {
	sums := map[string]int64{}
	for _, e := range entries {
		s, ok := paymentd.AddChecked(sums[e.Currency], e.Amount)
		if !ok {
			return fmt.Errorf("store: ledger amount overflows: %w", ErrUnbalanced)
		}
		sums[e.Currency] = s
	}
	for _, s := range sums {
		if s != 0 {
			return ErrUnbalanced
		}
	}
	if len(entries) == 0 {
		return nil
	}
	// One statement for the whole movement (cached per entry count).
	query := `INSERT INTO ledger_entries (account_id, livemode, currency, book, amount, source_id, created) VALUES (?,?,?,?,?,?,?)` +
		strings.Repeat(`,(?,?,?,?,?,?,?)`, len(entries)-1)
	args := make([]any, 0, 7*len(entries))
	for _, e := range entries {
		args = append(args, e.AccountID, boolInt(e.Livemode), e.Currency, e.Book, e.Amount, e.SourceID, micros(tx.now))
	}
	if err := tx.execLater(query, args...); err != nil {
		return fmt.Errorf("store: insert ledger entries: %w", err)
	}
	for _, e := range entries {
		tx.balances.add(e)
	}
	return nil
}

// LedgerEntriesFor returns the entries caused by one payment or refund.
func (s *Store) LedgerEntriesFor(ctx context.Context, sourceID string) ([]LedgerEntry, error) {
	rows, err := s.query(ctx, `SELECT account_id, livemode, currency, book, amount, source_id
		FROM ledger_entries WHERE source_id=? ORDER BY id`, sourceID)
	if err != nil {
		return nil, fmt.Errorf("store: ledger entries: %w", err)
	}
	defer rows.Close()
	var out []LedgerEntry
	for rows.Next() {
		var e LedgerEntry
		if err := rows.Scan(&e.AccountID, &e.Livemode, &e.Currency, &e.Book, &e.Amount, &e.SourceID); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// IdempotencyRecord is the stored outcome of a mutating call made with an
// idempotency key. Code is the gRPC status code (0 for success); Response is
// the response message, or the google.rpc.Status for an error. When EventID
// is set, the response is that event's object, which is not stored twice.
type IdempotencyRecord struct {
	AccountID   string
	Livemode    bool
	Method      string
	Key         string
	RequestHash []byte
	Code        int
	Response    []byte
	EventID     string
	Created     time.Time
}

// PutIdempotency stores the outcome of a call; a record already stored for
// the same key is ErrConflict.
func (tx *Tx) PutIdempotency(r *IdempotencyRecord) error {
	// On PostgreSQL a taken key fails the change when its queue is sent.
	err := tx.execLaterOne(ErrConflict, `INSERT INTO idempotency_keys (account_id, livemode, method, key, request_hash, code, response, event_id, created)
		VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
		r.AccountID, boolInt(r.Livemode), r.Method, r.Key, r.RequestHash, r.Code, nonNil(r.Response), nullStr(r.EventID), micros(r.Created))
	if errors.Is(err, ErrConflict) {
		return err
	} else if err != nil {
		return fmt.Errorf("store: insert idempotency record: %w", err)
	}
	tx.idem.added(tx.idem.hash(r.AccountID, r.Livemode, r.Method, r.Key))
	return nil
}

// ReplaceIdempotency stores the final outcome of a call whose record was
// written earlier with an interim outcome (e.g. a refund first recorded as
// pending, then settled).
func (tx *Tx) ReplaceIdempotency(r *IdempotencyRecord) error {
	// Update first, so that the idempotency index counts a record only when
	// one is added.
	res, err := tx.exec(`UPDATE idempotency_keys SET code=?, response=?, event_id=? WHERE account_id=? AND livemode=? AND method=? AND key=?`,
		r.Code, nonNil(r.Response), nullStr(r.EventID), r.AccountID, boolInt(r.Livemode), r.Method, r.Key)
	if err != nil {
		return fmt.Errorf("store: replace idempotency record: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if err := tx.PutIdempotency(r); err != nil {
		return fmt.Errorf("store: replace idempotency record: %w", err)
	}
	return nil
}

// DeleteIdempotency removes the record of one key.
func (tx *Tx) DeleteIdempotency(r *IdempotencyRecord) error {
	res, err := tx.exec(`DELETE FROM idempotency_keys WHERE account_id=? AND livemode=? AND method=? AND key=?`,
		r.AccountID, boolInt(r.Livemode), r.Method, r.Key)
	if err != nil {
		return fmt.Errorf("store: delete idempotency record: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		tx.idem.deleted(tx.idem.hash(r.AccountID, r.Livemode, r.Method, r.Key))
	}
	return nil
}

// GetIdempotency reads the stored outcome for a key, or ErrNotFound. A key
// the idempotency index has never counted is not read from the database.
func (s *Store) GetIdempotency(ctx context.Context, accountID string, livemode bool, method, key string) (*IdempotencyRecord, error) {
	if !s.idem.mayExist(s.idem.hash(accountID, livemode, method, key)) {
		return nil, ErrNotFound
	}
	r := IdempotencyRecord{AccountID: accountID, Livemode: livemode, Method: method, Key: key}
	var created int64
	var eventID sql.NullString
	err := s.r.getIdem.QueryRowContext(ctx, accountID, boolInt(livemode), method, key).
		Scan(&r.RequestHash, &r.Code, &r.Response, &eventID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: idempotency record: %w", err)
	}
	r.Created, r.EventID = fromMicros(created), eventID.String
	return &r, nil
}

// nonNil stores an absent response as an empty blob (the column is NOT NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// IdempotencySweep walks the idempotency records in key order, a chunk per
// transaction, deleting those created before Before: one statement over the
// whole table would hold the only SQLite writer (or one long PostgreSQL
// transaction) for seconds once an hour's records number in the hundreds of
// thousands, and no index on created is needed to find them in chunks. The
// zero value starts at the first key.
type IdempotencySweep struct {
	Before  time.Time
	Deleted int64 // records deleted so far
	Done    bool  // the walk reached the last key

	started              bool // the fields below name the last key walked
	account, method, key string
	livemode             int64 // as stored (pgx scans integers only into integers)
}

// idempotencyKeyOrder is the records' primary key, the walk's order.
const idempotencyKeyOrder = `account_id, livemode, method, key`

// SweepIdempotency walks the next limit records of sw (at least one) and
// deletes those among them created before sw.Before, advancing sw. Give it a
// copy and keep the copy only once its write committed: a change may run more
// than once before its batch commits.
func (tx *Tx) SweepIdempotency(sw *IdempotencySweep, limit int) error {
	if sw.Done {
		return nil
	}
	after, args := "", []any{}
	if sw.started {
		after = `(` + idempotencyKeyOrder + `) > (?,?,?,?) AND `
		args = append(args, sw.account, sw.livemode, sw.method, sw.key)
	}
	// The chunk ends at its limit-th key, or at the table's end.
	var last struct {
		account, method, key string
		livemode             int64
	}
	row, err := tx.queryRow(`SELECT `+idempotencyKeyOrder+` FROM idempotency_keys WHERE `+after+`1=1
		ORDER BY `+idempotencyKeyOrder+` LIMIT 1 OFFSET ?`, append(args, max(limit, 1)-1)...)
	if err == nil {
		err = row.Scan(&last.account, &last.livemode, &last.method, &last.key)
	}
	upto := ""
	switch {
	case err == nil:
		upto = `(` + idempotencyKeyOrder + `) <= (?,?,?,?) AND `
		args = append(args, last.account, last.livemode, last.method, last.key)
	case errors.Is(err, sql.ErrNoRows):
		sw.Done = true
	default:
		return fmt.Errorf("store: expire idempotency records: %w", err)
	}
	args = append(args, micros(sw.Before))
	err = tx.each(`DELETE FROM idempotency_keys WHERE `+after+upto+`created < ? RETURNING `+idempotencyKeyOrder, args,
		func(scan func(...any) error) error {
			var account, method, key string
			var livemode int64
			if err := scan(&account, &livemode, &method, &key); err != nil {
				return err
			}
			tx.idem.deleted(tx.idem.hash(account, livemode != 0, method, key))
			sw.Deleted++
			return nil
		})
	if err != nil {
		return fmt.Errorf("store: expire idempotency records: %w", err)
	}
	sw.started, sw.account, sw.livemode, sw.method, sw.key = true, last.account, last.livemode, last.method, last.key
	return nil
}

// readStmts are the hot read queries, prepared once for the read pool.
type readStmts struct {
	getPayment, getRefund, keyByHash, getIdem *sql.Stmt
}

func prepareReads(ctx context.Context, db *sql.DB, d dialect) (*readStmts, error) {
	r := &readStmts{}
	for _, q := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&r.getPayment, `SELECT ` + paymentCols + ` FROM payments WHERE account_id=? AND livemode=? AND id=?`},
		{&r.getRefund, `SELECT ` + refundCols + ` FROM refunds WHERE account_id=? AND livemode=? AND id=?`},
		{&r.keyByHash, `SELECT ` + keyCols + ` FROM api_keys WHERE hash=?`},
		{&r.getIdem, `SELECT request_hash, code, response, event_id, created FROM idempotency_keys
			WHERE account_id=? AND livemode=? AND method=? AND key=?`},
	} {
		st, err := db.PrepareContext(ctx, d.bind(q.query))
		if err != nil {
			r.close()
			return nil, fmt.Errorf("store: prepare: %w", err)
		}
		*q.dst = st
	}
	return r, nil
}

func (r *readStmts) close() {
	for _, st := range []*sql.Stmt{r.getPayment, r.getRefund, r.keyByHash, r.getIdem} {
		if st != nil {
			st.Close()
		}
	}
}
