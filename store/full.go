package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ErrFull is returned by Write when the database or the disk it is on is
// full (SQLite's SQLITE_FULL). Nothing of the failed batch is kept, so no
// caller is told a change was stored that was not; the same call may be
// retried once space returns, which needs no restart.
var ErrFull = errors.New("store: the database or the disk it is on is full")

// sqliteFull is SQLite's primary result code SQLITE_FULL.
const sqliteFull = 13

// isFull reports whether err is SQLite saying the database or disk is full.
func isFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrFull) {
		return true
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == sqliteFull {
		return true
	}
	return strings.Contains(err.Error(), "database or disk is full")
}

// fullState remembers that writes are failing for lack of space.
type fullState struct {
	mu     sync.Mutex
	since  time.Time // zero when writes succeed
	reason string
	// changes is the connection's total_changes() when last checked, so
	// that a commit that changed nothing does not count as recovery.
	changes int64
}

// WriteHealth reports whether writes are failing for lack of space, why,
// and since when; /v1/status shows it.
func (s *Store) WriteHealth() (degraded bool, reason string, since time.Time) {
	f := &s.w.full
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.since.IsZero(), f.reason, f.since
}

// noteFull records a write that failed for lack of space, then truncates the
// WAL: a WAL grown by earlier writes keeps the space it holds until it is
// checkpointed, so without this a freed disk would stay full for paymentd.
// It runs on the writer goroutine, after the batch was rolled back.
func (w *writer) noteFull(err error) {
	w.full.mu.Lock()
	if w.full.since.IsZero() {
		w.full.since = time.Now().UTC()
	}
	_ = w.conn.QueryRowContext(context.Background(), "SELECT total_changes()").Scan(&w.full.changes)
	w.full.reason = "writes are failing: the database or the disk it is on is full (" + err.Error() + "); reads still work, and writes resume by themselves once space is freed"
	w.full.mu.Unlock()
	_, _ = w.conn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
}

// noteCommitted clears the full state once a batch that changed rows has
// committed. Only then: an empty commit succeeds on a full disk too.
func (w *writer) noteCommitted() {
	w.full.mu.Lock()
	defer w.full.mu.Unlock()
	if w.full.since.IsZero() {
		return
	}
	var changes int64
	if err := w.conn.QueryRowContext(context.Background(), "SELECT total_changes()").Scan(&changes); err != nil || changes == w.full.changes {
		w.full.changes = changes
		return
	}
	w.full.since, w.full.reason = time.Time{}, ""
}

// fullError is what each change of a batch that failed for space returns.
func fullError(err error) error {
	if errors.Is(err, ErrFull) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrFull, err)
}
