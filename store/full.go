package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrFull is returned by Write when the database or the disk it is on is
// full (SQLite's SQLITE_FULL, PostgreSQL's disk_full). Nothing of the failed batch is kept, so no
// caller is told a change was stored that was not; the same call may be
// retried once space returns, which needs no restart.
var ErrFull = errors.New("store: the database or the disk it is on is full")

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

// noteFull records a write that failed for lack of space. On SQLite it then
// truncates the WAL: a WAL grown by earlier writes keeps the space it holds
// until it is checkpointed, so without this a freed disk would stay full
// for paymentd. It runs on a writer goroutine, after the batch was rolled
// back.
func (l *loop) noteFull(err error) {
	f := &l.w.full
	f.mu.Lock()
	if f.since.IsZero() {
		f.since = time.Now().UTC()
	}
	if !l.w.d.postgres {
		_ = l.conn.QueryRowContext(context.Background(), "SELECT total_changes()").Scan(&f.changes)
	}
	f.reason = "writes are failing: the database or the disk it is on is full (" + err.Error() + "); reads still work, and writes resume by themselves once space is freed"
	f.mu.Unlock()
	if !l.w.d.postgres {
		_, _ = l.conn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
	}
}

// noteCommitted clears the full state once a batch that changed rows has
// committed. Only then: an empty commit succeeds on a full disk too. SQLite
// counts the rows changed (total_changes); on PostgreSQL a batch that ran
// any write statement counts.
func (l *loop) noteCommitted() {
	f := &l.w.full
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.since.IsZero() {
		return
	}
	if l.w.d.postgres {
		if l.batchExec > 0 {
			f.since, f.reason = time.Time{}, ""
		}
		return
	}
	var changes int64
	if err := l.conn.QueryRowContext(context.Background(), "SELECT total_changes()").Scan(&changes); err != nil || changes == f.changes {
		f.changes = changes
		return
	}
	f.since, f.reason = time.Time{}, ""
}

// fullError is what each change of a batch that failed for space returns.
func fullError(err error) error {
	if errors.Is(err, ErrFull) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrFull, err)
}
