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
	MaxRecvMsgSize       = 1 << 20 // 1 MiB: no paymentd request is anywhere near
	MaxSendMsgSize       = 8 << 20
	MaxConcurrentStreams = 1000
)

// NewGRPCServer returns a gRPC server serving paymentd's services, health
// (grpc.health.v1) and reflection, with the interceptor chain and explicit
// transport limits. The health server is returned so that shutdown can mark
// the service NOT_SERVING first.
func (s *Service) NewGRPCServer() (*grpc.Server, *health.Server) {
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.UnaryInterceptors()...),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxSendMsgSize(MaxSendMsgSize),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: 15 * time.Minute,
			Time:              2 * time.Minute,
			Timeout:           20 * time.Second,
		}),
	)
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
