package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one event on its way to one destination: an account's
// webhook endpoint, or (EndpointID empty) the object's own callback_url.
type Delivery struct {
	ID          string
	AccountID   string
	Livemode    bool
	EventID     string
	EndpointID  string
	URL         string
	Status      string
	Attempts    int
	NextAttempt time.Time // when a pending delivery is due
	RetryFrom   time.Time // when the retry window began: creation or the last redelivery
	LastAttempt time.Time
	LastCode    int
	LastError   string
	Created     time.Time
}

// DeliveryAttempt is one HTTP request made for a delivery.
type DeliveryAttempt struct {
	AccountID  string
	Livemode   bool
	EventID    string
	DeliveryID string
	N          int // 1 for the first attempt
	URL        string
	Attempted  time.Time
	HTTPStatus int // 0 when no response was received
	Latency    time.Duration
	Error      string
	Response   string // a short excerpt of the response body
}

const deliveryCols = `id, account_id, livemode, event_id, endpoint_id, url, status, attempts, next_attempt, retry_from,
	last_attempt, last_code, last_error, created`

func scanDelivery(row interface{ Scan(...any) error }) (*Delivery, error) {
	var d Delivery
	var endpoint, lastErr sql.NullString
	var next, last, code sql.NullInt64
	var retryFrom, created int64
	err := row.Scan(&d.ID, &d.AccountID, &d.Livemode, &d.EventID, &endpoint, &d.URL, &d.Status, &d.Attempts, &next,
		&retryFrom, &last, &code, &lastErr, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan delivery: %w", err)
	}
	d.EndpointID, d.LastError, d.LastCode = endpoint.String, lastErr.String, int(code.Int64)
	d.NextAttempt, d.LastAttempt = hookFromMicros(next), hookFromMicros(last)
	d.RetryFrom, d.Created = fromMicros(retryFrom), fromMicros(created)
	return &d, nil
}

