package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/paymentd/paymentd/service"
	"github.com/paymentd/paymentd/store"
)

type serveConfig struct {
	db, grpcAddr, httpAddr, env, logLevel, synchronous string
	metricsAddr, secretsKeyFile                        string
	resetSecrets                                       bool
	rateLimit                                          float64
	dbMaxPages, dbWriters                              int
	shutdownWait, shutdownDelay, authCacheTTL          time.Duration
	commitDelay                                        time.Duration
	payouts                                            payoutFlags // sandbox payouts, ledger checkpoints (payout_flags.go)

	// Invoices: the payment pages' base URL and how often due invoices expire.
	publicURL            string
	invoiceSweepInterval time.Duration

	hooks webhookFlags // webhooks, provider timeout and reconciler (webhook_flags.go)

	providers providerFlags // --config paymentd.yaml (provider_flags.go)

	instrumentation instrumentation // --instrumentation (tracing.go)
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveConfig) {
	c := &serveConfig{}
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.db, "db", "paymentd.db", "SQLite database file (created if missing), or a postgres:// DSN (PostgreSQL; the database must exist, its schema is created)")
	fs.StringVar(&c.grpcAddr, "grpc-addr", ":9090", "gRPC listen address")
	fs.StringVar(&c.httpAddr, "http-addr", ":8080", "HTTP (REST gateway) listen address")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve GET /metrics on this address instead of on --http-addr (e.g. 127.0.0.1:9464)")
	fs.StringVar(&c.env, "env", "development", "environment name reported by /v1/status")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.resetSecrets, "reset-unreadable-webhook-secrets", false, "give new signing secrets to webhook endpoints and accounts whose stored secret does not open with --secrets-key-file (a lost key); their receivers must be given the new ones")
	fs.StringVar(&c.secretsKeyFile, "secrets-key-file", "", "file of 64 hex digits (openssl rand -hex 32), the key sealing webhook signing secrets in the database (default: DB.secrets-key beside a SQLite database, made on first start; a PostgreSQL fleet must give every replica the same file)")
	fs.StringVar(&c.synchronous, "synchronous", "FULL", "SQLite synchronous pragma; FULL makes every acknowledged change survive power loss (SQLite only)")
	fs.IntVar(&c.dbWriters, "db-writers", 0, "PostgreSQL only: how many group-commit transactions this replica runs at once, each on its own connection (0: 4); the database sees replicas × this many, so a fleet divides about 4 among its replicas (docs/fleet.md)")
	fs.DurationVar(&c.commitDelay, "commit-delay", store.DefaultCommitDelay, "SQLite only: before each commit, while every CPU is busy, the writer lets requests run first for up to this long and takes the changes they send, so that more changes share one commit; with a CPU idle it does not wait (0: never)")
	fs.IntVar(&c.dbMaxPages, "db-max-pages", 0, "cap the database file at this many 4 KiB pages (0: no cap); writes past it are answered 503 store_unavailable as on a full disk; SQLite only")
	fs.Float64Var(&c.rateLimit, "rate-limit", 100, "requests per second per API key (negative: unlimited)")
	fs.DurationVar(&c.shutdownWait, "shutdown-wait", 10*time.Second, "how long to wait for calls in flight on SIGINT/SIGTERM")
	fs.DurationVar(&c.shutdownDelay, "shutdown-delay", 0, "on SIGINT/SIGTERM, how long /readyz and gRPC health report unavailable before the listeners close (give load balancers time to notice)")
	fs.DurationVar(&c.authCacheTTL, "auth-cache-ttl", 10*time.Second, "how long an API key lookup is cached; revocations take effect within it")
	c.payouts.register(fs)
	fs.StringVar(&c.publicURL, "public-url", "", "base URL of the HTTP port as customers' browsers reach it, for invoice payment_urls (default http://localhost:PORT from --http-addr)")
	fs.DurationVar(&c.invoiceSweepInterval, "invoice-sweep-interval", time.Minute, "how often invoices past their expiry are expired in the background")
	c.hooks.register(fs)
	c.providers.register(fs)
	c.instrumentation.register(fs)
	return fs, c
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, c := serveFlags(stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(service.RedactingHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})))
	if c.publicURL != "" {
		if err := service.CheckPublicURL(c.publicURL); err != nil {
			return fmt.Errorf("--public-url: %w", err)
		}
	}

	tp, stopTracing, err := setupTracing(ctx, getenv)
	if err != nil {
		return err
	}
	defer stopTracing()
	router, err := c.providers.router(getenv, log, c.hooks.providerTimeout, service.TraceTransport(tp, nil))
	if err != nil {
		return err
	}

	opts, err := writersOption(c.db, c.dbWriters)
	if err != nil {
		return err
	}
	opts.Synchronous, opts.MaxPageCount = c.synchronous, c.dbMaxPages
	if opts.CommitDelay, err = commitDelayOption(c.commitDelay); err != nil {
		return err
	}
	if store.IsPostgres(c.db) {
		if err := sqliteOnly(fs, getenv, "synchronous", "db-max-pages", "commit-delay"); err != nil {
			return err
		}
		opts.Synchronous, opts.CommitDelay = "", 0 // the flags' defaults are SQLite's
	}
	keyFile, createKey := secretsKeyFile(c.secretsKeyFile, c.db, store.IsPostgres(c.db))
	secretsKey, err := loadSecretsKey(keyFile, createKey)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, c.db, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := bootstrap(ctx, st, stdout); err != nil {
		return err
	}

	svc := service.New(service.Config{
		Store: st, Logger: log, Environment: c.env, Build: build(),
		RateLimit: c.rateLimit, AuthCacheTTL: c.authCacheTTL,
		SandboxPayoutProcessingDelay: c.payouts.processingDelay, SandboxPayoutCompletionDelay: c.payouts.completionDelay,
		LedgerCheckpointInterval: c.payouts.checkpointInterval, LedgerCheckpointEntries: c.payouts.checkpointEntries,
		PublicURL: c.publicURL, InvoiceSweepInterval: c.invoiceSweepInterval,
		ProviderTimeout: c.hooks.providerTimeout, AllowPrivateWebhooks: c.hooks.allowPrivate,
		Webhooks: c.hooks.webhooks(), Reconcile: c.hooks.reconcile(),
		Router: router, ProviderCheckInterval: c.providers.checkInterval,
		SeparateMetrics: c.metricsAddr != "", TracerProvider: tp, InstrumentationOff: c.instrumentation.off,
		SecretsKey: secretsKey,
	})
	if secretsKey == nil {
		log.Warn("webhook signing secrets are stored unsealed: give every replica the same --secrets-key-file")
	}
	if sealed, replaced, err := svc.SealStoredSecrets(ctx, c.resetSecrets); err != nil {
		return err
	} else if sealed > 0 || replaced > 0 {
		log.Warn("sealed webhook signing secrets stored before this server had a secrets key, replaced those that did not open", "sealed", sealed, "replaced", replaced)
	}
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	bgDone := make(chan struct{})
	go func() { defer close(bgDone); svc.Run(bg) }()

	srvs, err := startServers(ctx, svc, c.grpcAddr, c.httpAddr, log, nil)
	if err != nil {
		return err
	}
	if c.metricsAddr != "" {
		stopMetrics, addr, err := serveMetrics(c.metricsAddr, svc, log)
		if err != nil {
			srvs.stop(c.shutdownWait)
			return err
		}
		defer stopMetrics()
		fmt.Fprintf(stdout, "paymentd metrics on http://%s/metrics\n", addr)
	}
	if c.publicURL == "" {
		c.publicURL = defaultPublicURL(c.httpAddr, srvs.httpAddr)
		svc.SetPublicURL(c.publicURL)
	}
	log.Info("invoice payment pages", "public_url", c.publicURL+"/pay/{invoice_id}")
	fmt.Fprintf(stdout, "paymentd %s serving gRPC on %s and HTTP on %s (database %s)\n", build(), srvs.grpcAddr, srvs.httpAddr, store.RedactDSN(c.db))
	b := build()
	log.Info("serving", "grpc", srvs.grpcAddr.String(), "http", srvs.httpAddr.String(), "db", store.RedactDSN(c.db), "env", c.env,
		"version", b.String(), "revision", b.Revision, "go_version", b.GoVersion)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-srvs.errc:
	}
	srvs.drain(c.shutdownDelay)
	srvs.stop(c.shutdownWait)
	stopBG()
	// Let background work (webhook attempts in flight) end before the store closes.
	select {
	case <-bgDone:
	case <-time.After(c.shutdownWait):
		log.Warn("background work did not stop within --shutdown-wait")
	}
	log.Info("stopped")
	return serveErr
}
