package store

import (
	"context"
	"database/sql"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Observer is told what the writer did, for metrics. Its methods run on a
// writer goroutine, so they must be quick and must not call the store; on
// PostgreSQL several writer loops call them at once, so they must also be
// safe for concurrent use.
type Observer interface {
	// Committed reports one batch: how long its transaction took from BEGIN
	// to COMMIT, how many state changes it held, and the error that failed
	// the whole batch (BEGIN or COMMIT failing), nil otherwise.
	Committed(took time.Duration, changes int, err error)
	// EventsCommitted reports the types of the events (e.g.
	// "payment.succeeded") that a committed batch recorded. Events that were
	// rolled back are never reported. The slice is reused after the call.
	EventsCommitted(types []string)
}

// SetObserver installs o; call it before the store is used.
func (s *Store) SetObserver(o Observer) { s.w.observer.Store(&o) }

// ProbeWrite runs an empty change through the writer: it answers only when
// the writer goroutine is running and the database takes the write lock and
// commits, which is what readiness needs to know.
func (s *Store) ProbeWrite(ctx context.Context) error {
	return s.Write(ctx, func(*Tx) error { return nil })
}

// PendingMigrations lists the embedded migrations the database has not
// recorded as applied.
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	names, err := s.d.migrationNames()
	if err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		applied[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var pending []string
	for _, name := range names {
		if !applied[name] {
			pending = append(pending, name)
		}
	}
	return pending, nil
}

// DeliveryBacklog counts the pending webhook deliveries and returns when the
// oldest was created (zero time when none is pending).
func (s *Store) DeliveryBacklog(ctx context.Context) (pending int, oldest time.Time, err error) {
	var first sql.NullInt64
	err = s.queryRow(ctx, `SELECT count(*), min(created) FROM webhook_deliveries WHERE status = ?`, DeliveryPending).Scan(&pending, &first)
	if err != nil || !first.Valid {
		return pending, time.Time{}, err
	}
	return pending, fromMicros(first.Int64), nil
}

// SetTracer makes every Write a span ("store.write", from the caller's
// context, so a child of the RPC waiting on it) covering the wait for the
// writer and the commit. Call it before the store is used; without it
// Write starts no span at all.
func (s *Store) SetTracer(t trace.Tracer) { s.tracer = t }
