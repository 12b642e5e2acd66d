package store

import (
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// dialect is the SQL flavour of the database a Store talks to. Statements
// are written once, in the dialect both understand, with SQLite's `?` and
// `?N` placeholders; bind turns them into PostgreSQL's at the few places
// where statements are prepared. The rare statement that really differs
// asks the dialect for its part (forUpdate, jsonText) instead of keeping a
// second copy.
type dialect struct {
	postgres bool
	bound    *sync.Map // query text → its PostgreSQL form
}

var (
	sqliteSQL   = dialect{}
	postgresSQL = dialect{postgres: true, bound: &sync.Map{}}
)

// IsPostgres reports whether dsn names a PostgreSQL database (a URL with
// the postgres or postgresql scheme); anything else is a SQLite path.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func dialectOf(dsn string) dialect {
	if IsPostgres(dsn) {
		return postgresSQL
	}
	return sqliteSQL
}

// RedactDSN returns dsn fit to print: a PostgreSQL URL loses its password
// (and any password parameter); a SQLite path is returned as it is.
func RedactDSN(dsn string) string {
	if !IsPostgres(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(a URL that does not parse)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// name is the backend's name as Store.Backend reports it.
func (d dialect) name() string {
	if d.postgres {
		return "postgres"
	}
	return "sqlite"
}

// bind returns query in the dialect's form. On PostgreSQL `?` becomes the
// next `$n`, `?N` becomes `$N`, and SQLite's `INDEXED BY name` planner hints
// are dropped (PostgreSQL chooses the same partial indexes by itself);
// string literals, quoted names and comments are left alone. The result is
// cached per query text, so the cost is paid once per statement.
func (d dialect) bind(query string) string {
	if !d.postgres {
		return query
	}
	if b, ok := d.bound.Load(query); ok {
		return b.(string)
	}
	b := rebind(query)
	d.bound.Store(query, b)
	return b
}

// rebind does bind's work for PostgreSQL.
func rebind(q string) string {
	var out strings.Builder
	out.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := closingQuote(q, i)
			out.WriteString(q[i:j])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			out.WriteString(q[i : i+j])
			i += j
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			out.WriteByte('$')
			if j > i+1 {
				out.WriteString(q[i+1 : j])
			} else {
				n++
				out.WriteString(strconv.Itoa(n))
			}
			i = j
		case isWordByte(c) && (i == 0 || !isWordByte(q[i-1])):
			j := wordEnd(q, i)
			if strings.EqualFold(q[i:j], "INDEXED") {
				if k, ok := skipIndexedBy(q, j); ok {
					i = k
					continue
				}
			}
			out.WriteString(q[i:j])
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String()
}

// closingQuote returns the index just after the quoted text starting at
// q[i] (a doubled quote inside it is part of the text).
func closingQuote(q string, i int) int {
	quote := q[i]
	j := i + 1
	for j < len(q) {
		if q[j] == quote {
			if j+1 < len(q) && q[j+1] == quote {
				j += 2
				continue
			}
			return j + 1
		}
		j++
	}
	return len(q)
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func wordEnd(q string, i int) int {
	for i < len(q) && isWordByte(q[i]) {
		i++
	}
	return i
}

func skipSpace(q string, i int) int {
	for i < len(q) && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r') {
		i++
	}
	return i
}

// skipIndexedBy returns the index after "BY name" and the space after it
// when the word INDEXED that ends at j starts a SQLite index hint.
func skipIndexedBy(q string, j int) (int, bool) {
	k := skipSpace(q, j)
	e := wordEnd(q, k)
	if !strings.EqualFold(q[k:e], "BY") {
		return 0, false
	}
	k = skipSpace(q, e)
	e = wordEnd(q, k)
	if e == k {
		return 0, false
	}
	return skipSpace(q, e), true
}

// forUpdate is the suffix that locks the rows a write transaction reads and
// may then update. SQLite needs none: its single writer excludes every other
// one. On PostgreSQL other replicas write the same rows, and READ COMMITTED
// would let two of them decide on the same version.
func (d dialect) forUpdate() string {
	if d.postgres {
		return " FOR UPDATE"
	}
	return ""
}

// skipLocked is the suffix of a claim's row selection: on PostgreSQL the
// rows are locked and rows another transaction holds are passed over, so
// replicas claiming at once take disjoint rows instead of queueing. SQLite
// has one writer and no row locks, so it has none.
func (d dialect) skipLocked() string {
	if d.postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// jsonText is the SQL expression for the text of one top-level key of a
// JSON object stored in a TEXT column.
func (d dialect) jsonText(col, key string) string {
	if d.postgres {
		return "(" + col + "::jsonb ->> '" + key + "')"
	}
	return "json_extract(" + col + ", '$." + key + "')"
}

// tableExists counts the tables named by its one argument (0 or 1).
func (d dialect) tableExists() string {
	if d.postgres {
		return `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`
	}
	return `SELECT count(*) FROM sqlite_master WHERE type='table' AND name = ?`
}

// integrityCheck is the query whose rows report the database's own check:
// one row "ok" when healthy. SQLite runs integrity_check over the whole
// file. PostgreSQL verifies its pages (and their checksums, where the
// cluster has them) as it reads them, so there is no whole-file check to
// run; what is wrong yet visible from SQL is an index left invalid by a
// failed build, which plans silently skip, so that is what it reports.
func (d dialect) integrityCheck() string {
	if !d.postgres {
		return `PRAGMA integrity_check`
	}
	return `WITH invalid AS (SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT i.indisvalid)
		SELECT 'index ' || name || ' is invalid; rebuild it with REINDEX INDEX ' || name FROM invalid
		UNION ALL SELECT 'ok' WHERE NOT EXISTS (SELECT 1 FROM invalid)`
}

// integrityName is what the check reports the integrity check as.
func (d dialect) integrityName() string {
	if d.postgres {
		return "PostgreSQL: no invalid index"
	}
	return "SQLite integrity_check"
}
