package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL is reached through pgx's database/sql driver (stdlib), not
// pgxpool, so that both dialects share every scan function, the statement
// cache and the writer: only the SQL that really differs asks the dialect.

// defaultPostgresWriters is how many group-commit loops write at once on
// PostgreSQL when Options.Writers is unset: enough that one loop's commit
// (a WAL flush on the server) overlaps the next batch of another.
const defaultPostgresWriters = 4

// maxPostgresBatch caps the changes of one batch on PostgreSQL (Open).
const maxPostgresBatch = 64

// migrationLockKey is the key of the transaction-scoped advisory lock that
// migrations run under, so that replicas starting at the same moment apply
// them once (arbitrary, fixed: "paymentd" in ASCII).
const migrationLockKey int64 = 0x7061796d656e7464

// openDB opens a database/sql pool on the PostgreSQL database dsn names.
// Errors never repeat the DSN, whose password they would print.
func openDB(dsn string) (*sql.DB, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return stdlib.OpenDB(*cfg), nil
}

// parseDSN reads dsn as pgx's connection settings, naming paymentd to the
// server unless the DSN names another application.
func parseDSN(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: the PostgreSQL DSN %s does not parse: give postgres://user@host:port/dbname?sslmode=…", RedactDSN(dsn))
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "paymentd"
	}
	return cfg, nil
}

func openPostgres(ctx context.Context, dsn string, o Options) (*Store, error) {
	if o.Synchronous != "" {
		return nil, errors.New("store: synchronous is a SQLite setting; on PostgreSQL durability is the server's synchronous_commit (keep it on): leave synchronous unset")
	}
	if o.MaxPageCount != 0 {
		return nil, errors.New("store: max page count is a SQLite setting; on PostgreSQL bound the database with the server's disk or quotas: leave it unset")
	}
	if o.CommitDelay != 0 {
		return nil, errors.New("store: commit delay is a SQLite setting; on PostgreSQL the writer loops' commits overlap instead: leave it unset")
	}
	writers := o.Writers
	if writers <= 0 {
		writers = defaultPostgresWriters
	}
	// Each change of a batch is a subtransaction; past 64 in one
	// transaction PostgreSQL's per-backend subtransaction cache overflows
	// and every other session's snapshots get slower until it commits.
	o.MaxBatch = min(o.MaxBatch, maxPostgresBatch)
	wdb, err := openDB(dsn)
	if err != nil {
		return nil, err
	}
	wdb.SetMaxOpenConns(writers)
	wdb.SetMaxIdleConns(writers)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if _, err := migratePostgres(ctx, wdb); err != nil {
		wdb.Close()
		return nil, err
	}
	cfg, err := parseDSN(dsn)
	if err != nil {
		wdb.Close()
		return nil, err
	}
	rdb := openReadDB(cfg)
	rdb.SetMaxOpenConns(o.ReadConns)
	rdb.SetMaxIdleConns(o.ReadConns)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	// No payment cache, idempotency index or balance cache: another replica
	// may have written what they would answer from memory.
	s := &Store{path: RedactDSN(dsn), d: postgresSQL, wdb: wdb, rdb: rdb, payments: newPaymentCache(0)}
	return s.start(ctx, o, writers)
}

func migratePostgresDSN(ctx context.Context, dsn string) ([]string, error) {
	db, err := openDB(dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return migratePostgres(ctx, db)
}

// migratePostgres applies every pending PostgreSQL migration in one
// transaction that first takes a transaction-scoped advisory lock: replicas
// starting together wait for the first one, then find nothing to do. The
// lock ends with the transaction, so nothing is left held on a pooled
// connection (the only advisory lock paymentd takes).
func migratePostgres(ctx context.Context, db *sql.DB) ([]string, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: connect to PostgreSQL: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return nil, fmt.Errorf("store: migration lock: %w", err)
	}
	done, err := appliedMigrations(ctx, tx)
	if err != nil {
		return nil, err
	}
	names, err := postgresSQL.migrationNames()
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, base := range names {
		if done[base] {
			continue
		}
		body, err := migrationFS.ReadFile(postgresSQL.migrationDir() + base)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return nil, fmt.Errorf("store: migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied) VALUES ($1, $2)`, base, time.Now().Unix()); err != nil {
			return nil, fmt.Errorf("store: migration %s: %w", base, err)
		}
		applied = append(applied, base)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	sort.Strings(applied)
	return applied, nil
}
