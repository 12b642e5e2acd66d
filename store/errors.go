package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// The store recognises database errors by their codes here, and only here:
// SQLite's extended result codes (modernc's *sqlite.Error) and PostgreSQL's
// SQLSTATEs (pgx's *pgconn.PgError). Messages are never matched.

// ErrNotFound is returned when an object does not exist (or belongs to another
// account or mode, which callers must not be able to tell apart).
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when a unique value, such as an idempotency key, is
// already taken.
var ErrConflict = errors.New("store: conflict")

// ErrStale is returned when an update was made against a version of a row
// that another change has replaced since it was read (an optimistic update
// that lost), e.g. UpdateDelivery with an attempt count that moved on. The
// caller reads the row again and decides anew. It is not ErrConflict: no
// unique value was taken.
var ErrStale = errors.New("store: the row changed since it was read")

const (
	sqliteConstraintPrimaryKey = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	sqliteConstraintUnique     = 2067 // SQLITE_CONSTRAINT_UNIQUE
	sqliteBusy                 = 5    // SQLITE_BUSY (primary code)
	sqliteLocked               = 6    // SQLITE_LOCKED (primary code)
	sqliteFull                 = 13   // SQLITE_FULL (primary code)

	pgUniqueViolation      = "23505"
	pgDiskFull             = "53100"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	pgLockNotAvailable     = "55P03"
)

// sqliteCode and pgCode return at once on nil: errors.As's target escapes,
// so each call would otherwise allocate, and the writer asks about every
// change's result (isRetryable), nearly always nil.
func sqliteCode(err error) (int, bool) {
	if err == nil {
		return 0, false
	}
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

func pgCode(err error) string {
	if err == nil {
		return ""
	}
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// isUniqueViolation reports whether err is a unique or primary key
// constraint failing: the value is taken.
func isUniqueViolation(err error) bool {
	if c, ok := sqliteCode(err); ok {
		return c == sqliteConstraintUnique || c == sqliteConstraintPrimaryKey
	}
	return pgCode(err) == pgUniqueViolation
}

// isBusy reports whether err is SQLite giving up on a lock another
// connection holds (after busy_timeout).
func isBusy(err error) bool {
	c, ok := sqliteCode(err)
	return ok && (c&0xff == sqliteBusy || c&0xff == sqliteLocked)
}

// isFull reports whether err is the database saying it or its disk is full
// (SQLITE_FULL; PostgreSQL's disk_full), or is already ErrFull.
func isFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrFull) {
		return true
	}
	if c, ok := sqliteCode(err); ok {
		return c&0xff == sqliteFull
	}
	return pgCode(err) == pgDiskFull
}

// isRetryable reports whether err is PostgreSQL undoing a statement only
// because of what ran beside it (a serialization failure, a deadlock, a
// lock not available): the same change run again may well succeed.
func isRetryable(err error) bool {
	switch pgCode(err) {
	case pgSerializationFailure, pgDeadlockDetected, pgLockNotAvailable:
		return true
	}
	return false
}
