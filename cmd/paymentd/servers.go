package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/paymentd/paymentd/service"
)

// servers are the gRPC server, the HTTP server with the REST gateway, and
// the loopback connection between them.
type servers struct {
	svc      *service.Service
	grpc     *grpc.Server
	http     *http.Server
	conn     *grpc.ClientConn
	grpcAddr net.Addr
	httpAddr net.Addr
	errc     chan error // a server that stopped by itself
}

// startServers listens on both addresses and serves svc. register, if not
// nil, adds services to the gRPC server before it starts; extra adds
// gateway routes.
func startServers(ctx context.Context, svc *service.Service, grpcAddr, httpAddr string, log *slog.Logger,
	register func(*grpc.Server), extra ...service.GatewayRegistrar) (*servers, error) {
	s := &servers{svc: svc, errc: make(chan error, 2)}
	s.grpc, _ = svc.NewGRPCServer()
	if register != nil {
		register(s.grpc)
	}
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return nil, fmt.Errorf("--grpc-addr: %w", err)
	}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		gl.Close()
		return nil, fmt.Errorf("--http-addr: %w", err)
	}
	s.grpcAddr, s.httpAddr = gl.Addr(), hl.Addr()

	// The gateway reaches the gRPC server over loopback, so that REST calls
	// pass through the same interceptors as gRPC calls.
	s.conn, err = grpc.NewClient(loopbackTarget(gl.Addr()), append(svc.GatewayDialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(service.MaxSendMsgSize)))...)
	if err != nil {
		gl.Close()
		hl.Close()
		return nil, err
	}
	handler, err := svc.HTTPHandler(ctx, s.conn, extra...)
	if err != nil {
		gl.Close()
		hl.Close()
		s.conn.Close()
		return nil, err
	}
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    service.HeaderReadLimit, // a JSON 431 above service.MaxHeaderBytes (limitHeaders)
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { s.errc <- s.grpc.Serve(gl) }()
	go func() {
		if err := s.http.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	}()
	return s, nil
}

// stop refuses new work, lets calls in flight finish within wait, then cuts
// what remains. Readiness (/readyz and gRPC health) turns unavailable
// first, if drain has not already done it.
func (s *servers) stop(wait time.Duration) {
	s.svc.BeginShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.http.Shutdown(ctx) }()
	go func() {
		defer wg.Done()
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
		}
	}()
	wg.Wait()
	s.conn.Close()
}

// drain turns readiness unavailable (/readyz 503, gRPC health
// NOT_SERVING) and keeps serving for delay, so that load balancers notice
// and stop sending work before the listeners close.
func (s *servers) drain(delay time.Duration) {
	s.svc.BeginShutdown()
	if delay > 0 {
		time.Sleep(delay)
	}
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

// serveMetrics serves GET /metrics on its own address (serve
// --metrics-addr), so that the metrics can stay on a network that the API
// port is not on. The returned function stops it.
func serveMetrics(addr string, svc *service.Service, log *slog.Logger) (func(), net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", svc.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(l) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, l.Addr(), nil
}
