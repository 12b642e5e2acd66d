package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// ErrTargetNotEmpty is returned by CopyDatabase when the target database
// already holds rows: a copy into it would mix two histories.
var ErrTargetNotEmpty = errors.New("store: the target database is not empty")

// copySkipped are the tables CopyDatabase does not copy, and why: the
// target records its own migrations when Migrate applies them.
var copySkipped = map[string]string{
	"schema_migrations": "the target's own migration record, written by Migrate",
}

// copyTargetOnly are tables that may exist only in the target dialect and
// are left empty by a copy, each with the reason that is safe. A table of
// the target that is neither in the source nor here fails the copy, so a new
// table is never silently left empty.
var copyTargetOnly = map[string]string{}

// CopyOptions tune CopyDatabase; the zero value is the default.
type CopyOptions struct {
	// BatchRows is how many rows one INSERT statement carries; default 500
	// (fewer when a table has so many columns that the statement would pass
	// the dialect's limit on bound parameters).
	BatchRows int
	// Progress, when set, is told after every batch how many rows of table
	// are copied out of total.
	Progress func(table string, copied, total int64)
}

// CopiedTable is one table's row counts: in the source's snapshot, inserted
// by the copy, and counted in the target after the commit.
type CopiedTable struct {
	Name                   string
	Source, Copied, Target int64
}

// CopyReport is what CopyDatabase did.
type CopyReport struct {
	Tables []CopiedTable
	// LeftEmpty are the target's tables that the source has no counterpart
	// of (copyTargetOnly).
	LeftEmpty []string
}

// Mismatches describes every table whose counts differ, empty when the
// copy is complete.
func (r *CopyReport) Mismatches() []string {
	var out []string
	for _, t := range r.Tables {
		if t.Source != t.Copied || t.Source != t.Target {
			out = append(out, fmt.Sprintf("%s: %d rows in the source, %d copied, %d in the target", t.Name, t.Source, t.Copied, t.Target))
		}
	}
	return out
}

// Rows is the total number of rows copied.
func (r *CopyReport) Rows() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Copied
	}
	return n
}

// CopyDatabase copies every row of every table of the SQLite database at
// from into the database at to (a postgres:// DSN, or another SQLite path),
// which it migrates first and which must hold no rows. The tables and their
// columns come from the source's schema, matched by name in the target's, so
// a table added by a migration is copied without a change here.
//
// The source is read in one read transaction (one consistent snapshot, even
// if a paymentd still serves it), and the target is written in ONE
// transaction for the whole copy, in batches of multi-row INSERTs: a copy
// that fails half-way leaves the target empty, so running it again needs no
// cleanup, and no replica started on the target early can see half the
// ledger. On PostgreSQL the target's tables are locked against writers for
// that transaction, so nothing else writes between the emptiness check and
// the commit. After the commit every table's rows are counted again in the
// target; a difference is returned as an error naming each table, together
// with the report.
func CopyDatabase(ctx context.Context, from, to string, o CopyOptions) (*CopyReport, error) {
	if IsPostgres(from) {
		return nil, errors.New("store: the copy's source must be a SQLite database file, not a PostgreSQL DSN")
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 500
	}
	src, stx, err := sqliteSnapshot(ctx, from)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	defer stx.Rollback()
	if err := sourceMigrated(ctx, stx, from); err != nil {
		return nil, err
	}
	srcDialect := copyDialect{postgres: false}
	srcTables, err := srcDialect.tables(ctx, stx)
	if err != nil {
		return nil, fmt.Errorf("store: reading the schema of %s: %w", from, err)
	}

	if _, err := Migrate(ctx, to); err != nil {
		return nil, fmt.Errorf("store: migrating the target: %w", err)
	}
	dstDialect := copyDialect{postgres: IsPostgres(to)}
	dst, err := dstDialect.open(to)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	dst.SetMaxOpenConns(1)
	dtx, err := dst.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: starting the target's transaction: %w", err)
	}
	defer dtx.Rollback()
	dstTables, err := dstDialect.tables(ctx, dtx)
	if err != nil {
		return nil, fmt.Errorf("store: reading the target's schema: %w", err)
	}
	plan, report, err := planCopy(srcTables, dstTables)
	if err != nil {
		return nil, err
	}
	if err := dstDialect.lock(ctx, dtx, dstTables); err != nil {
		return nil, err
	}
	if err := requireEmpty(ctx, dtx, dstTables); err != nil {
		return nil, err
	}
	for _, t := range plan {
		ct, err := copyTable(ctx, stx, dtx, t, dstDialect, o)
		if err != nil {
			return nil, err
		}
		report.Tables = append(report.Tables, ct)
	}
	if err := dstDialect.resetSequences(ctx, dtx, dstTables); err != nil {
		return nil, err
	}
	if err := dtx.Commit(); err != nil {
		return nil, fmt.Errorf("store: committing the copy: %w", err)
	}
	for i, t := range report.Tables {
		if err := dst.QueryRowContext(ctx, `SELECT count(*) FROM `+quoteIdent(t.Name)).Scan(&report.Tables[i].Target); err != nil {
			return report, fmt.Errorf("store: counting %s in the target: %w", t.Name, err)
		}
	}
	if m := report.Mismatches(); len(m) > 0 {
		return report, fmt.Errorf("store: the copy is incomplete: %s", strings.Join(m, "; "))
	}
	return report, nil
}

