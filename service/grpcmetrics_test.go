package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestGRPCMetricsCountAsTheProviderDid checks the grpc_server_* series a
// unary call moves: started and received on entry, sent only on success,
// handled by code (a context error counted as grpc-go answers it), and one
// latency observation per call.
func TestGRPCMetricsCountAsTheProviderDid(t *testing.T) {
	g := newGRPCMetrics(prometheus.DefBuckets)
	reg := prometheus.NewRegistry()
	reg.MustRegister(g.collectors()...)
	for _, err := range []error{nil, nil, status.Error(codes.NotFound, "no"), context.DeadlineExceeded} {
		g.begin("/paymentd.v1.PaymentsService/GetPayment").end(g, err, time.Now())
	}
	const labels = `grpc_method="GetPayment",grpc_service="paymentd.v1.PaymentsService",grpc_type="unary"`
	want := `
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="DeadlineExceeded",` + labels + `} 1
grpc_server_handled_total{grpc_code="NotFound",` + labels + `} 1
grpc_server_handled_total{grpc_code="OK",` + labels + `} 2
# HELP grpc_server_msg_received_total Total number of RPC stream messages received on the server.
# TYPE grpc_server_msg_received_total counter
grpc_server_msg_received_total{` + labels + `} 4
# HELP grpc_server_msg_sent_total Total number of gRPC stream messages sent by the server.
# TYPE grpc_server_msg_sent_total counter
grpc_server_msg_sent_total{` + labels + `} 2
# HELP grpc_server_started_total Total number of RPCs started on the server.
# TYPE grpc_server_started_total counter
grpc_server_started_total{` + labels + `} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "grpc_server_handled_total",
		"grpc_server_msg_received_total", "grpc_server_msg_sent_total", "grpc_server_started_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(g.seconds); n != 1 {
		t.Fatalf("grpc_server_handling_seconds has %d series, want 1 (one method)", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "grpc_server_handling_seconds" {
			if c := mf.GetMetric()[0].GetHistogram().GetSampleCount(); c != 4 {
				t.Fatalf("grpc_server_handling_seconds_count = %d, want 4", c)
			}
		}
	}
}
