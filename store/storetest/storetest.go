// Package storetest is the conformance suite of package store: Run drives
// the same behaviour tests against any backend (the embedded SQLite file and
// PostgreSQL), in the shape of openfga's RunAllTests, and PostgresDSN and
// SQLitePath give each test a database of its own.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// PostgresEnv names the environment variable holding the DSN of a PostgreSQL
// server (not of a database: each test creates its own) that the PostgreSQL
// tests run against.
const PostgresEnv = "PAYMENTD_TEST_POSTGRES"

// DatabasePrefix starts the name of every database PostgresDSN creates, so
// that a leftover one (a test binary killed before its cleanup) is easy to
// recognise and drop.
const DatabasePrefix = "paymentd_test_"

// SQLitePath returns the path of a new SQLite database file in the test's
// temporary directory; the directory, and the file, go when the test ends.
func SQLitePath(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "paymentd.db")
}

// PostgresDSN creates a fresh, uniquely named database on the server named
// by PAYMENTD_TEST_POSTGRES, returns its DSN and drops it when the test ends
// (WITH (FORCE), so that a connection the test leaked does not keep it).
// Without the variable the test is skipped, except under CI=true, where the
// PostgreSQL tests must run and a missing server is a failure.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	server := os.Getenv(PostgresEnv)
	if server == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("PAYMENTD_TEST_POSTGRES is unset under CI=true: set it to the DSN of a PostgreSQL server " +
				"(e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable); .ci/run starts one and sets it")
		}
		tb.Skip("PAYMENTD_TEST_POSTGRES is unset: set it to a PostgreSQL server's DSN to run the PostgreSQL tests")
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The DSN may hold a password: name the variable, not its value.
		tb.Fatalf("PAYMENTD_TEST_POSTGRES is not a postgres:// URL; set it to e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		tb.Fatalf("storetest: open the PostgreSQL server of PAYMENTD_TEST_POSTGRES: %v", err)
	}
	defer admin.Close()
	name := DatabasePrefix + randomHex(tb, 8)
	if err := createDatabase(admin, name); err != nil {
		tb.Fatalf("storetest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() { dropDatabase(tb, server, name) })
	u.Path = "/" + name
	return u.String()
}

// createDatabase creates the database, retrying while another session holds
// template1 (SQLSTATE 55006, which concurrent CREATE DATABASEs can hit).
func createDatabase(admin *sql.DB, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		_, err := admin.ExecContext(ctx, "CREATE DATABASE "+name)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func dropDatabase(tb testing.TB, server, name string) {
	admin, err := sql.Open("pgx", server)
	if err != nil {
		tb.Errorf("storetest: drop database %s: %v", name, err)
		return
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		tb.Errorf("storetest: drop database %s: %v", name, err)
	}
}

// randomHex returns n random bytes in hex: database names unique across the
// test binaries of every engineer sharing one server.
func randomHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return strings.ToLower(hex.EncodeToString(b))
}
