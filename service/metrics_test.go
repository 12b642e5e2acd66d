package service

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// metricRef matches the metric names a PromQL expression uses.
var metricRef = regexp.MustCompile(`\b(?:paymentd|grpc_server|go|process)_[a-z0-9_]+\b`)

// TestOpsDocsNameRealMetrics checks that every metric docs/alerts.yml and
// docs/grafana-dashboard.json name is one paymentd exports.
func TestOpsDocsNameRealMetrics(t *testing.T) {
	have := map[string]bool{}
	for _, n := range New(Config{}).MetricNames() {
		have[n] = true
	}
	if !have["paymentd_provider_calls_total"] || !have["grpc_server_handled_total"] || !have["grpc_server_handling_seconds"] {
		t.Fatalf("MetricNames is missing the basics: %v", have)
	}
	exists := func(name string) bool {
		if have[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && have[base] {
				return true
			}
		}
		return false
	}
	var exprs []string

	raw, err := os.ReadFile("../docs/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("docs/alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("docs/alerts.yml: a rule without alert name or expr: %+v", r)
			}
			exprs = append(exprs, r.Expr)
		}
	}

	raw, err = os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 15 {
		t.Fatalf("only %d expressions in the alert rules and dashboard", len(exprs))
	}
	named := 0
	for _, e := range exprs {
		for _, name := range metricRef.FindAllString(e, -1) {
			named++
			if !exists(name) {
				t.Errorf("%q names %s, which paymentd does not export", e, name)
			}
		}
	}
	if named < 15 {
		t.Errorf("only %d metric references found", named)
	}
}

// BenchmarkGRPCMetricsInterceptor measures what the Prometheus gRPC
// interceptor adds to one unary call (a handler that does nothing), the
// figure behind README "Running in production: what instrumentation costs".
func BenchmarkGRPCMetricsInterceptor(b *testing.B) {
	s := New(Config{})
	g := s.metrics.grpc
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		g.begin(pb.PaymentsService_GetPayment_FullMethodName).end(g, nil, start)
	}
}
