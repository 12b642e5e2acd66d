package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/paymentd/paymentd/store"
)

// operatorItemsCmd is `paymentd operator-items --db PATH [--all]`: it lists
// what paymentd could not settle on its own (payments at a provider with no
// status endpoint, answers that say money moved without saying how), the
// open ones unless --all. It fails when any is open, so a script can alert.
func operatorItemsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("operator-items", stderr)
	db := fs.String("db", "paymentd.db", dbUsage)
	all := fs.Bool("all", false, "list resolved items too")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	st, err := openForCLI(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	items, err := st.OperatorItems(ctx, *all)
	if err != nil {
		return err
	}
	open := 0
	for _, it := range items {
		state := "open"
		if !it.Resolved.IsZero() {
			state = "resolved " + it.Resolved.Format(time.RFC3339)
		} else {
			open++
		}
		mode := "test"
		if it.Livemode {
			mode = "live"
		}
		fmt.Fprintf(stdout, "%s  %s  %s %s  %s  %s  [%s]\n    %s\n", it.ID, it.Created.Format(time.RFC3339),
			it.AccountID, mode, it.ObjectID, it.Kind, state, it.Message)
	}
	if open == 0 {
		fmt.Fprintln(stdout, "No open operator items.")
		return nil
	}
	return fmt.Errorf("%d open operator item(s) in %s: each names an object paymentd could not settle; settle it at the provider and in paymentd", open, store.RedactDSN(*db))
}
