package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
)

// scrape is one parse of /metrics: series name{labels} → value (counters,
// gauges, and histograms' _count).
type scrape map[string]float64

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: %d %s; want 200 in the Prometheus text format", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := scrape{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var v float64
			key := name
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				v, key = float64(m.GetHistogram().GetSampleCount()), name+"_count"
			default:
				continue
			}
			out[seriesKey(key, m.GetLabel())] = v
		}
	}
	return out
}

func seriesKey(name string, labels []*dto.LabelPair) string {
	var ls []string
	for _, l := range labels {
		ls = append(ls, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

// TestMetricsScrape drives a payment, its replay, a decline, a provider
// timeout and a webhook delivery through a network provider, and checks
// that every counter moved by exactly what happened.
func TestMetricsScrape(t *testing.T) {
	fake := aikdatafake.New(pvAikdataToken)
	defer fake.Close()
	var delivered atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		w.WriteHeader(200)
	}))
	defer rcv.Close()
	s := pvStart(t, `
connections:
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '`+fake.URL()+`', credentials: {token: AIKDATA_TOKEN}, max_attempts: 1}
routes:
  - {operation: payments, mode: live, currency: "*", connections: [aikdata-live]}
`, pvEnv, append([]string{"--provider-timeout", "500ms", "--reconcile-interval", "1h"}, whFast...)...)
	whCreateEndpoint(t, s.testServer, s.liveKey, rcv.URL, "payment.succeeded")

	before := scrapeMetrics(t, s.baseURL+"/metrics")
	ctx := withKey(context.Background(), s.liveKey)
	req := &pb.CreatePaymentRequest{Amount: 1500, Currency: "EUR", PaymentMethod: "pm_x"}
	if p, err := s.payments.CreatePayment(withIdem(ctx, "m-1"), req); err != nil || p.Payment.Status != "succeeded" {
		t.Fatalf("payment: %v, %v", p, err)
	}
	if p, err := s.payments.CreatePayment(withIdem(ctx, "m-1"), req); err != nil || p.Payment.Status != "succeeded" {
		t.Fatalf("replay: %v, %v", p, err)
	}
	fake.DeclineNext(1)
	if _, err := s.payments.CreatePayment(withIdem(ctx, "m-2"), req); grpcError(t, err).code != "card_declined" {
		t.Fatalf("decline: %v", err)
	}
	fake.SetDelay(3 * time.Second)
	if p, err := s.payments.CreatePayment(withIdem(ctx, "m-3"), req); err != nil || p.Payment.Status != "unknown" {
		t.Fatalf("provider timeout: %v, %v; want a payment in status unknown", p, err)
	}
	fake.SetDelay(0)
	// The one payment.succeeded event is delivered to the endpoint.
	deadline := time.Now().Add(10 * time.Second)
	for delivered.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	var after scrape
	for {
		after = scrapeMetrics(t, s.baseURL+"/metrics")
		if after[`paymentd_webhook_deliveries_total{outcome=delivered}`] > before[`paymentd_webhook_deliveries_total{outcome=delivered}`] || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	create := `grpc_method=CreatePayment,grpc_service=paymentd.v1.PaymentsService,grpc_type=unary`
	want := map[string]float64{
		`grpc_server_handled_total{grpc_code=OK,` + create + `}`:                                      3, // payment, replay, unknown
		`grpc_server_handled_total{grpc_code=FailedPrecondition,` + create + `}`:                      1, // the decline
		`grpc_server_handling_seconds_count{` + create + `}`:                                          4,
		`paymentd_provider_calls_total{connection=aikdata-live,operation=authorize,outcome=ok}`:       1,
		`paymentd_provider_calls_total{connection=aikdata-live,operation=authorize,outcome=declined}`: 1,
		`paymentd_provider_calls_total{connection=aikdata-live,operation=authorize,outcome=unknown}`:  1,
		`paymentd_provider_call_duration_seconds_count{connection=aikdata-live,operation=authorize}`:  3,
		`paymentd_state_changes_total{kind=payment,status=processing}`:                                3,
		`paymentd_state_changes_total{kind=payment,status=succeeded}`:                                 1,
		`paymentd_state_changes_total{kind=payment,status=failed}`:                                    1,
		`paymentd_state_changes_total{kind=payment,status=unknown}`:                                   1,
		`paymentd_idempotency_requests_total{result=replay}`:                                          1,
		`paymentd_idempotency_requests_total{result=conflict}`:                                        0,
		`paymentd_idempotency_requests_total{result=mismatch}`:                                        0,
		`paymentd_webhook_deliveries_total{outcome=delivered}`:                                        1,
		`paymentd_webhook_deliveries_total{outcome=retrying}`:                                         0,
		`paymentd_rate_limited_requests_total{}`:                                                      0,
		`paymentd_store_write_errors_total{}`:                                                         0,
	}
	for series, d := range want {
		if _, ok := after[series]; !ok {
			t.Errorf("%s is missing from /metrics", series)
			continue
		}
		if got := after[series] - before[series]; got != d {
			t.Errorf("%s moved by %v; want %v", series, got, d)
		}
	}
	if after[`paymentd_webhook_deliveries_pending{}`] != 0 || after[`paymentd_webhook_oldest_pending_age_seconds{}`] != 0 {
		t.Errorf("webhook backlog after delivery: %v pending, oldest %vs; want 0, 0",
			after[`paymentd_webhook_deliveries_pending{}`], after[`paymentd_webhook_oldest_pending_age_seconds{}`])
	}
	if v, ok := after[`paymentd_operator_items_open{}`]; !ok || v != 0 {
		t.Errorf("paymentd_operator_items_open = %v (present %v); want 0", v, ok)
	}
	if after[`paymentd_store_commit_duration_seconds_count{}`] <= before[`paymentd_store_commit_duration_seconds_count{}`] {
		t.Error("paymentd_store_commit_duration_seconds did not count the commits")
	}
	b := build()
	if k := fmt.Sprintf("paymentd_build_info{go_version=%s,revision=%s,version=%s}", b.GoVersion, b.Revision, b.String()); after[k] != 1 {
		t.Errorf("%s missing; have %v", k, keysWithPrefix(after, "paymentd_build_info"))
	}
	// No label holds an id or a key.
	for series := range after {
		for _, bad := range []string{"pay_", "acct_", "key_", "ak_live_", "evt_", pvAikdataToken} {
			if strings.Contains(series, bad) {
				t.Errorf("series %s has a label with an id or a secret (%s)", series, bad)
			}
		}
	}
}

func keysWithPrefix(s scrape, prefix string) []string {
	var out []string
	for k := range s {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// TestInstrumentationOff checks the measurement aid: with
// --instrumentation=off a payment, over gRPC and REST, moves none of the
// per-request series, while /metrics still answers and the payment is made
// as with it on.
func TestInstrumentationOff(t *testing.T) {
	s := startServer(t, testDB(t), "--instrumentation", "off")
	ctx := withKey(context.Background(), s.key)
	if _, err := s.payments.CreatePayment(withIdem(ctx, "off-1"), visa(2000)); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := s.restDo(t, "POST", "/v1/payments", s.key, "off-2", `{"amount":2000,"currency":"USD","payment_method":"pm_card_visa"}`); code != 200 {
		t.Fatalf("REST payment: %d %v", code, body)
	}
	got := scrapeMetrics(t, s.baseURL+"/metrics")
	for _, prefix := range []string{"grpc_server_handled_total{", "paymentd_http_requests_total{", "paymentd_provider_calls_total{",
		"paymentd_state_changes_total{", "paymentd_store_commit_duration_seconds_count{"} {
		for _, k := range keysWithPrefix(got, prefix) {
			if got[k] != 0 {
				t.Errorf("with --instrumentation=off, %s = %v; want 0", k, got[k])
			}
		}
	}
	if got["paymentd_build_info{"+"go_version="+build().GoVersion+",revision="+build().Revision+",version="+build().String()+"}"] != 1 {
		t.Errorf("paymentd_build_info missing with --instrumentation=off: %v", keysWithPrefix(got, "paymentd_build_info"))
	}
}
