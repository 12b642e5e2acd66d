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
	// checkpointsLeft counts the commits after a write failed for space
	// that are each followed by a WAL checkpoint (SQLite), see noteCommitted.
	checkpointsLeft int
}

// checkpointsAfterFull is how many commits after a write failed for space
// checkpoint the WAL each: about SQLite's own auto-checkpoint window (1000
// pages), the most the WAL would otherwise grow by before it checkpoints.
const checkpointsAfterFull = 1000

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
	f.checkpointsLeft = checkpointsAfterFull
	f.mu.Unlock()
	if !l.w.d.postgres {
		_, _ = l.conn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
	}
}

// noteCommitted clears the full state once a batch that changed rows has
// committed. Only then: an empty commit succeeds on a full disk too. SQLite
// counts the rows changed (total_changes); on PostgreSQL a batch that ran
// any write statement counts.
//
// On SQLite, the first commit that changed rows then truncates the WAL, and
// the commits after it (checkpointsAfterFull) each checkpoint it. On a
// full disk the truncation noteFull tried fails wherever checkpointing needs
// the database file to grow; and the WAL, checkpointed by SQLite only every
// 1000 pages, takes a whole page of every table and index each commit
// touched, many times what the rows need: a disk with little space freed
// would be full again after a few commits (seen on a 3 MiB tmpfs: 26 of 100
// creates after 1.2 MiB were freed). Checkpointed, the freed space holds the
// rows themselves.
func (l *loop) noteCommitted() {
	f := &l.w.full
	f.mu.Lock()
	if f.since.IsZero() && f.checkpointsLeft == 0 {
		f.mu.Unlock()
		return
	}
	cleared := l.clearFull()
	mode := ""
	if !l.w.d.postgres && f.checkpointsLeft > 0 {
		f.checkpointsLeft--
		mode = "PASSIVE" // never waits for readers
		if cleared {
			mode = "TRUNCATE"
		}
	}
	f.mu.Unlock()
	if mode != "" {
		_, _ = l.conn.ExecContext(context.Background(), "PRAGMA wal_checkpoint("+mode+")")
	}
}

// clearFull clears the full state if the batch that committed changed rows,
// and reports whether it did. f.mu is held.
func (l *loop) clearFull() bool {
	f := &l.w.full
	if f.since.IsZero() {
		return false
	}
	if l.w.d.postgres {
		if l.batchExec > 0 {
			f.since, f.reason = time.Time{}, ""
			return true
		}
		return false
	}
	var changes int64
	if err := l.conn.QueryRowContext(context.Background(), "SELECT total_changes()").Scan(&changes); err != nil || changes == f.changes {
		f.changes = changes
		return false
	}
	f.since, f.reason = time.Time{}, ""
	return true
}

// fullError is what each change of a batch that failed for space returns.
func fullError(err error) error {
	if errors.Is(err, ErrFull) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrFull, err)
}
