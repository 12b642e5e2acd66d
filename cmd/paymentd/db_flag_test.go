package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestPostgresDBRefusesSQLiteFlags: on a postgres:// --db, serve refuses the
// SQLite-only flags (set on the command line or as PAYMENTD_ variables),
// naming each, before it connects; and no command prints the DSN's
// password, even in an error.
func TestPostgresDBRefusesSQLiteFlags(t *testing.T) {
	const dsn = "postgres://paymentd:s3cr3t-pw@127.0.0.1:1/paymentd?sslmode=disable" // nothing listens on port 1
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"synchronous flag", []string{"serve", "--db", dsn, "--synchronous", "NORMAL"}, nil, "--synchronous"},
		{"db-max-pages flag", []string{"serve", "--db", dsn, "--db-max-pages", "100"}, nil, "--db-max-pages"},
		{"commit-delay flag", []string{"serve", "--db", dsn, "--commit-delay", "2ms"}, nil, "--commit-delay"},
		{"synchronous variable", []string{"serve"}, map[string]string{"PAYMENTD_DB": dsn, "PAYMENTD_SYNCHRONOUS": "OFF"}, "--synchronous"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			getenv := func(k string) string { return c.env[k] }
			err := run(context.Background(), append(c.args, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"), getenv, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "PostgreSQL") {
				t.Fatalf("serve = %v; want an error naming %s as a SQLite setting", err, c.want)
			}
		})
	}
	for _, args := range [][]string{
		{"check", "--db", dsn},
		{"keys", "list", "--db", dsn},
		{"migrate", "--db", dsn},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, noEnv, &out, &errOut)
		if err == nil {
			t.Fatalf("paymentd %s on a server that is not there succeeded", args[0])
		}
		if all := err.Error() + out.String() + errOut.String(); strings.Contains(all, "s3cr3t-pw") {
			t.Errorf("paymentd %s printed the DSN's password: %s", args[0], all)
		}
	}
}

// TestServeRefusesNegativeCommitDelay: a negative --commit-delay is refused
// with what to give instead, before anything is opened.
func TestServeRefusesNegativeCommitDelay(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--db", t.TempDir() + "/p.db", "--commit-delay", "-1ms",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, noEnv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--commit-delay") || !strings.Contains(err.Error(), "0 to commit without waiting") {
		t.Fatalf("serve --commit-delay -1ms = %v; want an error naming the flag and saying what to give", err)
	}
}
