package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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
	srv, health := svc.NewGRPCServer()
	gl, err := net.Listen("tcp", c.grpcAddr)
	if err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	hl, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("--http-addr: %w", err)
	}

	// The gateway reaches the gRPC server over loopback, so that REST calls
	// pass through the same interceptors as gRPC calls.
	conn, err := grpc.NewClient(loopbackTarget(gl.Addr()),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(service.MaxSendMsgSize)))
	if err != nil {
		return err
	}
	defer conn.Close()
	handler, err := service.NewHTTPHandler(ctx, conn)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go svc.Run(bg)

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(gl) }()
	go func() {
		if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	fmt.Fprintf(stdout, "paymentd %s serving gRPC on %s and HTTP on %s (database %s)\n", version, gl.Addr(), hl.Addr(), c.db)
	log.Info("serving", "grpc", gl.Addr().String(), "http", hl.Addr().String(), "db", c.db, "env", c.env)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	// Graceful stop: refuse new work, let calls in flight finish within
	// shutdownWait, then cut what remains.
	health.Shutdown()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), c.shutdownWait)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = hs.Shutdown(shutdownCtx) }()
	go func() {
		defer wg.Done()
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-shutdownCtx.Done():
			srv.Stop()
		}
	}()
	wg.Wait()
	stopBG()
	log.Info("stopped")
	return serveErr
}

// loopbackTarget turns a listener address such as [::]:9090 into one the
// gateway can dial.
func loopbackTarget(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "passthrough:///" + a.String()
	}
	if tcp.IP.IsUnspecified() {
		return fmt.Sprintf("passthrough:///127.0.0.1:%d", tcp.Port)
	}
	return "passthrough:///" + tcp.String()
}
