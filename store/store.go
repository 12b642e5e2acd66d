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
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Options tune the database. The zero value is the production default.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: FULL (default) makes every
	// commit survive power loss; NORMAL only survives a process crash.
	// SQLite only: on PostgreSQL synchronous_commit is the server's, and
	// setting this is an error.
	Synchronous string
	// ReadConns is the size of the read pool; default 2×GOMAXPROCS, at least 4.
	ReadConns int
	// MaxBatch bounds how many state changes share one commit; default 256.
	MaxBatch int
	// MaxPageCount caps the database at that many pages (SQLite's
	// max_page_count; a page is 4 KiB), 0 for no cap. Writes past it fail
	// as on a full disk (ErrFull), which is how tests exercise a full disk
	// without root; an operator may also use it to bound the file. SQLite
	// only: setting it on PostgreSQL is an error.
	MaxPageCount int
	// PaymentCache is how many payments (the latest written or read) reads
	// find in memory; default 20000, negative disables the cache. SQLite
	// only: on PostgreSQL another replica may have written a payment, so
	// the cache is always off there.
	PaymentCache int
	// Writers is how many group-commit loops write at once, each on its own
	// connection: default 4 on PostgreSQL, where commits of different
	// connections overlap; always 1 on SQLite, which has one writer.
	Writers int
	// CommitDelay is how long at most SQLite's writer, before it runs a
	// batch, lets the process's other goroutines run first while some are
	// waiting for a CPU, taking the changes they send meanwhile into the
	// batch (default 1 ms; negative: never). A commit costs the writer about
	// as much CPU as several changes, however many it holds: when every CPU
	// is busy, the more changes share it, the more CPU is left for requests.
	// When a CPU is idle nothing waits and the batch runs at once; nor
	// does the writer gather while changes come fewer than two per delay
	// (a caller or two taking turns would only pay for the yields). SQLite
	// only: on
	// PostgreSQL several writer loops commit at once, and setting it is an
	// error.
	CommitDelay time.Duration
}

// DefaultCommitDelay is Options.CommitDelay's default.
const DefaultCommitDelay = time.Millisecond

// Store keeps paymentd's objects in SQLite or PostgreSQL.
type Store struct {
	path string  // the SQLite file, or the PostgreSQL DSN without its password
	d    dialect // the database's SQL flavour (dialect.go)
	wdb  *sql.DB // the writers' connections, one per group-commit loop
	rdb  *sql.DB // read pool
	w    *writer
	r    *readStmts

	readCache sync.Map      // query text → *sql.Stmt on the read pool
	payments  *paymentCache // latest committed versions of recently written or read payments (SQLite)
	idem      *idemIndex    // which idempotency keys may have a record (SQLite; nil on PostgreSQL)
	tracer    trace.Tracer  // SetTracer (observe.go); nil: no spans

	// Background checkpoints of accounts whose guarded sums grew long
	// (checkpointSoon, PostgreSQL): which are running, and their end.
	checkpointing sync.Map // acctMode → true
	background    sync.WaitGroup
	bgCtx         context.Context
	bgCancel      context.CancelFunc
}

// Backend names the database behind the store: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.d.name() }

// Shared reports whether other processes may write the same database (true
// on PostgreSQL). Then nothing held in this process's memory tells what
// another replica did: in-flight markers, delivery claims and schedules
// must be rows, and guards must lock rows.
func (s *Store) Shared() bool { return s.d.postgres }

// query runs a read on the pool with a statement prepared once per query
// text (SQLite's parse and plan cost more than a small query itself).
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, ok := s.readCache.Load(query)
	if !ok {
		prepared, err := s.rdb.PrepareContext(ctx, s.d.bind(query))
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

// queryRow runs a read of at most one row on the pool.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.rdb.QueryRowContext(ctx, s.d.bind(query), args...)
}

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migrationDir is where the dialect's migrations are embedded.
func (d dialect) migrationDir() string {
	if d.postgres {
		return "migrations/postgres/"
	}
	return "migrations/"
}

