package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// WebhookEndpoint is an account's registered receiver of events.
type WebhookEndpoint struct {
	ID          string
	AccountID   string
	Livemode    bool
	URL         string
	EventTypes  []string // event types or "prefix.*" patterns; empty means all
	Description string
	Secret      string
	// PreviousSecret still signs, beside Secret, until PreviousExpires.
	PreviousSecret  string
	PreviousExpires time.Time
	Created         time.Time
	Deleted         time.Time // zero while the endpoint is active
}

// WebhookTarget is what writing an event needs to know about an endpoint:
// where deliveries go and which events it wants.
type WebhookTarget struct {
	EndpointID string
	URL        string
	EventTypes []string
}

// Wants reports whether the endpoint subscribes to events of type typ.
func (t WebhookTarget) Wants(typ string) bool {
	if len(t.EventTypes) == 0 {
		return true
	}
	for _, p := range t.EventTypes {
		if p == typ || p == "*" || (strings.HasSuffix(p, ".*") && strings.HasPrefix(typ, p[:len(p)-1])) {
			return true
		}
	}
	return false
}

type acctMode struct {
	account  string
	livemode bool
}

// hookCache keeps each account's active endpoints in memory, so that writing
// an event (every state change, on the hot path) costs no query to learn
// whether anyone listens. Entries are loaded through the write transaction
// and dropped whenever an endpoint of the account changes, or a change that
// may have loaded them through its own writes fails. On PostgreSQL
// another replica may change an endpoint, so there is no cache: a nil
// *hookCache finds nothing and keeps nothing.
type hookCache struct {
	mu sync.RWMutex
	m  map[acctMode][]WebhookTarget
}

func newHookCache() *hookCache { return &hookCache{m: map[acctMode][]WebhookTarget{}} }

func (c *hookCache) get(k acctMode) ([]WebhookTarget, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	t, ok := c.m[k]
	c.mu.RUnlock()
	return t, ok
}

func (c *hookCache) put(k acctMode, t []WebhookTarget) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.m[k] = t
	c.mu.Unlock()
}

