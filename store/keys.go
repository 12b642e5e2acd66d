package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Account owns objects and API keys. Name is the operator's name for it;
// Brand is what its customers see on the hosted payment page.
type Account struct {
	ID      string
	Name    string
	Created time.Time
	Brand   Brand
}

// Brand is how an account presents itself to its customers on the hosted
// payment page. Every field is optional (empty means unset) and is checked
// by the service before it is stored.
type Brand struct {
	DisplayName  string
	LogoURL      string
	AccentColor  string // #rrggbb
	SupportEmail string
	SupportURL   string
}

const accountColumns = `id, name, created, display_name, logo_url, accent_color, support_email, support_url`

func scanAccount(row interface{ Scan(...any) error }) (*Account, error) {
	var a Account
	var created int64
	var display, logo, accent, email, support sql.NullString
	if err := row.Scan(&a.ID, &a.Name, &created, &display, &logo, &accent, &email, &support); err != nil {
		return nil, err
	}
	a.Created = fromMicros(created)
	a.Brand = Brand{DisplayName: display.String, LogoURL: logo.String, AccentColor: accent.String,
		SupportEmail: email.String, SupportURL: support.String}
	return &a, nil
}

// UpdateAccountBrand replaces an account's brand settings.
func (tx *Tx) UpdateAccountBrand(id string, b Brand) error {
	res, err := tx.exec(`UPDATE accounts SET display_name=?, logo_url=?, accent_color=?, support_email=?, support_url=? WHERE id=?`,
		nullStr(b.DisplayName), nullStr(b.LogoURL), nullStr(b.AccentColor), nullStr(b.SupportEmail), nullStr(b.SupportURL), id)
	if err != nil {
		return fmt.Errorf("store: update account: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errors.Join(ErrNotFound, err)
	}
	return nil
}

// APIKey is an API key as stored: its hash, never the key itself.
type APIKey struct {
	ID        string
	AccountID string
	Hash      []byte
	Hint      string // the key's last four characters, for display
	Livemode  bool
	Scopes    []string
	Created   time.Time
	Revoked   time.Time // zero while the key is active
}

// InsertAccount writes a new account.
func (tx *Tx) InsertAccount(a *Account) error {
	_, err := tx.exec(`INSERT INTO accounts (id, name, created) VALUES (?,?,?)`, a.ID, a.Name, micros(a.Created))
	if err != nil {
		return fmt.Errorf("store: insert account: %w", err)
	}
	return nil
}

// InsertAPIKey writes a new API key.
func (tx *Tx) InsertAPIKey(k *APIKey) error {
	_, err := tx.exec(`INSERT INTO api_keys (id, account_id, hash, hint, livemode, scopes, created) VALUES (?,?,?,?,?,?,?)`,
		k.ID, k.AccountID, k.Hash, k.Hint, boolInt(k.Livemode), strings.Join(k.Scopes, ","), micros(k.Created))
	if err != nil {
		return fmt.Errorf("store: insert api key: %w", err)
	}
	return nil
}

// RevokeAPIKey marks a key revoked; revoking an unknown or already revoked key is ErrNotFound.
func (tx *Tx) RevokeAPIKey(id string) error {
	res, err := tx.exec(`UPDATE api_keys SET revoked=? WHERE id=? AND revoked IS NULL`, micros(tx.now), id)
	if err != nil {
		return fmt.Errorf("store: revoke api key: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

const keyCols = `id, account_id, hash, hint, livemode, scopes, created, revoked`

func scanKey(row interface{ Scan(...any) error }) (*APIKey, error) {
	var k APIKey
	var scopes string
	var created int64
	var revoked sql.NullInt64
	err := row.Scan(&k.ID, &k.AccountID, &k.Hash, &k.Hint, &k.Livemode, &scopes, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan api key: %w", err)
	}
	if scopes != "" {
		k.Scopes = strings.Split(scopes, ",")
	}
	k.Created = fromMicros(created)
	if revoked.Valid {
		k.Revoked = fromMicros(revoked.Int64)
	}
	return &k, nil
}

// APIKeyByHash finds a key by the SHA-256 hash of its secret.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error) {
	return scanKey(s.r.keyByHash.QueryRowContext(ctx, hash))
}

// ListAPIKeys returns every key, newest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*APIKey, error) {
	rows, err := s.query(ctx, `SELECT `+keyCols+` FROM api_keys ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	defer rows.Close()
	var out []*APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Accounts returns every account, oldest first.
func (s *Store) Accounts(ctx context.Context) ([]*Account, error) {
	rows, err := s.query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list accounts: %w", err)
	}
	defer rows.Close()
	var out []*Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
