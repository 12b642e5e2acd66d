package store

import "testing"

// TestRebind covers the placeholder and hint rewriting bind does for
// PostgreSQL: `?` numbered in order, `?N` kept, INDEXED BY dropped, and
// string literals, quoted names and comments left alone.
func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT a FROM t WHERE x=? AND y=?`, `SELECT a FROM t WHERE x=$1 AND y=$2`},
		{`WHERE account_id=?1 AND livemode=?2 AND id > ?1`, `WHERE account_id=$1 AND livemode=$2 AND id > $1`},
		{`SELECT 1 FROM payments INDEXED BY payments_unsettled WHERE id=?`, `SELECT 1 FROM payments WHERE id=$1`},
		{"FROM p AS p indexed  by\n\tidx LEFT JOIN", "FROM p AS p LEFT JOIN"},
		{`SELECT '?', "a?b", x FROM t WHERE y=? -- what?` + "\n AND z=?", `SELECT '?', "a?b", x FROM t WHERE y=$1 -- what?` + "\n AND z=$2"},
		{`WHERE s LIKE 'it''s ?' AND t=?`, `WHERE s LIKE 'it''s ?' AND t=$1`},
		{`SELECT reindexed FROM t`, `SELECT reindexed FROM t`},
		{`SELECT indexed FROM t`, `SELECT indexed FROM t`},
	} {
		if got := rebind(c.in); got != c.want {
			t.Errorf("rebind(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
	if got := sqliteSQL.bind(`x=?`); got != `x=?` {
		t.Errorf("SQLite bind changed the query: %q", got)
	}
}

// TestRedactDSN keeps passwords out of anything printed.
func TestRedactDSN(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgresql://h/db?password=secret&sslmode=require", "postgresql://h/db?password=xxxxx&sslmode=require"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"data/paymentd.db", "data/paymentd.db"},
	} {
		if got := RedactDSN(c.in); got != c.want {
			t.Errorf("RedactDSN(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}
