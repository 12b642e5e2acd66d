package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/paymentd/paymentd/store"
)

// migrateStoreCmd is `paymentd migrate-store --from paymentd.db --to
// postgres://…`: it moves a whole SQLite database to PostgreSQL (see
// store.CopyDatabase: the target is migrated, must be empty, and is written
// in one transaction), prints every table's row counts, then runs `paymentd
// check` on the target. It fails, saying what differs, when a count or a
// check does not match. The target's password is never printed.
func migrateStoreCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate-store", stderr)
	from := fs.String("from", "paymentd.db", "the SQLite database file to move (stop every paymentd serving it first)")
	to := fs.String("to", "", "the empty PostgreSQL database to move it into: postgres://user@host:5432/paymentd?sslmode=…")
	batch := fs.Int("batch", 500, "rows per INSERT statement")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *to == "" {
		return errors.New("--to is required: the PostgreSQL database to move into, e.g. --to 'postgres://paymentd@db.internal:5432/paymentd?sslmode=verify-full' (or PAYMENTD_TO)")
	}
	if *batch < 1 {
		return errors.New("--batch must be at least 1 row per INSERT")
	}
	shown := store.RedactDSN(*to)
	err := migrateStore(ctx, *from, *to, shown, *batch, stdout, stderr)
	if err != nil {
		return errors.New(hidePassword(err.Error(), *to))
	}
	return nil
}

func migrateStore(ctx context.Context, from, to, shown string, batch int, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "moving %s into %s (migrating it first)\n", from, shown)
	start := time.Now()
	var label string
	var tableStart time.Time
	report, err := store.CopyDatabase(ctx, from, to, store.CopyOptions{BatchRows: batch,
		Progress: func(table string, copied, total int64) {
			if table != label {
				label, tableStart = table, time.Now()
			}
			progressBar(stderr, fmt.Sprintf("%-20s", table), int(copied), int(total), time.Since(tableStart))
			if copied == total {
				fmt.Fprintln(stderr)
			}
		}})
	if report != nil {
		printCopyReport(stdout, report)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Copied %d rows of %d tables in %s; every table's count matches.\n\n",
		report.Rows(), len(report.Tables), time.Since(start).Round(time.Millisecond))

	check, err := store.Check(ctx, to)
	if err != nil {
		return fmt.Errorf("the copy is committed, but `paymentd check` could not run on the target: %w", err)
	}
	check.Path = shown
	if _, err := check.WriteTo(stdout); err != nil {
		return err
	}
	if !check.OK() {
		return fmt.Errorf("the copy is committed, but %d of %d checks fail on the target (the report above names each problem); run `paymentd check --db %s` on the source: if it passes there, the copy differs",
			check.Failed(), len(check.Results), from)
	}
	fmt.Fprintf(stdout, "\n%s now holds everything %s held. Start paymentd serve --db on it; keep %s as it is until you are sure.\n", shown, from, from)
	if keyFile, _ := secretsKeyFile("", from, store.IsPostgres(from)); keyFile != "" {
		if _, err := os.Stat(keyFile); err == nil {
			fmt.Fprintf(stdout, "Its webhook signing secrets are sealed with %s: start every server on the target with --secrets-key-file %s.\n", keyFile, keyFile)
		}
	}
	return nil
}

func printCopyReport(w io.Writer, r *store.CopyReport) {
	fmt.Fprintf(w, "%-22s %12s %12s %12s\n", "table", "source rows", "copied", "target rows")
	for _, t := range r.Tables {
		mark := ""
		if t.Source != t.Copied || t.Source != t.Target {
			mark = "  DIFFERS"
		}
		fmt.Fprintf(w, "%-22s %12d %12d %12d%s\n", t.Name, t.Source, t.Copied, t.Target, mark)
	}
	if len(r.LeftEmpty) > 0 {
		fmt.Fprintf(w, "left empty (PostgreSQL only): %s\n", strings.Join(r.LeftEmpty, ", "))
	}
}

// hidePassword replaces the password of dsn wherever it appears in msg
// (a driver's error may quote its connection string).
func hidePassword(msg, dsn string) string {
	msg = strings.ReplaceAll(msg, dsn, store.RedactDSN(dsn))
	u, err := url.Parse(dsn)
	if err != nil {
		return msg
	}
	userPW, _ := u.User.Password()
	for _, pw := range []string{userPW, u.Query().Get("password")} {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}