func scanDeliveries(rows *sql.Rows, err error) ([]*Delivery, error) {
	if err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	defer rows.Close()
	var out []*Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// InsertDelivery queues a delivery; the event it delivers is written in the
// same transaction.
func (tx *Tx) InsertDelivery(d *Delivery) error {
	err := tx.execLater(`INSERT INTO webhook_deliveries (`+deliveryCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		d.ID, d.AccountID, boolInt(d.Livemode), d.EventID, nullStr(d.EndpointID), d.URL, d.Status, d.Attempts,
		hookNullTime(d.NextAttempt), micros(d.RetryFrom), hookNullTime(d.LastAttempt), hookNullInt(d.LastCode), nullStr(d.LastError),
		micros(d.Created))
	if err != nil {
		return fmt.Errorf("store: insert delivery: %w", err)
	}
	return nil
}

func hookNullInt(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

// UpdateDelivery writes a delivery's state after an attempt or a
// redelivery. prevAttempts is the attempt count the caller read: if another
// change counted an attempt since, nothing is written and the result is
// ErrStale.
func (tx *Tx) UpdateDelivery(d *Delivery, prevAttempts int) error {
	next := hookNullTime(d.NextAttempt)
	if d.Status != DeliveryPending {
		next = nil
	}
	res, err := tx.exec(`UPDATE webhook_deliveries SET status=?, attempts=?, next_attempt=?, retry_from=?, last_attempt=?,
		last_code=?, last_error=? WHERE account_id=? AND livemode=? AND id=? AND attempts=?`,
		d.Status, d.Attempts, next, micros(d.RetryFrom), hookNullTime(d.LastAttempt), hookNullInt(d.LastCode), nullStr(d.LastError),
		d.AccountID, boolInt(d.Livemode), d.ID, prevAttempts)
	if err != nil {
		return fmt.Errorf("store: update delivery: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrStale
	}
	return nil
}

// InsertDeliveryAttempt records one HTTP attempt.
func (tx *Tx) InsertDeliveryAttempt(a *DeliveryAttempt) error {
	var code any
	if a.HTTPStatus != 0 {
		code = a.HTTPStatus
	}
	err := tx.execLater(`INSERT INTO webhook_attempts (account_id, livemode, event_id, delivery_id, n, url, attempted,
		http_status, latency_us, error, response) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		a.AccountID, boolInt(a.Livemode), a.EventID, a.DeliveryID, a.N, a.URL, micros(a.Attempted), code,
		a.Latency.Microseconds(), nullStr(a.Error), nullStr(a.Response))
	if err != nil {
		return fmt.Errorf("store: insert delivery attempt: %w", err)
	}
	return nil
}

// DueDeliveries returns up to limit pending deliveries due at or before
// now, the longest overdue first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*Delivery, error) {
	return scanDeliveries(s.query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE status='pending' AND next_attempt <= ? ORDER BY next_attempt LIMIT ?`, micros(now), limit))
}

// NextDeliveryDue returns when the next pending delivery is due, or the
// zero time when none is pending.
func (s *Store) NextDeliveryDue(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.queryRow(ctx, `SELECT min(next_attempt) FROM webhook_deliveries WHERE status='pending'`).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: next delivery: %w", err)
	}
	return hookFromMicros(next), nil
}

// DeliveriesFor returns the deliveries of one event, oldest first.
func (s *Store) DeliveriesFor(ctx context.Context, accountID string, livemode bool, eventID string) ([]*Delivery, error) {
	return scanDeliveries(s.query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries INDEXED BY webhook_deliveries_by_event
		WHERE account_id=? AND livemode=? AND event_id=? ORDER BY id`, accountID, boolInt(livemode), eventID))
}

// DeliveriesFor returns the deliveries of one event inside the write.
func (tx *Tx) DeliveriesFor(accountID string, livemode bool, eventID string) ([]*Delivery, error) {
	st, err := tx.stmt(`SELECT ` + deliveryCols + ` FROM webhook_deliveries INDEXED BY webhook_deliveries_by_event
		WHERE account_id=? AND livemode=? AND event_id=? ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return scanDeliveries(st.QueryContext(context.Background(), accountID, boolInt(livemode), eventID))
}

// AttemptsFor returns every attempt made for one event's deliveries, in
// the order they were made per delivery.
func (s *Store) AttemptsFor(ctx context.Context, accountID string, livemode bool, eventID string) ([]*DeliveryAttempt, error) {
	rows, err := s.query(ctx, `SELECT delivery_id, n, url, attempted, http_status, latency_us, error, response
		FROM webhook_attempts WHERE account_id=? AND livemode=? AND event_id=? ORDER BY delivery_id, n`,
		accountID, boolInt(livemode), eventID)
	if err != nil {
		return nil, fmt.Errorf("store: delivery attempts: %w", err)
	}
	defer rows.Close()
	var out []*DeliveryAttempt
	for rows.Next() {
		a := &DeliveryAttempt{AccountID: accountID, Livemode: livemode, EventID: eventID}
		var attempted, latency int64
		var code sql.NullInt64
		var errText, resp sql.NullString
		if err := rows.Scan(&a.DeliveryID, &a.N, &a.URL, &attempted, &code, &latency, &errText, &resp); err != nil {
			return nil, err
		}
		a.Attempted, a.HTTPStatus, a.Latency = fromMicros(attempted), int(code.Int64), time.Duration(latency)*time.Microsecond
		a.Error, a.Response = errText.String, resp.String
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeliveryStatuses returns, for each of the events, the statuses of its
// deliveries (events without deliveries are absent).
func (s *Store) DeliveryStatuses(ctx context.Context, accountID string, livemode bool, eventIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(eventIDs) == 0 {
		return out, nil
	}
	args := []any{accountID, boolInt(livemode)}
	for _, id := range eventIDs {
		args = append(args, id)
	}
	rows, err := s.query(ctx, `SELECT event_id, status FROM webhook_deliveries INDEXED BY webhook_deliveries_by_event
		WHERE account_id=? AND livemode=? AND event_id IN (?`+strings.Repeat(",?", len(eventIDs)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: delivery statuses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			return nil, err
		}
		out[id] = append(out[id], st)
	}
	return out, rows.Err()
}

// GetDelivery reads one delivery inside the write.
func (tx *Tx) GetDelivery(accountID string, livemode bool, id string) (*Delivery, error) {
	row, err := tx.queryRow(`SELECT `+deliveryCols+` FROM webhook_deliveries WHERE account_id=? AND livemode=? AND id=?`+tx.d.forUpdate(),
		accountID, boolInt(livemode), id)
	if err != nil {
		return nil, err
	}
	return scanDelivery(row)
}
