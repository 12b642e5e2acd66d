package storetest

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
)

// TestPostgresDSNGivesEachTestItsOwnDatabase checks the helper against a real
// server: two tests get two different, empty, connectable databases, and
// both are gone once the tests end.
func TestPostgresDSNGivesEachTestItsOwnDatabase(t *testing.T) {
	var names []string
	for range 2 {
		t.Run("db", func(t *testing.T) {
			dsn := PostgresDSN(t)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var name string
			var tables int
			if err := db.QueryRow(`SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, DatabasePrefix) || tables != 0 {
				t.Errorf("database %s with %d tables; want a new empty database named %s…", name, tables, DatabasePrefix)
			}
			names = append(names, name)
		})
	}
	if len(names) != 2 {
		return // skipped: no server
	}
	if names[0] == names[1] {
		t.Errorf("both tests got database %s; want one each", names[0])
	}
	admin, err := sql.Open("pgx", os.Getenv(PostgresEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var left int
	if err := admin.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the databases %v remain after their tests; want them dropped", left, names)
	}
}
