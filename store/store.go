// Package store keeps paymentd's objects in an embedded SQLite database.
//
// Every state change goes through one path: Store.Write queues a function to
// the single writer goroutine, which runs the functions that are waiting in
// one transaction (each under its own SAVEPOINT), commits once, and only then
// answers each caller. With synchronous=FULL that makes one fsync cover many
// state changes without acknowledging anything before it is durable. Reads
// use a separate pool of read-only connections.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned when an object does not exist (or belongs to another
// account or mode, which callers must not be able to tell apart).
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when a unique value, such as an idempotency key, is
// already taken.
var ErrConflict = errors.New("store: conflict")

// Options tune the database. The zero value is the production default.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: FULL (default) makes every
	// commit survive power loss; NORMAL only survives a process crash.
	Synchronous string
	// ReadConns is the size of the read pool; default 2×GOMAXPROCS, at least 4.
	ReadConns int
	// MaxBatch bounds how many state changes share one commit; default 256.
	MaxBatch int
	// MaxPageCount caps the database at that many pages (SQLite's
	// max_page_count; a page is 4 KiB), 0 for no cap. Writes past it fail
	// as on a full disk (ErrFull), which is how tests exercise a full disk
	// without root; an operator may also use it to bound the file.
	MaxPageCount int
	// PaymentCache is how many payments (the latest written or read) reads
	// find in memory; default 20000, negative disables the cache.
	PaymentCache int
}

// Store is the SQLite-backed store.
type Store struct {
	path string
	wdb  *sql.DB // exactly one connection, owned by the writer goroutine
	rdb  *sql.DB // read-only pool
	w    *writer
	r    *readStmts

	readCache sync.Map      // query text → *sql.Stmt on the read pool
	payments  *paymentCache // latest committed versions of recently written or read payments
	idem      *idemIndex    // which idempotency keys may have a record
	tracer    trace.Tracer  // SetTracer (observe.go); nil: no spans
}

// query runs a read on the pool with a statement prepared once per query
// text (SQLite's parse and plan cost more than a small query itself).
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, ok := s.readCache.Load(query)
	if !ok {
		prepared, err := s.rdb.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		var loaded bool
		if st, loaded = s.readCache.LoadOrStore(query, prepared); loaded {
			prepared.Close()
		}
	}
	return st.(*sql.Stmt).QueryContext(ctx, args...)
}

//go:embed migrations/*.sql
var migrationFS embed.FS

func dsn(path string, o Options, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous("+o.Synchronous+")")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_txlock", "immediate")
		if o.MaxPageCount > 0 {
			q.Add("_pragma", fmt.Sprintf("max_page_count(%d)", o.MaxPageCount))
		}
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and applies any
// pending migrations.
func Open(ctx context.Context, path string, o Options) (*Store, error) {
	o.Synchronous = strings.ToUpper(o.Synchronous)
	switch o.Synchronous {
	case "":
		o.Synchronous = "FULL"
	case "FULL", "NORMAL", "EXTRA", "OFF":
	default:
		return nil, fmt.Errorf("store: synchronous must be FULL, NORMAL, EXTRA or OFF, not %q", o.Synchronous)
	}
	if o.ReadConns <= 0 {
		o.ReadConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.PaymentCache == 0 {
		o.PaymentCache = 20_000
	}
	wdb, err := sql.Open("sqlite", dsn(path, o, false))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, err
	}
	rdb, err := sql.Open("sqlite", dsn(path, o, true))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(o.ReadConns)
	rdb.SetMaxIdleConns(o.ReadConns)
	rdb.SetConnMaxIdleTime(0)
	s := &Store{path: path, wdb: wdb, rdb: rdb, payments: newPaymentCache(max(o.PaymentCache, 0)), idem: newIdemIndex()}
	if s.r, err = prepareReads(ctx, rdb); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.idem.load(ctx, rdb); err != nil {
		s.closeDBs()
		return nil, err
	}
	if s.w, err = startWriter(ctx, wdb, o.MaxBatch, s.payments, s.idem); err != nil {
		s.closeDBs()
		return nil, err
	}
	return s, nil
}

// Migrate applies pending migrations to the database at path and reports
// which ones it applied.
func Migrate(ctx context.Context, path string) ([]string, error) {
	db, err := sql.Open("sqlite", dsn(path, Options{Synchronous: "FULL"}, false))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	before, err := appliedMigrations(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	after, err := appliedMigrations(ctx, db)
	if err != nil {
		return nil, err
	}
	var applied []string
	for name := range after {
		if _, ok := before[name]; !ok {
			applied = append(applied, name)
		}
	}
	sort.Strings(applied)
	return applied, nil
}

func appliedMigrations(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied INTEGER NOT NULL)`); err != nil {
		return nil, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		done[n] = true
	}
	return done, rows.Err()
}

// migrate applies every embedded migration not yet recorded in
// schema_migrations, each in its own transaction, in file-name order.
func migrate(ctx context.Context, db *sql.DB) error {
	done, err := appliedMigrations(ctx, db)
	if err != nil {
		return err
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		if done[base] {
			continue
		}
		body, err := migrationFS.ReadFile(name)
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied) VALUES (?, ?)`, base, time.Now().Unix()); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migration %s: %w", base, err)
		}
	}
	return nil
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Close stops the writer after the queued changes are committed and closes
// the database.
func (s *Store) Close() error {
	s.w.stop()
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	if s.r != nil {
		s.r.close()
	}
	s.readCache.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// Ping checks that the database answers a read.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// IntegrityCheck runs PRAGMA integrity_check and returns its report ("ok" when healthy).
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	var res string
	err := s.rdb.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res)
	return res, err
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nullStr stores empty strings as NULL, which costs nothing on disk.
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Stats describes the database's size.
type Stats struct {
	Payments int64
	Bytes    int64 // pages in use × page size, including committed WAL content
}

// Stats counts payments and measures the database's size.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	var pages, free, size int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM payments`).Scan(&st.Payments); err != nil {
		return st, err
	}
	for q, dst := range map[string]*int64{"PRAGMA page_count": &pages, "PRAGMA freelist_count": &free, "PRAGMA page_size": &size} {
		if err := s.rdb.QueryRowContext(ctx, q).Scan(dst); err != nil {
			return st, err
		}
	}
	st.Bytes = (pages - free) * size
	return st, nil
}
