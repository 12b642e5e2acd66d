package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/paymentd/paymentd/service"
	"github.com/paymentd/paymentd/store"
)

// payoutMethodsCmd is `paymentd payout-methods list|set|reset`: it shows and
// replaces an account's payout methods for one mode. The file format is what
// GET /v1/payout-methods returns, so a listing can be edited and set back.
// Running servers see a change at their next call.
func payoutMethodsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("payout-methods: expected list, set or reset")
	}
	fs := newFlagSet("payout-methods "+args[0], stderr)
	db := fs.String("db", "paymentd.db", dbUsage)
	mode := fs.String("mode", "test", "test or live")
	account := fs.String("account", "", "account id (default: the first account)")
	file := fs.String("file", "", `set: a JSON file {"payout_methods":[…]} as GET /v1/payout-methods returns`)
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	if *mode != "test" && *mode != "live" {
		return fmt.Errorf("--mode must be test or live, not %q", *mode)
	}
	live := *mode == "live"
	var methods []*store.PayoutMethod
	switch args[0] {
	case "list", "reset":
	case "set":
		if *file == "" {
			return errors.New(`payout-methods set: --file is required: a JSON file {"payout_methods":[…]}; ` +
				"`paymentd payout-methods list` prints the current methods in that form")
		}
		data, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		if methods, err = service.ParsePayoutMethods(data); err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		if len(methods) == 0 {
			return fmt.Errorf("%s: no payout methods; use `paymentd payout-methods reset` to go back to the defaults", *file)
		}
	default:
		return fmt.Errorf("payout-methods: unknown subcommand %q; expected list, set or reset", args[0])
	}
	st, err := openForCLI(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	acctID, err := resolveAccount(ctx, st, *account)
	if err != nil {
		return err
	}
	if args[0] != "list" {
		if err := st.Write(ctx, func(tx *store.Tx) error { return tx.ReplacePayoutMethods(acctID, live, methods) }); err != nil {
			return err
		}
		if methods == nil {
			fmt.Fprintf(stderr, "%s %s mode now uses the default payout methods.\n", acctID, *mode)
		} else {
			fmt.Fprintf(stderr, "Set %d payout methods for %s in %s mode.\n", len(methods), acctID, *mode)
		}
	}
	effective, err := service.EffectivePayoutMethods(ctx, st, acctID, live)
	if err != nil {
		return err
	}
	out, err := service.FormatPayoutMethods(effective)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}
