package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"

	"github.com/paymentd/paymentd/service"
	"github.com/paymentd/paymentd/store"
)

// accounts runs `paymentd accounts create|list|update`. An account's name is
// the operator's; its brand (display name, logo, accent colour, support
// contact) is what its customers see on the hosted payment page.
func accounts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("accounts: expected create, list or update")
	}
	fs := newFlagSet("accounts "+args[0], stderr)
	db := fs.String("db", "paymentd.db", dbUsage)
	switch args[0] {
	case "create":
		name := fs.String("name", "", "account name")
		if err := parseFlags(fs, args[1:], getenv); err != nil {
			return err
		}
		if *name == "" {
			return errors.New("--name is required")
		}
		st, err := openForCLI(ctx, *db)
		if err != nil {
			return err
		}
		defer st.Close()
		a := &store.Account{ID: service.NewID(service.PrefixAccount), Name: *name}
		if err := st.Write(ctx, func(tx *store.Tx) error { a.Created = tx.Now(); return tx.InsertAccount(a) }); err != nil {
			return err
		}
		fmt.Fprintln(stdout, a.ID)
		return nil
	case "list":
		if err := parseFlags(fs, args[1:], getenv); err != nil {
			return err
		}
		st, err := openForCLI(ctx, *db)
		if err != nil {
			return err
		}
		defer st.Close()
		return listAccounts(ctx, st, stdout)
	case "update":
		return updateAccount(ctx, fs, db, args[1:], getenv, stdout)
	}
	return fmt.Errorf("accounts: unknown subcommand %q; expected create, list or update", args[0])
}

func listAccounts(ctx context.Context, st *store.Store, stdout io.Writer) error {
	accts, err := st.Accounts(ctx)
	if err != nil {
		return err
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tDISPLAY NAME\tLOGO URL\tACCENT\tSUPPORT EMAIL\tSUPPORT URL\tCREATED")
	for _, a := range accts {
		b := a.Brand
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, dash(b.DisplayName), dash(b.LogoURL), dash(b.AccentColor),
			dash(b.SupportEmail), dash(b.SupportURL), a.Created.Format("2006-01-02T15:04:05Z"))
	}
	return tw.Flush()
}

// brandFlags maps the brand's fields to the flags that set them.
var brandFlags = map[string]string{
	"display_name":  "display-name",
	"logo_url":      "logo-url",
	"accent_color":  "accent-color",
	"support_email": "support-email",
	"support_url":   "support-url",
}

// updateAccount changes the brand settings given on the command line and
// keeps the others; a setting given as "" is cleared.
func updateAccount(ctx context.Context, fs *flag.FlagSet, db *string, args []string, getenv func(string) string, stdout io.Writer) error {
	account := fs.String("account", "", "account id (default: the first account)")
	var b store.Brand
	fs.StringVar(&b.DisplayName, "display-name", "", "the name customers see on the payment page (default: the account's name)")
	fs.StringVar(&b.LogoURL, "logo-url", "", "https URL of the merchant's logo on a public host, shown as an image on the payment page")
	fs.StringVar(&b.AccentColor, "accent-color", "", "hex colour of the Pay button, e.g. #1d4ed8")
	fs.StringVar(&b.SupportEmail, "support-email", "", "e-mail address customers can write to about a payment")
	fs.StringVar(&b.SupportURL, "support-url", "", "https URL of the merchant's support page")
	allowPrivate := fs.Bool("allow-private-urls", false, "accept logo and support URLs on private or loopback hosts (local development only)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	changed := 0
	for _, name := range brandFlags {
		if set[name] {
			changed++
		}
	}
	if changed == 0 {
		return errors.New("accounts update: give at least one of --display-name, --logo-url, --accent-color, --support-email, --support-url (\"\" clears one)")
	}
	st, err := openForCLI(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	id, err := resolveAccount(ctx, st, *account)
	if err != nil {
		return err
	}
	cur, err := st.Account(ctx, id)
	if err != nil {
		return err
	}
	next := cur.Brand
	for field, ptr := range map[string][2]*string{
		"display-name": {&next.DisplayName, &b.DisplayName}, "logo-url": {&next.LogoURL, &b.LogoURL},
		"accent-color": {&next.AccentColor, &b.AccentColor}, "support-email": {&next.SupportEmail, &b.SupportEmail},
		"support-url": {&next.SupportURL, &b.SupportURL},
	} {
		if set[field] {
			*ptr[0] = *ptr[1]
		}
	}
	checks := service.BrandChecks{
		Param:        func(f string) string { return "--" + brandFlags[f] },
		AllowPrivate: *allowPrivate,
		Resolver:     net.DefaultResolver,
	}
	next, err = service.CheckBrand(ctx, next, checks)
	if err != nil {
		var se *service.Error
		if errors.As(err, &se) {
			return errors.New(se.Message)
		}
		return err
	}
	if err := st.Write(ctx, func(tx *store.Tx) error { return tx.UpdateAccountBrand(id, next) }); err != nil {
		return err
	}
	var what []string
	for _, f := range []string{"display-name", "logo-url", "accent-color", "support-email", "support-url"} {
		if set[f] {
			what = append(what, "--"+f)
		}
	}
	fmt.Fprintf(stdout, "Updated %s (%s). Payment pages show it from their next load.\n", id, strings.Join(what, ", "))
	return nil
}
