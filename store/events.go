package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

const eventCols = `id, account_id, livemode, type, object_id, data, created`

func scanEvent(row interface{ Scan(...any) error }) (*Event, error) {
	var e Event
	var created int64
	err := row.Scan(&e.ID, &e.AccountID, &e.Livemode, &e.Type, &e.ObjectID, &e.Data, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan event: %w", err)
	}
	e.Created = fromMicros(created)
	return &e, nil
}

// GetEvent reads one event of the account and mode.
func (s *Store) GetEvent(ctx context.Context, accountID string, livemode bool, id string) (*Event, error) {
	return scanEvent(s.queryRow(ctx, `SELECT `+eventCols+` FROM events WHERE account_id=? AND livemode=? AND id=?`,
		accountID, boolInt(livemode), id))
}

// GetEvent reads one event inside the write.
func (tx *Tx) GetEvent(accountID string, livemode bool, id string) (*Event, error) {
	row, err := tx.queryRow(`SELECT `+eventCols+` FROM events WHERE account_id=? AND livemode=? AND id=?`,
		accountID, boolInt(livemode), id)
	if err != nil {
		return nil, err
	}
	return scanEvent(row)
}

// EventFilter selects a page of events.
type EventFilter struct {
	PageFilter
	// Type keeps events of this type, or of every type starting with the
	// prefix when it ends in ".*" (e.g. "payment.*").
	Type string
	// ObjectID keeps the events of one object.
	ObjectID string
	// DeliveryStatus keeps events with at least one delivery in this status.
	DeliveryStatus string
}

// ListEvents returns up to f.Limit events, newest first.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]*Event, error) {
	f.Status = "" // events have no status of their own
	var extra []string
	var extraArgs []any
	if prefix, ok := strings.CutSuffix(f.Type, "*"); ok {
		extra = append(extra, `type LIKE ? ESCAPE '\'`)
		extraArgs = append(extraArgs, strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(prefix)+"%")
	} else if f.Type != "" {
		extra = append(extra, "type = ?")
		extraArgs = append(extraArgs, f.Type)
	}
	if f.ObjectID != "" {
		extra = append(extra, "object_id = ?")
		extraArgs = append(extraArgs, f.ObjectID)
	}
	if f.DeliveryStatus != "" {
		extra = append(extra, `id IN (SELECT event_id FROM webhook_deliveries WHERE account_id=? AND livemode=? AND status=?)`)
		extraArgs = append(extraArgs, f.AccountID, boolInt(f.Livemode), f.DeliveryStatus)
	}
	where, args := f.where(extra...)
	args = append(args, extraArgs...)
	rows, err := s.query(ctx, `SELECT `+eventCols+` FROM events WHERE `+where+
		f.newestFirst(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	defer rows.Close()
	var out []*Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