// migrationNames lists the dialect's embedded migrations in the order they apply.
func (d dialect) migrationNames() ([]string, error) {
	paths, err := fs.Glob(migrationFS, d.migrationDir()+"*.sql")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = path.Base(p)
	}
	sort.Strings(names)
	return names, nil
}

func sqliteDSN(path string, o Options, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous("+o.Synchronous+")")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// Every change runs under a SAVEPOINT, whose first write of a page
		// copies it to the sub-journal. On disk (the default) that journal
		// spills to a temporary file once a savepoint has copied 64 KiB, and
		// from then on every page copied costs a write system call; in
		// memory it costs a copy, and it never holds more than the pages of
		// one change.
		q.Add("_pragma", "temp_store(MEMORY)")
		q.Add("_txlock", "immediate")
		if o.MaxPageCount > 0 {
			q.Add("_pragma", fmt.Sprintf("max_page_count(%d)", o.MaxPageCount))
		}
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens the database and applies any pending migrations. A dsn starting
// with postgres:// or postgresql:// is a PostgreSQL database (postgres.go);
// anything else is the path of a SQLite file, created if needed.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	if o.ReadConns <= 0 {
		o.ReadConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if IsPostgres(dsn) {
		return openPostgres(ctx, dsn, o)
	}
	return openSQLite(ctx, dsn, o)
}

func openSQLite(ctx context.Context, path string, o Options) (*Store, error) {
	o.Synchronous = strings.ToUpper(o.Synchronous)
	switch o.Synchronous {
	case "":
		o.Synchronous = "FULL"
	case "FULL", "NORMAL", "EXTRA", "OFF":
	default:
		return nil, fmt.Errorf("store: synchronous must be FULL, NORMAL, EXTRA or OFF, not %q", o.Synchronous)
	}
	if o.PaymentCache == 0 {
		o.PaymentCache = 20_000
	}
	if o.CommitDelay == 0 {
		o.CommitDelay = DefaultCommitDelay
	}
	wdb, err := sql.Open("sqlite", sqliteDSN(path, o, false))
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
	rdb, err := sql.Open("sqlite", sqliteDSN(path, o, true))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(o.ReadConns)
	rdb.SetMaxIdleConns(o.ReadConns)
	rdb.SetConnMaxIdleTime(0)
	s := &Store{path: path, d: sqliteSQL, wdb: wdb, rdb: rdb, payments: newPaymentCache(max(o.PaymentCache, 0)), idem: newIdemIndex()}
	return s.start(ctx, o, 1)
}