// sqliteSnapshot opens the existing SQLite database at path read-only and
// begins one read transaction on it: one consistent snapshot, even while a
// paymentd writes it. The caller rolls the transaction back and closes db.
func sqliteSnapshot(ctx context.Context, path string) (*sql.DB, *sql.Tx, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("store: no SQLite database at %s: name the file paymentd serves (its --db)", path)
		}
		return nil, nil, err
	}
	db, err := sql.Open("sqlite", sqliteDSN(path, Options{Synchronous: "FULL"}, true))
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("store: reading %s: %w", path, err)
	}
	return db, tx, nil
}

// sourceMigrated refuses a source that this paymentd's migrations do not
// describe exactly: the target gets this binary's schema, so columns of a
// migration the source lacks (or has from a newer paymentd) would not match.
func sourceMigrated(ctx context.Context, tx *sql.Tx, path string) error {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	applied := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("store: %s has no schema_migrations table: is it a paymentd database? (%w)", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		applied[n] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		if !applied[base] {
			return fmt.Errorf("store: %s lacks migration %s: run `paymentd migrate --db %s` first", path, base, path)
		}
		delete(applied, base)
	}
	for name := range applied {
		return fmt.Errorf("store: %s has migration %s, which this paymentd does not know: copy it with the paymentd version that wrote it", path, name)
	}
	return nil
}

// copyColumn is a column as the copy needs it: its name and the kind of
// value it holds, from its declared type.
type copyColumn struct {
	name     string
	kind     valueKind
	identity bool // filled from a sequence on PostgreSQL (identity or serial)
}

// copyTable is a table of one side: its columns in declaration order and,
// for the source, the tables its foreign keys refer to.
type copyTableSchema struct {
	name    string
	columns []copyColumn
	parents []string
}

// tablePlan is one table to copy: the source's column names and the
// target's kind for each.
type tablePlan struct {
	name        string
	columns     []string
	kinds       []valueKind
	hasIdentity bool
}

