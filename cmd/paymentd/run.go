package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `paymentd — one payment service over gRPC and REST.

Usage:
  paymentd serve   [--db paymentd.db] [--grpc-addr :9090] [--http-addr :8080] [--env development]
  paymentd keys    create --db PATH --mode test|live [--scopes read,write] [--account ID]
  paymentd keys    list   --db PATH
  paymentd keys    revoke --db PATH KEY_ID
  paymentd accounts create --db PATH --name NAME
  paymentd accounts list   --db PATH
  paymentd accounts update --db PATH [--account ID] [--display-name N] [--logo-url URL] [--accent-color #RRGGBB]
                           [--support-email E] [--support-url URL]
  paymentd migrate --db PATH
  paymentd migrate-store --from paymentd.db --to postgres://USER@HOST:5432/DB?sslmode=…
  paymentd check   --db PATH
  paymentd reconcile --config paymentd.yaml --db PATH
  paymentd operator-items --db PATH [--all]
  paymentd payout-methods list|set|reset --db PATH [--mode test|live] [--account ID] [--file methods.json]
  paymentd bench   [--concurrency 50] [--duration 10s] [--preload N] [--scenarios a,b] [--json FILE]
                   [--db postgres://… [--replicas N]]
                   [--server child|inprocess] [--addr HOST:PORT --http-addr HOST:PORT --key KEY [--server-pid PID]]
  paymentd version

Every flag can also be set with an environment variable: PAYMENTD_ and the
flag's name in upper case with _ for -, e.g. PAYMENTD_DB, PAYMENTD_GRPC_ADDR.
`

// run is the whole program: main only supplies the process's arguments,
// environment and output streams, so tests can call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		// `paymentd <cmd> --help`: the flag package printed the usage; asking
		// for help is no failure.
		return nil
	}
	return err
}

// dispatch runs the command args[0].
func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	if len(rest) > 0 && isHelp(rest[0]) && (cmd == "keys" || cmd == "accounts" || cmd == "payout-methods") {
		// `paymentd keys --help`: the subcommands, not an error about the
		// first argument.
		printCommandUsage(stdout, cmd)
		return nil
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return keys(ctx, rest, getenv, stdout, stderr)
	case "accounts":
		return accounts(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return bench(ctx, rest, getenv, stdout, stderr)
	case "bench-server": // hidden: the server side of bench, run as its child
		return benchServer(ctx, rest, getenv, os.Stdin, stdout, stderr)
	case "migrate":
		return migrateCmd(ctx, rest, getenv, stdout, stderr)
	case "migrate-store":
		return migrateStoreCmd(ctx, rest, getenv, stdout, stderr)
	case "check":
		return checkCmd(ctx, rest, getenv, stdout, stderr)
	case "reconcile":
		return reconcileCmd(ctx, rest, getenv, stdout, stderr)
	case "operator-items":
		return operatorItemsCmd(ctx, rest, getenv, stdout, stderr)
	case "payout-methods":
		return payoutMethodsCmd(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		printVersion(stdout)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// newFlagSet returns a flag set whose defaults come from PAYMENTD_* variables
// once applyEnv is called after the flags are defined.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// envName is the environment variable that sets the flag name.
func envName(flag string) string {
	return "PAYMENTD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// parseFlags applies PAYMENTD_* environment defaults, then the command line.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	return fs.Parse(args)
}

// isHelp reports an argument asking for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// printCommandUsage prints the lines of the usage text that show cmd.
func printCommandUsage(w io.Writer, cmd string) {
	fmt.Fprintln(w, "Usage:")
	shown := false
	for _, line := range strings.Split(usage, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "paymentd "+cmd+" "):
			shown = true
		case shown && strings.HasPrefix(line, "    ") && !strings.HasPrefix(trimmed, "paymentd "):
			// a continuation of the line before
		default:
			shown = false
		}
		if shown {
			fmt.Fprintln(w, line)
		}
	}
	fmt.Fprintf(w, "\n`paymentd %s SUBCOMMAND --help` shows a subcommand's flags.\n", cmd)
}
