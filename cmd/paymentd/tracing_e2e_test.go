package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
)

// TestTraceOfOnePayment records the spans of one REST payment through a
// network provider in memory and checks their tree: the caller's
// traceparent is the root, and the HTTP request, the gateway's gRPC call,
// the RPC, its store writes, the provider call and the provider's HTTP
// request each hang below the one before, with traceparent sent on to the
// provider.
func TestTraceOfOnePayment(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	testTracerProvider = tp
	defer func() { testTracerProvider = nil }()

	fake := aikdatafake.New(pvAikdataToken)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '`+fake.URL()+`', credentials: {token: AIKDATA_TOKEN}}
routes:
  - {operation: payments, mode: live, currency: "*", connections: [aikdata-live]}
`, pvEnv)

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("POST", s.baseURL+"/v1/payments", strings.NewReader(`{"amount":1500,"currency":"EUR","payment_method":"pm_x"}`))
	req.Header.Set("Authorization", "Bearer "+s.liveKey)
	req.Header.Set("Idempotency-Key", "trace-1")
	req.Header.Set("Traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	requestID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || requestID == "" {
		t.Fatalf("POST /v1/payments: %d, request id %q", resp.StatusCode, requestID)
	}
	// The response can reach the test before the server spans around it
	// have ended (otelhttp and otelgrpc end them after the last byte is
	// sent), so wait until the outermost ones are exported.
	ended := func() bool {
		server := map[string]bool{}
		for _, sp := range exp.GetSpans() {
			if sp.SpanKind == trace.SpanKindServer {
				server[sp.Name] = true
			}
		}
		return server["POST rest"] && server["paymentd.v1.PaymentsService/CreatePayment"]
	}
	for deadline := time.Now().Add(10 * time.Second); !ended() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The provider got the trace.
	reqs := fake.Requests()
	if tpHdr := reqs[len(reqs)-1].Header.Get("Traceparent"); !strings.Contains(tpHdr, traceID) {
		t.Errorf("the provider got traceparent %q; want trace %s", tpHdr, traceID)
	}

	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, sp := range spans {
		if sp.SpanContext.TraceID().String() == traceID {
			byID[sp.SpanContext.SpanID()] = sp
		}
	}
	find := func(name string, kind trace.SpanKind, parent tracetest.SpanStub, root bool) tracetest.SpanStub {
		t.Helper()
		for _, sp := range byID {
			if sp.Name != name || sp.SpanKind != kind {
				continue
			}
			if root && sp.Parent.SpanID().String() == callerSpan && sp.Parent.IsRemote() {
				return sp
			}
			if !root && sp.Parent.SpanID() == parent.SpanContext.SpanID() {
				return sp
			}
		}
		var have []string
		for _, sp := range byID {
			have = append(have, sp.Name+" ("+sp.SpanKind.String()+")")
		}
		t.Fatalf("no %s span %q under the expected parent; spans of the trace: %v", kind, name, have)
		return tracetest.SpanStub{}
	}
	httpSpan := find("POST rest", trace.SpanKindServer, tracetest.SpanStub{}, true)
	client := find("paymentd.v1.PaymentsService/CreatePayment", trace.SpanKindClient, httpSpan, false)
	rpc := find("paymentd.v1.PaymentsService/CreatePayment", trace.SpanKindServer, client, false)
	prov := find("provider authorize", trace.SpanKindClient, rpc, false)
	find("HTTP POST", trace.SpanKindClient, prov, false)
	writes := 0
	for _, sp := range byID {
		if sp.Name == "store.write" && sp.Parent.SpanID() == rpc.SpanContext.SpanID() {
			writes++
		}
	}
	if writes < 2 {
		t.Errorf("%d store.write spans under the RPC; want the processing record and the outcome", writes)
	}
	attrs := map[string]string{}
	for _, kv := range prov.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["paymentd.provider.connection"] != "aikdata-live" || attrs["paymentd.provider.operation"] != "authorize" || attrs["paymentd.provider.outcome"] != "ok" {
		t.Errorf("provider span attributes %v; want connection aikdata-live, operation authorize, outcome ok", attrs)
	}
	for _, sp := range []tracetest.SpanStub{httpSpan, rpc} {
		found := false
		for _, kv := range sp.Attributes {
			found = found || (kv.Key == "paymentd.request_id" && kv.Value.Emit() == requestID)
		}
		if !found {
			t.Errorf("span %s has no paymentd.request_id %s", sp.Name, requestID)
		}
	}
	// No span holds a credential.
	for _, sp := range spans {
		for _, kv := range sp.Attributes {
			if v := kv.Value.Emit(); strings.Contains(v, pvAikdataToken) || strings.Contains(v, s.liveKey) {
				t.Errorf("span %s attribute %s holds a credential", sp.Name, kv.Key)
			}
		}
	}
}
