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
	rateLimit                                          float64
	shutdownWait, authCacheTTL                         time.Duration
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveConfig) {
	c := &serveConfig{}
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.db, "db", "paymentd.db", "SQLite database file (created if missing)")
	fs.StringVar(&c.grpcAddr, "grpc-addr", ":9090", "gRPC listen address")
	fs.StringVar(&c.httpAddr, "http-addr", ":8080", "HTTP (REST gateway) listen address")
	fs.StringVar(&c.env, "env", "development", "environment name reported by /v1/status")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.synchronous, "synchronous", "FULL", "SQLite synchronous pragma; FULL makes every acknowledged change survive power loss")
	fs.Float64Var(&c.rateLimit, "rate-limit", 100, "requests per second per API key (negative: unlimited)")
	fs.DurationVar(&c.shutdownWait, "shutdown-wait", 10*time.Second, "how long to wait for calls in flight on SIGINT/SIGTERM")
	fs.DurationVar(&c.authCacheTTL, "auth-cache-ttl", 10*time.Second, "how long an API key lookup is cached; revocations take effect within it")
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
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	st, err := store.Open(ctx, c.db, store.Options{Synchronous: c.synchronous})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := bootstrap(ctx, st, stdout); err != nil {
		return err
	}

	svc := service.New(service.Config{
		Store: st, Logger: log, Environment: c.env, Version: version,
		RateLimit: c.rateLimit, AuthCacheTTL: c.authCacheTTL,
	})
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go svc.Run(bg)

	srvs, err := startServers(ctx, svc, c.grpcAddr, c.httpAddr, log, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "paymentd %s serving gRPC on %s and HTTP on %s (database %s)\n", version, srvs.grpcAddr, srvs.httpAddr, c.db)
	log.Info("serving", "grpc", srvs.grpcAddr.String(), "http", srvs.httpAddr.String(), "db", c.db, "env", c.env)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-srvs.errc:
	}
	srvs.stop(c.shutdownWait)
	stopBG()
	log.Info("stopped")
	return serveErr
}
