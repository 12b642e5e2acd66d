package main

import (
	"context"
	"fmt"
	"io"

	"github.com/paymentd/paymentd/store"
)

// checkCmd is `paymentd check --db PATH`: it verifies the ledger's
// invariants read-only (it can run beside a serving paymentd), prints a
// report, and fails when any invariant does not hold.
func checkCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	db := fs.String("db", "paymentd.db", dbUsage)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	report, err := store.Check(ctx, *db)
	if err != nil {
		return err
	}
	if _, err := report.WriteTo(stdout); err != nil {
		return err
	}
	if !report.OK() {
		return fmt.Errorf("check failed: %d of %d invariants do not hold in %s; the report above names each problem",
			report.Failed(), len(report.Results), store.RedactDSN(*db))
	}
	return nil
}
