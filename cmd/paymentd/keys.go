package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paymentd/paymentd/service"
	"github.com/paymentd/paymentd/store"
)

// bootstrapLease is held for good by the first server that bootstraps a
// database, in the write that creates the default account.
var bootstrapLease = store.Lease{Name: "bootstrap/default-account"}

// bootstrap creates the default account and a test key on an empty database
// and prints the key once; it never prints a key again. Replicas started at
// the same moment on an empty PostgreSQL database all find no account: the
// lease claimed in the same write lets exactly one of them create it.
func bootstrap(ctx context.Context, st *store.Store, stdout io.Writer) error {
	accts, err := st.Accounts(ctx)
	if err != nil || len(accts) > 0 {
		return err
	}
	acct := &store.Account{ID: service.NewID(service.PrefixAccount), Name: "default"}
	secret, key := newKey(acct.ID, false, []string{service.ScopeWrite, service.ScopePayouts})
	created := false
	err = st.Write(ctx, func(tx *store.Tx) error {
		acct.Created = tx.Now()
		key.Created = tx.Now()
		won, err := tx.ClaimLease(bootstrapLease, acct.ID, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		if err != nil || !won {
			return err // another server bootstrapped the database
		}
		if err := tx.InsertAccount(acct); err != nil {
			return err
		}
		created = true
		return tx.InsertAPIKey(key)
	})
	if err != nil || !created {
		return err
	}
	fmt.Fprintf(stdout, "Created account %s and a test API key. It is shown only this once:\n\n    %s\n\n", acct.ID, secret)
	fmt.Fprintf(stdout, "Use it as:  authorization: Bearer %s\n\n", secret)
	return nil
}

func newKey(accountID string, live bool, scopes []string) (string, *store.APIKey) {
	secret := service.NewAPIKey(live)
	return secret, &store.APIKey{
		ID: service.NewID(service.PrefixKey), AccountID: accountID, Hash: service.HashAPIKey(secret),
		Hint: secret[len(secret)-4:], Livemode: live, Scopes: scopes,
	}
}

// openForCLI opens an existing database for a command other than serve and
// migrate. It never creates one: a mistyped --db would otherwise answer from
// a new, empty database as if all was well.
func openForCLI(ctx context.Context, db string) (*store.Store, error) {
	if err := requireDB(db); err != nil {
		return nil, err
	}
	return store.Open(ctx, db, store.Options{})
}

// dbUsage is the help of every command's --db flag.
const dbUsage = "database: a SQLite file, or a postgres:// DSN (PostgreSQL)"

// requireDB refuses a --db that names no existing database file. A
// PostgreSQL DSN passes: the server refuses a database that does not exist.
func requireDB(db string) error {
	if db == "" {
		return errors.New("--db is required: the paymentd database file or a postgres:// DSN")
	}
	if store.IsPostgres(db) {
		return nil
	}
	info, err := os.Stat(db)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no database at %s: check --db (only `paymentd serve` and `paymentd migrate` create one)", db)
	case err != nil:
		return err
	case info.IsDir():
		return fmt.Errorf("--db %s is a directory, not a database file", db)
	}
	return nil
}

