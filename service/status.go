package service

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
)

// StatusServer implements paymentd.v1.StatusService.
type StatusServer struct {
	pb.UnimplementedStatusServiceServer
	*Service
}

// Component states.
const (
	Operational = "operational"
	Degraded    = "degraded"
	Down        = "down"
)

// GetStatus measures the database and asks each provider, then reports the
// worst component state as the service's.
func (s *StatusServer) GetStatus(ctx context.Context, _ *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	comps := map[string]*pb.ComponentStatus{
		"api":            {Status: Operational},
		"authentication": {Status: Operational},
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := s.store.Ping(dctx)
	cancel()
	db := &pb.ComponentStatus{Status: Operational, ResponseTimeMs: float64(time.Since(start).Microseconds()) / 1000}
	if degraded, reason, since := s.store.WriteHealth(); degraded && err == nil {
		db.Status, db.Message = Degraded, reason+"; since "+since.Format(time.RFC3339)
	}
	if err != nil {
		db.Status, db.Message = Down, "the database did not answer a read"
		comps["authentication"] = &pb.ComponentStatus{Status: Down, Message: "API keys are stored in the database"}
	}
	comps["database"] = db
	if prov := s.cfg.TestProvider; prov != nil {
		c := &pb.ComponentStatus{Status: Operational}
		if chk, ok := prov.(providers.StatusChecker); ok {
			pstart := time.Now()
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := chk.CheckStatus(pctx); err != nil {
				c.Status, c.Message = Degraded, "the provider did not answer its status check"
			}
			cancel()
			c.ResponseTimeMs = float64(time.Since(pstart).Microseconds()) / 1000
		}
		comps["provider:"+providerName(prov)] = c
	}
	if err == nil {
		comps["operator_items"] = s.operatorComponent(ctx) // what paymentd could not settle on its own (boundary.go)
	}
	for name, c := range s.conns.connectionComponents() { // paymentd.yaml's connections (routing.go)
		comps[name] = c
	}
	overall := Operational
	for _, c := range comps {
		switch {
		case c.Status == Down:
			overall = Down
		case c.Status == Degraded && overall == Operational:
			overall = Degraded
		}
	}
	return &pb.GetStatusResponse{
		Service: "paymentd", Status: overall, Version: s.cfg.Version, Environment: s.cfg.Environment,
		Uptime: int64(time.Since(s.started).Seconds()), Timestamp: timestamppb.Now(), Components: comps,
	}, nil
}