// planCopy matches the two schemas by table and column name and orders the
// tables so that a foreign key's parent is copied before its children. It
// fails, naming them, on a source table or column that the target lacks
// (its rows would be lost) and on a target table that neither the source
// nor copyTargetOnly accounts for.
func planCopy(src, dst map[string]copyTableSchema) ([]tablePlan, *CopyReport, error) {
	report := &CopyReport{}
	var problems []string
	for name := range dst {
		if _, ok := src[name]; ok || copySkipped[name] != "" {
			continue
		}
		if copyTargetOnly[name] == "" {
			problems = append(problems, fmt.Sprintf("the target has table %s, which the source does not: add it to copyTargetOnly in store/copy.go with the reason it may stay empty, or to the SQLite migrations", name))
			continue
		}
		report.LeftEmpty = append(report.LeftEmpty, name)
	}
	plans := map[string]tablePlan{}
	for name, st := range src {
		if copySkipped[name] != "" {
			continue
		}
		dt, ok := dst[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("the source has table %s, which the target does not: the target's migrations must create it", name))
			continue
		}
		p := tablePlan{name: name}
		for _, c := range st.columns {
			i := slices.IndexFunc(dt.columns, func(d copyColumn) bool { return d.name == c.name })
			if i < 0 {
				problems = append(problems, fmt.Sprintf("column %s.%s of the source is not in the target", name, c.name))
				continue
			}
			p.columns = append(p.columns, c.name)
			p.kinds = append(p.kinds, dt.columns[i].kind)
			p.hasIdentity = p.hasIdentity || dt.columns[i].identity
		}
		plans[name] = p
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, nil, fmt.Errorf("store: the two schemas differ, nothing was copied:\n  %s", strings.Join(problems, "\n  "))
	}
	sort.Strings(report.LeftEmpty)
	order, err := parentsFirst(src)
	if err != nil {
		return nil, nil, err
	}
	var out []tablePlan
	for _, name := range order {
		if p, ok := plans[name]; ok {
			out = append(out, p)
		}
	}
	return out, report, nil
}