func (c *hookCache) drop(k acctMode) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// reset forgets every account's endpoints. A batch that is rolled back may
// have loaded some through its own uncommitted writes.
func (c *hookCache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// WebhookTargets returns the account's active endpoints, from memory when
// they are cached (an account without endpoints is cached as such).
func (tx *Tx) WebhookTargets(accountID string, livemode bool) ([]WebhookTarget, error) {
	k := acctMode{accountID, livemode}
	if t, ok := tx.hooks.get(k); ok {
		return t, nil
	}
	targets := []WebhookTarget{}
	err := tx.each(`SELECT id, url, event_types FROM webhook_endpoints
		WHERE account_id=? AND livemode=? AND deleted IS NULL ORDER BY id`, []any{accountID, boolInt(livemode)},
		func(scan func(...any) error) error {
			var t WebhookTarget
			var types sql.NullString
			if err := scan(&t.EndpointID, &t.URL, &types); err != nil {
				return err
			}
			t.EventTypes = hookSplit(types)
			targets = append(targets, t)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("store: webhook targets: %w", err)
	}
	tx.hooks.put(k, targets)
	return targets, nil
}

// InvalidateWebhookTargets drops the account's cached endpoints. The Tx
// methods that change endpoints do it themselves; callers do it again after
// a Write that failed, in case the transaction was rolled back after another
// change in its batch had loaded the endpoint into the cache.
func (s *Store) InvalidateWebhookTargets(accountID string, livemode bool) {
	s.w.hooks.drop(acctMode{accountID, livemode})
}

func hookSplit(s sql.NullString) []string {
	if !s.Valid || s.String == "" {
		return nil
	}
	return strings.Split(s.String, ",")
}

func hookJoin(l []string) any {
	if len(l) == 0 {
		return nil
	}
	return strings.Join(l, ",")
}

func hookNullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

func hookFromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

const endpointCols = `id, account_id, livemode, url, event_types, description, secret, previous_secret,
	previous_expires, created, deleted`

func scanEndpoint(row interface{ Scan(...any) error }) (*WebhookEndpoint, error) {
	var e WebhookEndpoint
	var types, desc, prev sql.NullString
	var prevExp, deleted sql.NullInt64
	var created int64
	err := row.Scan(&e.ID, &e.AccountID, &e.Livemode, &e.URL, &types, &desc, &e.Secret, &prev, &prevExp, &created, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan webhook endpoint: %w", err)
	}
	e.EventTypes, e.Description, e.PreviousSecret = hookSplit(types), desc.String, prev.String
	e.PreviousExpires, e.Created, e.Deleted = hookFromMicros(prevExp), fromMicros(created), hookFromMicros(deleted)
	return &e, nil
}

// CountWebhookEndpoints counts the account's active endpoints.
func (tx *Tx) CountWebhookEndpoints(accountID string, livemode bool) (int, error) {
	row, err := tx.queryRow(`SELECT count(*) FROM webhook_endpoints WHERE account_id=? AND livemode=? AND deleted IS NULL`,
		accountID, boolInt(livemode))
	if err != nil {
		return 0, err
	}
	var n int
	return n, row.Scan(&n)
}

// InsertWebhookEndpoint registers an endpoint.
func (tx *Tx) InsertWebhookEndpoint(e *WebhookEndpoint) error {
	_, err := tx.exec(`INSERT INTO webhook_endpoints (`+endpointCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		e.ID, e.AccountID, boolInt(e.Livemode), e.URL, hookJoin(e.EventTypes), nullStr(e.Description), e.Secret,
		nullStr(e.PreviousSecret), hookNullTime(e.PreviousExpires), micros(e.Created), hookNullTime(e.Deleted))
	if err != nil {
		return fmt.Errorf("store: insert webhook endpoint: %w", err)
	}
	tx.hooks.drop(acctMode{e.AccountID, e.Livemode})
	return nil
}

// GetWebhookEndpoint reads an endpoint (deleted ones too) inside the write.
func (tx *Tx) GetWebhookEndpoint(accountID string, livemode bool, id string) (*WebhookEndpoint, error) {
	row, err := tx.queryRow(`SELECT `+endpointCols+` FROM webhook_endpoints WHERE account_id=? AND livemode=? AND id=?`+tx.d.forUpdate(),
		accountID, boolInt(livemode), id)
	if err != nil {
		return nil, err
	}
	return scanEndpoint(row)
}

// DeleteWebhookEndpoint marks an active endpoint deleted; its pending
// deliveries are not attempted any more. An unknown or already deleted
// endpoint is ErrNotFound.
func (tx *Tx) DeleteWebhookEndpoint(accountID string, livemode bool, id string) error {
	res, err := tx.exec(`UPDATE webhook_endpoints SET deleted=? WHERE account_id=? AND livemode=? AND id=? AND deleted IS NULL`,
		micros(tx.now), accountID, boolInt(livemode), id)
	if err != nil {
		return fmt.Errorf("store: delete webhook endpoint: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	tx.hooks.drop(acctMode{accountID, livemode})
	return nil
}

// RotateWebhookEndpointSecret makes secret the endpoint's signing secret;
// the current one keeps signing until prevExpires.
func (tx *Tx) RotateWebhookEndpointSecret(accountID string, livemode bool, id, secret string, prevExpires time.Time) error {
	res, err := tx.exec(`UPDATE webhook_endpoints SET previous_secret=secret, previous_expires=?, secret=?
		WHERE account_id=? AND livemode=? AND id=? AND deleted IS NULL`,
		micros(prevExpires), secret, accountID, boolInt(livemode), id)
	if err != nil {
		return fmt.Errorf("store: rotate webhook secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// GetWebhookEndpoint reads one endpoint of the account and mode, deleted ones too.
func (s *Store) GetWebhookEndpoint(ctx context.Context, accountID string, livemode bool, id string) (*WebhookEndpoint, error) {
	return scanEndpoint(s.queryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints
		WHERE account_id=? AND livemode=? AND id=?`, accountID, boolInt(livemode), id))
}

// ListWebhookEndpoints returns up to f.Limit active endpoints, newest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, f PageFilter) ([]*WebhookEndpoint, error) {
	where, args := f.where("deleted IS NULL")
	rows, err := s.query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE `+where+
		f.newestFirst(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list webhook endpoints: %w", err)
	}
	defer rows.Close()
	var out []*WebhookEndpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// WebhookSecret is an account's default signing secret, used for deliveries
// to objects' own callback_url.
type WebhookSecret struct {
	AccountID       string
	Livemode        bool
	Secret          string
	PreviousSecret  string
	PreviousExpires time.Time
	Created         time.Time
}

const secretCols = `account_id, livemode, secret, previous_secret, previous_expires, created`

func scanSecret(row interface{ Scan(...any) error }) (*WebhookSecret, error) {
	var w WebhookSecret
	var prev sql.NullString
	var prevExp sql.NullInt64
	var created int64
	err := row.Scan(&w.AccountID, &w.Livemode, &w.Secret, &prev, &prevExp, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan webhook secret: %w", err)
	}
	w.PreviousSecret, w.PreviousExpires, w.Created = prev.String, hookFromMicros(prevExp), fromMicros(created)
	return &w, nil
}

// EnsureWebhookSecret returns the account's default secret, creating it as
// secret if it has none yet.
func (tx *Tx) EnsureWebhookSecret(accountID string, livemode bool, secret string) (*WebhookSecret, error) {
	if _, err := tx.exec(`INSERT INTO webhook_secrets (`+secretCols+`) VALUES (?,?,?,NULL,NULL,?) ON CONFLICT DO NOTHING`,
		accountID, boolInt(livemode), secret, micros(tx.now)); err != nil {
		return nil, fmt.Errorf("store: insert webhook secret: %w", err)
	}
	row, err := tx.queryRow(`SELECT `+secretCols+` FROM webhook_secrets WHERE account_id=? AND livemode=?`, accountID, boolInt(livemode))
	if err != nil {
		return nil, err
	}
	return scanSecret(row)
}

// RotateWebhookSecret replaces the account's default secret; the current one
// keeps signing until prevExpires. An account without one gets secret.
func (tx *Tx) RotateWebhookSecret(accountID string, livemode bool, secret string, prevExpires time.Time) (*WebhookSecret, error) {
	_, err := tx.exec(`INSERT INTO webhook_secrets (`+secretCols+`) VALUES (?,?,?,NULL,NULL,?)
		ON CONFLICT (account_id, livemode) DO UPDATE SET previous_secret=webhook_secrets.secret, previous_expires=?, secret=excluded.secret`,
		accountID, boolInt(livemode), secret, micros(tx.now), micros(prevExpires))
	if err != nil {
		return nil, fmt.Errorf("store: rotate webhook secret: %w", err)
	}
	row, err := tx.queryRow(`SELECT `+secretCols+` FROM webhook_secrets WHERE account_id=? AND livemode=?`, accountID, boolInt(livemode))
	if err != nil {
		return nil, err
	}
	return scanSecret(row)
}

// GetWebhookSecret reads the account's default secret, or ErrNotFound.
func (s *Store) GetWebhookSecret(ctx context.Context, accountID string, livemode bool) (*WebhookSecret, error) {
	return scanSecret(s.queryRow(ctx, `SELECT `+secretCols+` FROM webhook_secrets WHERE account_id=? AND livemode=?`,
		accountID, boolInt(livemode)))
}

// SealWebhookSecrets rewrites every stored signing secret — endpoints' and
// accounts' defaults, current and previous — for which seal returns a new
// value (one stored before secrets were sealed), and reports how many rows
// changed. seal is given the endpoint's id, or "" for an account's default
// secret, the account and mode, and whether the secret is a previous one. A row is rewritten only if it still
// holds what was read: a replica rotating a secret meanwhile wins.
func (tx *Tx) SealWebhookSecrets(seal func(endpointID, accountID string, livemode, previous bool, secret string) (string, bool)) (int, error) {
	type row struct {
		id, account  string
		live         bool
		secret, prev sql.NullString
	}
	var rows []row
	read := func(query string) error {
		return tx.each(query, nil, func(scan func(...any) error) error {
			var r row
			var live int64
			if err := scan(&r.id, &r.account, &live, &r.secret, &r.prev); err != nil {
				return err
			}
			r.live = live != 0
			rows = append(rows, r)
			return nil
		})
	}
	if err := read(`SELECT id, account_id, livemode, secret, previous_secret FROM webhook_endpoints`); err != nil {
		return 0, fmt.Errorf("store: read webhook endpoint secrets: %w", err)
	}
	if err := read(`SELECT '', account_id, livemode, secret, previous_secret FROM webhook_secrets`); err != nil {
		return 0, fmt.Errorf("store: read webhook secrets: %w", err)
	}
	changed := 0
	for _, r := range rows {
		cur, c1 := seal(r.id, r.account, r.live, false, r.secret.String)
		prev, c2 := r.prev, false
		if r.prev.Valid && r.prev.String != "" {
			prev.String, c2 = seal(r.id, r.account, r.live, true, r.prev.String)
		}
		if !c1 && !c2 {
			continue
		}
		var err error
		if r.id != "" {
			_, err = tx.exec(`UPDATE webhook_endpoints SET secret=?, previous_secret=?
				WHERE account_id=? AND livemode=? AND id=? AND secret=? AND coalesce(previous_secret, '')=?`,
				cur, prev, r.account, boolInt(r.live), r.id, r.secret.String, r.prev.String)
			tx.hooks.drop(acctMode{r.account, r.live})
		} else {
			_, err = tx.exec(`UPDATE webhook_secrets SET secret=?, previous_secret=?
				WHERE account_id=? AND livemode=? AND secret=? AND coalesce(previous_secret, '')=?`,
				cur, prev, r.account, boolInt(r.live), r.secret.String, r.prev.String)
		}
		if err != nil {
			return changed, fmt.Errorf("store: seal webhook secret: %w", err)
		}
		changed++
	}
	return changed, nil
}