func keys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("keys: expected create, list or revoke")
	}
	fs := newFlagSet("keys "+args[0], stderr)
	db := fs.String("db", "paymentd.db", dbUsage)
	mode := fs.String("mode", "test", "test or live")
	scopes := fs.String("scopes", "read,write", "comma-separated scopes: read, write, payouts")
	account := fs.String("account", "", "account id (default: the first account)")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return err
	}
	st, err := openForCLI(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()

	switch args[0] {
	case "create":
		if *mode != "test" && *mode != "live" {
			return fmt.Errorf("--mode must be test or live, not %q", *mode)
		}
		var list []string
		for _, s := range strings.Split(*scopes, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(service.AllScopes, s) {
				return fmt.Errorf("--scopes: unknown scope %q; use read, write and/or payouts", s)
			}
			list = append(list, s)
		}
		acctID, err := resolveAccount(ctx, st, *account)
		if err != nil {
			return err
		}
		secret, key := newKey(acctID, *mode == "live", list)
		err = st.Write(ctx, func(tx *store.Tx) error {
			key.Created = tx.Now()
			return tx.InsertAPIKey(key)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "Created %s key %s for %s with scopes %s. The key is shown only this once:\n", *mode, key.ID, acctID, strings.Join(list, ","))
		fmt.Fprintln(stdout, secret)
		return nil
	case "list":
		ks, err := st.ListAPIKeys(ctx)
		if err != nil {
			return err
		}
		if flagSet(fs, "mode") {
			if *mode != "test" && *mode != "live" {
				return fmt.Errorf("--mode must be test or live, not %q", *mode)
			}
			ks = slices.DeleteFunc(ks, func(k *store.APIKey) bool { return k.Livemode != (*mode == "live") })
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tACCOUNT\tMODE\tKEY\tSCOPES\tCREATED\tREVOKED")
		for _, k := range ks {
			mode, prefix := "test", "ak_test_"
			if k.Livemode {
				mode, prefix = "live", "ak_live_"
			}
			revoked := "-"
			if !k.Revoked.IsZero() {
				revoked = k.Revoked.Format("2006-01-02T15:04:05Z")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s…%s\t%s\t%s\t%s\n", k.ID, k.AccountID, mode, prefix, k.Hint,
				strings.Join(k.Scopes, ","), k.Created.Format("2006-01-02T15:04:05Z"), revoked)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("keys revoke: give exactly one key id (key_…), as shown by `paymentd keys list`")
		}
		id := fs.Arg(0)
		if strings.HasPrefix(id, "ak_") {
			// Never repeat a secret: it would land in terminals, logs and CI output.
			return errors.New("keys revoke: that is an API key's secret, not its id; give the key_… id shown by `paymentd keys list` (and treat the secret as exposed if it was shared)")
		}
		if !strings.HasPrefix(id, service.PrefixKey) || len(id) > 64 {
			return errors.New("keys revoke: give a key id (key_…), as shown by `paymentd keys list`")
		}
		err := st.Write(ctx, func(tx *store.Tx) error { return tx.RevokeAPIKey(id) })
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no active key %s; `paymentd keys list` shows the keys", id)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Revoked %s. Running servers stop accepting it within their auth cache TTL.\n", id)
		return nil
	}
	return fmt.Errorf("keys: unknown subcommand %q; expected create, list or revoke", args[0])
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(f *flag.FlagSet, name string) bool {
	found := false
	f.Visit(func(fl *flag.Flag) { found = found || fl.Name == name })
	return found
}

func resolveAccount(ctx context.Context, st *store.Store, id string) (string, error) {
	accts, err := st.Accounts(ctx)
	if err != nil {
		return "", err
	}
	for _, a := range accts {
		if id == "" || a.ID == id {
			return a.ID, nil
		}
	}
	if id == "" {
		return "", errors.New("the database has no account yet; run `paymentd serve` once or `paymentd accounts create`")
	}
	return "", fmt.Errorf("no account %s", id)
}

func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	db := fs.String("db", "paymentd.db", dbUsage)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	applied, err := store.Migrate(ctx, *db)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "The database is up to date.")
	}
	for _, name := range applied {
		fmt.Fprintln(stdout, "applied", name)
	}
	return nil
}

// sqliteOnly refuses the SQLite-only flags among names that were set (on
// the command line or as PAYMENTD_ variables), for a PostgreSQL --db:
// they would silently do nothing there.
func sqliteOnly(fs *flag.FlagSet, getenv func(string) string, names ...string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var bad []string
	for _, name := range names {
		if set[name] || getenv(envName(name)) != "" {
			bad = append(bad, "--"+name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s: SQLite settings, not used with a PostgreSQL --db; remove them (on PostgreSQL durability is the server's synchronous_commit)", strings.Join(bad, ", "))
}

// commitDelayOption turns --commit-delay into store.Options.CommitDelay,
// whose zero is the default: the flag's 0 (never wait) is a negative delay.
func commitDelayOption(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("--commit-delay is %s: give a duration such as 1ms, or 0 to commit without waiting", d)
	case d == 0:
		return -1, nil
	}
	return d, nil
}

// writersOption checks --db-writers for db: a PostgreSQL setting (SQLite
// has one writer), zero or more.
func writersOption(db string, writers int) (store.Options, error) {
	switch {
	case writers < 0:
		return store.Options{}, fmt.Errorf("--db-writers is %d: give 1 or more, or 0 for the default (4)", writers)
	case writers > 0 && !store.IsPostgres(db):
		return store.Options{}, errors.New("--db-writers: a PostgreSQL setting (SQLite has one writer); remove it")
	}
	return store.Options{Writers: writers}, nil
}