// parentsFirst orders tables so that every table comes after the tables its
// foreign keys refer to, alphabetically among equals.
func parentsFirst(tables map[string]copyTableSchema) ([]string, error) {
	var names []string
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("store: the foreign keys of table %s form a cycle; the copy cannot order it", n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, p := range tables[n].parents {
			if _, ok := tables[p]; ok && p != n {
				if err := visit(p); err != nil {
					return err
				}
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// requireEmpty fails with ErrTargetNotEmpty, naming the tables, when any
// table of the target holds a row.
func requireEmpty(ctx context.Context, tx *sql.Tx, tables map[string]copyTableSchema) error {
	var full []string
	for name := range tables {
		if copySkipped[name] != "" {
			continue
		}
		var has bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+quoteIdent(name)+`)`).Scan(&has); err != nil {
			return fmt.Errorf("store: looking into the target's %s: %w", name, err)
		}
		if has {
			full = append(full, name)
		}
	}
	if len(full) > 0 {
		sort.Strings(full)
		return fmt.Errorf("%w: %s already hold rows; copy into a new, empty database (e.g. CREATE DATABASE paymentd_new) or one whose paymentd tables are empty",
			ErrTargetNotEmpty, strings.Join(full, ", "))
	}
	return nil
}

// copyTable streams one table from the source's snapshot into the target's
// transaction in batches of multi-row INSERTs.
func copyTable(ctx context.Context, stx, dtx *sql.Tx, t tablePlan, d copyDialect, o CopyOptions) (CopiedTable, error) {
	ct := CopiedTable{Name: t.name}
	if err := stx.QueryRowContext(ctx, `SELECT count(*) FROM `+quoteIdent(t.name)).Scan(&ct.Source); err != nil {
		return ct, fmt.Errorf("store: counting %s in the source: %w", t.name, err)
	}
	if len(t.columns) == 0 || ct.Source == 0 {
		return ct, nil
	}
	quoted := make([]string, len(t.columns))
	for i, c := range t.columns {
		quoted[i] = quoteIdent(c)
	}
	perBatch := max(1, min(o.BatchRows, d.maxParams()/len(t.columns)))
	rows, err := stx.QueryContext(ctx, `SELECT `+strings.Join(quoted, ", ")+` FROM `+quoteIdent(t.name))
	if err != nil {
		return ct, fmt.Errorf("store: reading %s: %w", t.name, err)
	}
	defer rows.Close()

	var full *sql.Stmt // the statement for a whole batch, prepared once
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, perBatch*len(t.columns))
	flush := func() error {
		n := len(args) / len(t.columns)
		if n == 0 {
			return nil
		}
		var err error
		if n == perBatch {
			if full == nil {
				if full, err = dtx.PrepareContext(ctx, d.insert(t, quoted, n)); err != nil {
					return fmt.Errorf("store: preparing the insert into %s: %w", t.name, err)
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = dtx.ExecContext(ctx, d.insert(t, quoted, n), args...)
		}
		if err != nil {
			return fmt.Errorf("store: inserting into %s (rows %d to %d of the source): %w", t.name, ct.Copied+1, ct.Copied+int64(n), err)
		}
		ct.Copied += int64(n)
		args = args[:0]
		if o.Progress != nil {
			o.Progress(t.name, ct.Copied, ct.Source)
		}
		return nil
	}
	vals := make([]any, len(t.columns))
	ptrs := make([]any, len(t.columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return ct, fmt.Errorf("store: reading %s: %w", t.name, err)
		}
		for i, v := range vals {
			cv, err := convertValue(v, t.kinds[i])
			if err != nil {
				return ct, fmt.Errorf("store: %s.%s, row %d of the source: %w", t.name, t.columns[i], ct.Copied+int64(len(args)/len(t.columns))+1, err)
			}
			args = append(args, cv)
		}
		if len(args) == perBatch*len(t.columns) {
			if err := flush(); err != nil {
				return ct, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return ct, fmt.Errorf("store: reading %s: %w", t.name, err)
	}
	return ct, flush()
}

// valueKind is what a column holds, read from its declared type the way
// SQLite's type affinity does, so that one rule serves both dialects.
type valueKind int

const (
	kindOther valueKind = iota
	kindInt
	kindText
	kindBytes
	kindBool
)

func kindOf(declared string) valueKind {
	t := strings.ToUpper(declared)
	switch {
	case strings.Contains(t, "INT"):
		return kindInt
	case strings.Contains(t, "BOOL"):
		return kindBool
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		return kindText
	case strings.Contains(t, "BLOB"), strings.Contains(t, "BYTEA"):
		return kindBytes
	}
	return kindOther
}

// convertValue turns a value read from SQLite into what the target column
// takes. SQLite keeps whatever a value was written as, whatever the column
// was declared; PostgreSQL does not, so a value of another kind is converted
// where that loses nothing and refused otherwise. Values are never printed:
// columns hold key hashes and signing secrets.
func convertValue(v any, k valueKind) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch k {
	case kindInt:
		if _, ok := v.(int64); ok {
			return v, nil
		}
	case kindBool:
		if i, ok := v.(int64); ok {
			return i != 0, nil
		}
	case kindText:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			if utf8.Valid(x) {
				return string(x), nil
			}
		}
	case kindBytes:
		switch x := v.(type) {
		case []byte:
			// An empty BLOB reads back as a nil slice (NULL is a nil
			// interface): drivers would bind the nil slice as NULL.
			return nonNil(x), nil
		case string:
			return []byte(x), nil
		}
	default:
		return v, nil
	}
	return nil, fmt.Errorf("the source holds a %T where the target's column takes %s", v, kindName[k])
}

var kindName = map[valueKind]string{kindInt: "an integer", kindBool: "a boolean", kindText: "UTF-8 text", kindBytes: "bytes", kindOther: "any value"}

// quoteIdent quotes a table or column name for both dialects (some of
// paymentd's columns, such as key and position, are SQL keywords).
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// copyDialect holds the few statements of the copy that differ between
// SQLite and PostgreSQL.
type copyDialect struct{ postgres bool }

func (d copyDialect) open(target string) (*sql.DB, error) {
	if d.postgres {
		return openDB(target)
	}
	return sql.Open("sqlite", sqliteDSN(target, Options{Synchronous: "FULL"}, false))
}

// maxParams is the number of bound parameters one statement may carry.
func (d copyDialect) maxParams() int {
	if d.postgres {
		return 65535
	}
	return 32766
}

// insert is the statement inserting n rows of t. It is written with `?`
// and rebound for PostgreSQL like every other statement, but not through
// the dialect's cache: a copy's statements are large and used once.
func (d copyDialect) insert(t tablePlan, quoted []string, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + quoteIdent(t.name) + " (" + strings.Join(quoted, ", ") + ")")
	if d.postgres && t.hasIdentity {
		b.WriteString(" OVERRIDING SYSTEM VALUE") // keep the source's ledger ids
	}
	b.WriteString(" VALUES ")
	row := "(" + strings.Repeat("?,", len(quoted)-1) + "?)"
	for r := range n {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	if d.postgres {
		return rebind(b.String())
	}
	return b.String()
}

// tables reads the schema: every table with its columns and the tables its
// foreign keys name.
func (d copyDialect) tables(ctx context.Context, tx *sql.Tx) (map[string]copyTableSchema, error) {
	listQ := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
	if d.postgres {
		listQ = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	names, err := queryStrings(ctx, tx, listQ)
	if err != nil {
		return nil, err
	}
	out := map[string]copyTableSchema{}
	for _, name := range names {
		t := copyTableSchema{name: name}
		colQ := `SELECT name, type, 0 FROM pragma_table_info(?) ORDER BY cid`
		if d.postgres {
			colQ = `SELECT column_name, data_type, (is_identity = 'YES' OR coalesce(column_default, '') LIKE 'nextval(%')
				FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
		}
		rows, err := tx.QueryContext(ctx, colQ, name)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c copyColumn
			var typ string
			if err := rows.Scan(&c.name, &typ, &c.identity); err != nil {
				rows.Close()
				return nil, err
			}
			c.kind = kindOf(typ)
			t.columns = append(t.columns, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if !d.postgres {
			if t.parents, err = queryStrings(ctx, tx, `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)`, name); err != nil {
				return nil, err
			}
		}
		out[name] = t
	}
	return out, nil
}

// lock keeps every other writer out of the target's tables until the copy
// commits (readers still read), so that the emptiness check holds for the
// whole copy. SQLite's immediate transaction already holds its write lock.
func (d copyDialect) lock(ctx context.Context, tx *sql.Tx, tables map[string]copyTableSchema) error {
	if !d.postgres || len(tables) == 0 {
		return nil
	}
	var names []string
	for n := range tables {
		names = append(names, quoteIdent(n))
	}
	sort.Strings(names)
	if _, err := tx.ExecContext(ctx, `LOCK TABLE `+strings.Join(names, ", ")+` IN EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("store: locking the target's tables: %w", err)
	}
	return nil
}

// resetSequences moves every PostgreSQL sequence behind an identity or
// serial column past the largest copied value, so that the next ledger
// entry gets a new id instead of one the copy already used. SQLite's
// INTEGER PRIMARY KEY continues after the largest rowid by itself.
func (d copyDialect) resetSequences(ctx context.Context, tx *sql.Tx, tables map[string]copyTableSchema) error {
	if !d.postgres {
		return nil
	}
	for _, t := range tables {
		for _, c := range t.columns {
			if !c.identity {
				continue
			}
			// setval is strict: on an empty table max() is NULL and the
			// sequence is left where it starts.
			q := `SELECT setval(pg_get_serial_sequence($1, $2), (SELECT max(` + quoteIdent(c.name) + `) FROM ` + quoteIdent(t.name) + `))`
			if _, err := tx.ExecContext(ctx, q, quoteIdent(t.name), c.name); err != nil {
				return fmt.Errorf("store: moving the sequence of %s.%s past the copied ids: %w", t.name, c.name, err)
			}
		}
	}
	return nil
}

func queryStrings(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
