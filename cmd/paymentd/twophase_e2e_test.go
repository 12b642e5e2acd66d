package main

import (
	"strings"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
)

// TestNetworkProviderPaymentRecordedBeforeTheCall checks the write before
// a provider across the network is asked: while it is being asked the
// payment is listed as processing, its answer settles that same payment, a
// retry with the same key replays it, and a provider that fails before any
// money moved leaves a failed payment and frees the key for a retry.
func TestNetworkProviderPaymentRecordedBeforeTheCall(t *testing.T) {
	slow := aikdatafake.New(pvAikdataToken)
	defer slow.Close()
	s := pvStart(t, `
connections:
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '`+slow.URL()+`', credentials: {token: AIKDATA_TOKEN}}
  - {name: aikdata-down, provider: aikdata, mode: live, base_url: 'http://`+pvClosedAddr(t)+`', credentials: {token: AIKDATA_TOKEN}, max_attempts: 1}
routes:
  - {operation: payments, mode: live, currency: USD, connections: [aikdata-live]}
  - {operation: payments, mode: live, currency: EUR, connections: [aikdata-down]}
`, pvEnv, "--provider-timeout", "10s")

	slow.SetDelay(1500 * time.Millisecond)
	type answer struct {
		code int
		body map[string]any
	}
	done := make(chan answer, 1)
	go func() {
		code, body, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "np-1", `{"amount":2500,"currency":"USD","payment_method":"pm_x"}`)
		done <- answer{code, body}
	}()
	var processingID string
	for deadline := time.Now().Add(5 * time.Second); processingID == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, list, _ := s.restDo(t, "GET", "/v1/payments?status=processing", s.liveKey, "", "")
		if ps, _ := list["payments"].([]any); len(ps) == 1 {
			processingID = ps[0].(map[string]any)["id"].(string)
		}
	}
	if processingID == "" {
		t.Fatal("no processing payment was listed while the provider was being asked")
	}
	a := <-done
	if a.code != 200 || a.body["id"] != processingID || a.body["status"] != "succeeded" || a.body["provider"] != "aikdata-live" {
		t.Fatalf("answer %d %v; want the processing payment %s, succeeded", a.code, a.body, processingID)
	}
	slow.SetDelay(0)
	code, again, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "np-1", `{"amount":2500,"currency":"USD","payment_method":"pm_x"}`)
	if code != 200 || again["id"] != processingID || again["status"] != "succeeded" {
		t.Fatalf("replay %d %v; want the same payment, succeeded", code, again)
	}
	charges := 0
	for _, r := range slow.Requests() {
		if r.Method == "POST" && r.Path == "/charge" {
			charges++
		}
	}
	if charges != 1 {
		t.Errorf("the provider was asked to charge %d times; want once", charges)
	}

	// Nothing listens: no money moved, so the payment fails and the key is free.
	for attempt := 1; attempt <= 2; attempt++ {
		code, body, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "np-2", `{"amount":2500,"currency":"EUR","payment_method":"pm_x"}`)
		if e := restError(t, code, body); code != 503 || e.code != "provider_unavailable" {
			t.Fatalf("attempt %d with the provider down: %d %+v; want 503 provider_unavailable", attempt, code, e)
		}
		_, list, _ := s.restDo(t, "GET", "/v1/payments?status=failed", s.liveKey, "", "")
		ps, _ := list["payments"].([]any)
		if len(ps) != attempt {
			t.Fatalf("after attempt %d: %d failed payments; want %d (each attempt ran)", attempt, len(ps), attempt)
		}
		if p := ps[0].(map[string]any); p["failure_code"] != "provider_unavailable" || !strings.HasPrefix(p["id"].(string), "pay_") {
			t.Errorf("failed payment %v; want failure_code provider_unavailable", p)
		}
	}
	pvCheckLedger(t, s.db)
}