// start prepares the hot reads, loads the idempotency index (SQLite) and
// starts the writer loops; on failure it closes the databases.
func (s *Store) start(ctx context.Context, o Options, writers int) (*Store, error) {
	var err error
	if s.r, err = prepareReads(ctx, s.rdb, s.d); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.idem.load(ctx, s.rdb); err != nil {
		s.closeDBs()
		return nil, err
	}
	if s.w, err = startWriter(ctx, s.wdb, s.d, writers, o, s.payments, s.idem); err != nil {
		s.closeDBs()
		return nil, err
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	if s.d.postgres {
		for _, l := range s.w.loops {
			l.tx.checkpointSoon = s.checkpointSoon
		}
	}
	return s, nil
}

// Migrate applies pending migrations to the database (a SQLite path or a
// PostgreSQL DSN, as for Open) and reports which ones it applied.
func Migrate(ctx context.Context, dsn string) ([]string, error) {
	if IsPostgres(dsn) {
		return migratePostgresDSN(ctx, dsn)
	}
	db, err := sql.Open("sqlite", sqliteDSN(dsn, Options{Synchronous: "FULL"}, false))
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

// createMigrationsTable is the same statement in both dialects.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied BIGINT NOT NULL)`

// querier is what reading the applied migrations needs: a *sql.DB or *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func appliedMigrations(ctx context.Context, db querier) (map[string]bool, error) {
	if _, err := db.ExecContext(ctx, createMigrationsTable); err != nil {
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

// migrate applies every embedded SQLite migration not yet recorded in
// schema_migrations, each in its own transaction, in file-name order.
func migrate(ctx context.Context, db *sql.DB) error {
	done, err := appliedMigrations(ctx, db)
	if err != nil {
		return err
	}
	names, err := sqliteSQL.migrationNames()
	if err != nil {
		return err
	}
	for _, base := range names {
		if done[base] {
			continue
		}
		body, err := migrationFS.ReadFile(sqliteSQL.migrationDir() + base)
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

// Path is the database file's path, or on PostgreSQL its DSN without the
// password (fit to print).
func (s *Store) Path() string { return s.path }

// Close stops the writer after the queued changes are committed and closes
// the database.
func (s *Store) Close() error {
	s.bgCancel()
	s.w.stop()
	s.background.Wait()
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

// IntegrityCheck runs the database's own check and returns its report
// ("ok" when healthy): SQLite's integrity_check, or on PostgreSQL a search
// for invalid indexes (dialect.integrityCheck says why that).
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	rows, err := s.rdb.QueryContext(ctx, s.d.integrityCheck())
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n"), rows.Err()
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
	// Bytes is, on SQLite, pages in use × page size, including committed
	// WAL content; on PostgreSQL the database's size on disk.
	Bytes int64
}

// Stats counts payments and measures the database's size.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	var pages, free, size int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM payments`).Scan(&st.Payments); err != nil {
		return st, err
	}
	if s.d.postgres {
		err := s.rdb.QueryRowContext(ctx, `SELECT pg_database_size(current_database())`).Scan(&st.Bytes)
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

// Maintain does what the database would do on its own in the minutes after
// a bulk load, so that what runs next meets the steady state and not the
// cleanup: on PostgreSQL a VACUUM (ANALYZE) of every table (autovacuum's
// work after a million inserted rows, which otherwise takes one of a small
// machine's cores for minutes) and a CHECKPOINT when the role may take one.
// SQLite keeps no row versions and no statistics it depends on: nothing to
// do. paymentd bench runs it after --preload.
func (s *Store) Maintain(ctx context.Context) error {
	if !s.d.postgres {
		return nil
	}
	if _, err := s.rdb.ExecContext(ctx, `VACUUM (ANALYZE)`); err != nil {
		return fmt.Errorf("store: vacuum: %w", err)
	}
	// CHECKPOINT needs superuser or pg_checkpoint; without them the server's
	// own checkpoints write the dirty pages later, which is all it costs.
	_, _ = s.rdb.ExecContext(ctx, `CHECKPOINT`)
	return nil
}

// snapshot is one read-only transaction on a database opened for it alone,
// for the commands that read a whole database beside a serving paymentd
// (check, reconcile): every query sees the same committed state.
type snapshot struct {
	d  dialect
	db *sql.DB
	tx *sql.Tx
}

// openSnapshot opens the database dsn names (a SQLite path that must exist,
// or a PostgreSQL DSN) and starts the read-only transaction: REPEATABLE
// READ on PostgreSQL, where READ COMMITTED would give each query its own
// snapshot.
func openSnapshot(ctx context.Context, dsn string) (*snapshot, error) {
	sn := &snapshot{d: dialectOf(dsn)}
	opts := &sql.TxOptions{ReadOnly: true}
	if sn.d.postgres {
		db, err := openDB(dsn)
		if err != nil {
			return nil, err
		}
		sn.db = db
		opts.Isolation = sql.LevelRepeatableRead
	} else {
		if _, err := os.Stat(dsn); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("no database at %s", dsn)
			}
			return nil, err
		}
		db, err := sql.Open("sqlite", sqliteDSN(dsn, Options{Synchronous: "FULL"}, true))
		if err != nil {
			return nil, err
		}
		sn.db = db
	}
	sn.db.SetMaxOpenConns(1)
	tx, err := sn.db.BeginTx(ctx, opts)
	if err != nil {
		sn.db.Close()
		return nil, fmt.Errorf("store: open %s: %w", RedactDSN(dsn), err)
	}
	sn.tx = tx
	return sn, nil
}

func (sn *snapshot) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return sn.tx.QueryContext(ctx, sn.d.bind(query), args...)
}

func (sn *snapshot) close() {
	sn.tx.Rollback()
	sn.db.Close()
}
