package service

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// Transport limits of the gRPC server.
const (
	MaxRecvMsgSize = 1 << 20 // 1 MiB: no paymentd request is anywhere near
	// MaxSendMsgSize fits a batch read of 100 objects near their fields'
	// limits (about 115 KB each with 50 metadata entries of 500 four-byte
	// characters); the REST gateway receives as much. Lists cut their pages
	// far below it (maxPageBytes).
	MaxSendMsgSize       = 16 << 20
	MaxConcurrentStreams = 1000
	// StreamWorkers is how many long-lived goroutines serve gRPC calls. A
	// call that finds them all busy still gets a goroutine of its own, so
	// this bounds only the reuse, not the concurrency. Calls that create
	// payments wait on the group-commit writer for a few milliseconds, so
	// tens of them are in flight at once; 64 covers that, where 8 workers
	// measured no better than none.
	StreamWorkers = 64
)

// NewGRPCServer returns a gRPC server serving paymentd's services, health
// (grpc.health.v1) and reflection, with the interceptor chain and explicit
// transport limits. The health server is returned so that shutdown can mark
// the service NOT_SERVING first.
func (s *Service) NewGRPCServer() (*grpc.Server, *health.Server) {
	srv := grpc.NewServer(append(s.grpcServerOptions(), // tracing, when on (tracing.go)
		grpc.UnaryInterceptor(s.UnaryInterceptor()),
		grpc.ForceServerCodecV2(newServerCodec()), // invalid UTF-8 is INVALID_ARGUMENT (codec.go)
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxSendMsgSize(MaxSendMsgSize),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		// Long-lived stream workers instead of a fresh goroutine per call:
		// their stacks stay grown, so SQLite's deep call chains stop paying
		// for stack growth (runtime.newstack/copystack) on every request.
		grpc.NumStreamWorkers(StreamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: 15 * time.Minute,
			Time:              2 * time.Minute,
			Timeout:           20 * time.Second,
		}),
	)...)
	pb.RegisterPaymentsServiceServer(srv, &PaymentsServer{Service: s})
	pb.RegisterStatusServiceServer(srv, &StatusServer{Service: s})
	pb.RegisterPayoutsServiceServer(srv, &PayoutsServer{Service: s})
	pb.RegisterInvoicesServiceServer(srv, &InvoicesServer{Service: s})
	pb.RegisterEventsServiceServer(srv, &EventsServer{Service: s})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("paymentd.v1.PaymentsService", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("paymentd.v1.PayoutsService", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("paymentd.v1.InvoicesService", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("paymentd.v1.EventsService", healthpb.HealthCheckResponse_SERVING)
	reflection.Register(srv)
	s.health.Store(hs)
	return srv, hs
}
