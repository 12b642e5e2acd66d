package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers/aspayds/aspaydsfake"
	"github.com/paymentd/paymentd/providers/sandbox"
)

// End-to-end tests of inbound aspayds webhooks (invoices and payouts), of
// the reconciler polling provider-served invoices and payouts, and of the
// hosted page refusing invoices a provider serves. paymentd runs with a
// paymentd.yaml whose aspayds connection points at the in-repo fake.

// pwConfig is a live aspayds connection serving BDT invoices and payouts;
// options are added to the connection's options.
func pwConfig(fake *aspaydsfake.Server, options string) string {
	return `
connections:
  - name: aspayds-live
    provider: aspayds
    mode: live
    base_url: ` + fake.URL() + `
    credentials: {api_key: ASPAYDS_KEY, api_secret: ASPAYDS_SECRET}
    options: {currency: BDT` + options + `}
routes:
  - {operation: invoices, mode: live, currency: BDT, connections: [aspayds-live]}
  - {operation: payouts, mode: live, currency: BDT, connections: [aspayds-live]}
`
}

// pwPost posts a provider webhook to paymentd as the provider would.
func pwPost(t *testing.T, s *pvServer, connection string, header http.Header, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", s.baseURL+"/v1/provider-webhooks/"+connection, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// pwWebhook is the aspayds webhook for the fake's object, sent at at.
func pwWebhook(t *testing.T, fake *aspaydsfake.Server, event, reference string, at time.Time) (http.Header, []byte) {
	t.Helper()
	h, body, err := fake.Webhook(event, reference, at)
	if err != nil {
		t.Fatal(err)
	}
	return h, body
}

// pwListed reads an object through its list (GET /v1/invoices or
// /v1/payouts), which shows what paymentd has recorded without asking the
// provider: what webhooks and the reconciler did is visible there.
func pwListed(t *testing.T, s *pvServer, key, kind, id string) map[string]any {
	t.Helper()
	code, body, _ := s.restDo(t, "GET", "/v1/"+kind+"?page_size=100", key, "", "")
	if code != 200 {
		t.Fatalf("GET /v1/%s: %d %v", kind, code, body)
	}
	list, _ := body[kind].([]any)
	for _, x := range list {
		if m := x.(map[string]any); m["id"] == id {
			return m
		}
	}
	t.Fatalf("GET /v1/%s does not list %s: %v", kind, id, body)
	return nil
}

// pwEventTypes lists the types of an object's events, oldest first.
func pwEventTypes(t *testing.T, s *pvServer, key, objectID string) []string {
	t.Helper()
	code, body, _ := s.restDo(t, "GET", "/v1/events?page_size=100&object_id="+objectID, key, "", "")
	if code != 200 {
		t.Fatalf("GET /v1/events?object_id=%s: %d %v", objectID, code, body)
	}
	list, _ := body["events"].([]any)
	var out []string
	for _, x := range list {
		out = append(out, x.(map[string]any)["type"].(string))
	}
	slices.Reverse(out)
	return out
}

// pwGets counts the fake's GET requests for path.
func pwGets(fake *aspaydsfake.Server, path string) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Method == "GET" && r.Path == path {
			n++
		}
	}
	return n
}

// pwWaitListed polls an object's list entry until its status is want.
func pwWaitListed(t *testing.T, s *pvServer, key, kind, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := pwListed(t, s, key, kind, id)
		if got["status"] == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s is %v after 20s; want status %s", kind, id, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProviderWebhookAspaydsInvoicePaid: aspayds' payment.completed webhook
// carries no signature, so paymentd checks its timestamp, confirms it with
// GET /payment/{id}, and only then records the payment (receipt, ledger,
// invoice.paid). A webhook whose GET disagrees, a duplicate, a stale or
// future timestamp and a header that contradicts the body change nothing.
func TestProviderWebhookAspaydsInvoicePaid(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	// The reconciler waits an hour: only webhooks change anything here.
	s := pvStart(t, pwConfig(fake, ""), pvEnv, "--reconcile-schedule", "1h")
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "pw-1",
		`{"amount":250000,"currency":"BDT","customer":{"name":"John Doe"},"transaction_reference":"TRX-WH-1","callback_url":"https://shop.example/callback"}`)
	if code != 200 || inv["provider"] != "aspayds-live" {
		t.Fatalf("invoice through aspayds: %d %v", code, inv)
	}
	id := inv["id"].(string)
	ref := strings.TrimPrefix(inv["payment_url"].(string), fake.URL()+"/methods/")
	getPath := "/payment/" + ref
	unchanged := func(what, status string, paid int64, events ...string) {
		t.Helper()
		got := pwListed(t, s, s.liveKey, "invoices", id)
		if got["status"] != status || pvNumber(t, got["amount_paid"]) != paid {
			t.Errorf("%s: invoice %s with amount_paid %v; want %s with %d", what, got["status"], got["amount_paid"], status, paid)
		}
		if got := pwEventTypes(t, s, s.liveKey, id); !slices.Equal(got, events) {
			t.Errorf("%s: events %v; want %v", what, got, events)
		}
		if avail, _ := pvBalance(t, s, "BDT"); avail != paid {
			t.Errorf("%s: available BDT %d; want %d", what, avail, paid)
		}
	}

	// Not paid yet: the webhook's claim is not borne out by aspayds' GET.
	h, body := pwWebhook(t, fake, "payment.completed", ref, time.Now())
	gets := pwGets(fake, getPath)
	code, out := pwPost(t, s, "aspayds-live", h, body)
	if code != 200 || out["outcome"] != "unconfirmed" || out["object_id"] != id {
		t.Errorf("webhook before payment: %d %v; want 200 unconfirmed for %s", code, out, id)
	}
	if pwGets(fake, getPath) != gets+1 {
		t.Errorf("the webhook was not confirmed with GET %s", getPath)
	}
	unchanged("unconfirmed webhook", "open", 0, "invoice.created")

	// Stale, future and self-contradicting webhooks are refused before any call.
	if err := fake.PayInvoice("TRX-WH-1", 250000); err != nil {
		t.Fatal(err)
	}
	gets = pwGets(fake, getPath)
	for _, tc := range []struct {
		name string
		at   time.Time
		edit func(http.Header)
	}{
		{"10 minutes old", time.Now().Add(-10 * time.Minute), nil},
		{"10 minutes ahead", time.Now().Add(10 * time.Minute), nil},
		{"no timestamp", time.Now(), func(h http.Header) { h.Del("X-Webhook-Timestamp") }},
		{"header names another event", time.Now(), func(h http.Header) { h.Set("X-Webhook-Event", "payout.completed") }},
	} {
		h, body := pwWebhook(t, fake, "payment.completed", ref, tc.at)
		if tc.edit != nil {
			tc.edit(h)
		}
		code, out := pwPost(t, s, "aspayds-live", h, body)
		if code != 401 || pvJSON(t, out, "error", "code") != "signature_invalid" {
			t.Errorf("%s: %d %v; want 401 signature_invalid", tc.name, code, out)
		}
	}
	if n := pwGets(fake, getPath); n != gets {
		t.Errorf("refused webhooks made %d GET calls; want none", n-gets)
	}
	unchanged("refused webhooks", "open", 0, "invoice.created")

	// The real webhook: confirmed by GET, recorded once.
	h, body = pwWebhook(t, fake, "payment.completed", ref, time.Now())
	code, out = pwPost(t, s, "aspayds-live", h, body)
	if code != 200 || out["outcome"] != "applied" || out["object_id"] != id {
		t.Fatalf("webhook after payment: %d %v; want 200 applied to %s", code, out, id)
	}
	if pwGets(fake, getPath) != gets+1 {
		t.Errorf("the webhook was applied without GET %s", getPath)
	}
	unchanged("applied webhook", "paid", 250000, "invoice.created", "invoice.paid")

	// The same delivery again: 2xx, nothing changes, no provider call.
	gets = pwGets(fake, getPath)
	code, out = pwPost(t, s, "aspayds-live", h, body)
	if code != 200 || out["outcome"] != "duplicate" {
		t.Errorf("duplicate webhook: %d %v; want 200 duplicate", code, out)
	}
	if pwGets(fake, getPath) != gets {
		t.Error("a duplicate webhook called aspayds")
	}
	// A later delivery of the same event (new timestamp): confirmed, already recorded.
	h2, body2 := pwWebhook(t, fake, "payment.completed", ref, time.Now().Add(time.Second))
	code, out = pwPost(t, s, "aspayds-live", h2, body2)
	if code != 200 || out["outcome"] != "ignored" {
		t.Errorf("re-sent webhook: %d %v; want 200 ignored", code, out)
	}
	unchanged("duplicates", "paid", 250000, "invoice.created", "invoice.paid")

	// Webhooks for objects paymentd does not have are acknowledged and ignored.
	unknown := []byte(`{"event":"payment.completed","timestamp":"2026-02-09T21:30:00.000Z","data":{"invoice_id":"ATINV999","transaction_reference":"NOPE","status":"completed"}}`)
	code, out = pwPost(t, s, "aspayds-live", http.Header{"X-Webhook-Event": {"payment.completed"},
		"X-Webhook-Timestamp": {fmt.Sprint(time.Now().Unix())}}, unknown)
	if code != 200 || out["outcome"] != "ignored" {
		t.Errorf("webhook for an unknown invoice: %d %v; want 200 ignored", code, out)
	}
	// An unconfigured connection name is not found.
	if code, out = pwPost(t, s, "aspayds-other", h2, body2); code != 404 {
		t.Errorf("webhook for an unconfigured connection: %d %v; want 404", code, out)
	}
	pvCheckLedger(t, s.db)
}

// TestProviderWebhookAspaydsPayouts: aspayds sends its payout webhooks to
// the connection's payout_callback_url, paymentd's webhook URL; each is
// confirmed with GET /payout/{id} and moves the payout forward with its
// ledger movement: completed pays the reservation out, rejected releases
// it. Late and duplicate webhooks change nothing.
func TestProviderWebhookAspaydsPayouts(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	addr := pvClosedAddr(t) // paymentd's HTTP address, known before it starts, for the callback URL
	s := pvStart(t, pwConfig(fake, ", payout_callback_url: 'http://"+addr+"/v1/provider-webhooks/aspayds-live'"), pvEnv,
		"--http-addr", addr, "--reconcile-schedule", "1h")
	pvSetLiveMethods(t, s.db, `{"payout_methods":[{"id":"1","name":"bKash","type":"mobile_banking","currency":"BDT",
		"min_amount":10000,"max_amount":5000000,"fee":{"fixed_amount":0,"basis_points":0},"account_format":"01XXXXXXXXX"}]}`)
	// Collect 2000 taka through an invoice, read back from aspayds.
	if code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "pwp-inv", `{"amount":200000,"currency":"BDT","customer":{"name":"A"},"transaction_reference":"COLLECT2","callback_url":"https://shop.example/cb"}`); code != 200 {
		t.Fatalf("invoice: %d %v", code, inv)
	}
	_ = fake.PayInvoice("COLLECT2", 200000)
	if code, got, _ := s.restDo(t, "GET", "/v1/invoices/COLLECT2", s.liveKey, "", ""); code != 200 || got["status"] != "paid" {
		t.Fatalf("invoice after payment: %d %v", code, got)
	}
	fake.DeliverWebhooks(true)

	code, po, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "pwp-1", `{"payout_method_id":"1","amount":50000,"recipient_name":"John Doe","recipient_account":"01712345678","transaction_reference":"WH-WD-1"}`)
	if code != 200 || po["status"] != "pending" || po["provider"] != "aspayds-live" {
		t.Fatalf("payout through aspayds: %d %v", code, po)
	}
	var sent map[string]any
	_ = json.Unmarshal(fake.Requests()[len(fake.Requests())-1].Body, &sent)
	if sent["callback_url"] != "http://"+addr+"/v1/provider-webhooks/aspayds-live" {
		t.Errorf("aspayds got callback_url %v; want paymentd's webhook URL", sent["callback_url"])
	}
	id := po["id"].(string)
	if avail, reserved := pvBalance(t, s, "BDT"); avail != 150000 || reserved != 50000 {
		t.Errorf("after the payout request: available %d reserved %d; want 150000 and 50000", avail, reserved)
	}
	// aspayds processes and completes it; each webhook is answered 2xx (the fake fails otherwise).
	if err := fake.SettlePayout(po["id"].(string), "processing"); err != nil {
		t.Fatalf("payout.processing webhook: %v", err)
	}
	if got := pwListed(t, s, s.liveKey, "payouts", id); got["status"] != "processing" {
		t.Errorf("after payout.processing: %v; want processing", got)
	}
	gets := len(fake.Requests())
	if err := fake.SettlePayout(po["id"].(string), "completed"); err != nil {
		t.Fatalf("payout.completed webhook: %v", err)
	}
	got := pwListed(t, s, s.liveKey, "payouts", id)
	if got["status"] != "completed" || got["processed_at"] == nil {
		t.Errorf("after payout.completed: %v; want completed with processed_at", got)
	}
	confirmed := false
	for _, r := range fake.Requests()[gets:] {
		confirmed = confirmed || (r.Method == "GET" && strings.HasPrefix(r.Path, "/payout/ATPAY"))
	}
	if !confirmed {
		t.Error("payout.completed was applied without GET /payout/{id}")
	}
	if avail, reserved := pvBalance(t, s, "BDT"); avail != 150000 || reserved != 0 {
		t.Errorf("after completion: available %d reserved %d; want 150000 and 0", avail, reserved)
	}
	want := []string{"payout.created", "payout.processing", "payout.completed"}
	if evs := pwEventTypes(t, s, s.liveKey, id); !slices.Equal(evs, want) {
		t.Errorf("payout events %v; want %v", evs, want)
	}
	// A late payout.processing, and the completion sent again, change
	// nothing. (aspayds' event ids are type, object and timestamp: these
	// are later deliveries, not the same ones.)
	h, body := pwWebhook(t, fake, "payout.processing", po["id"].(string), time.Now().Add(2*time.Second))
	if code, out := pwPost(t, s, "aspayds-live", h, body); code != 200 || out["outcome"] != "unconfirmed" {
		t.Errorf("late payout.processing: %d %v; want 200 unconfirmed (aspayds says completed)", code, out)
	}
	h, body = pwWebhook(t, fake, "payout.completed", po["id"].(string), time.Now().Add(3*time.Second))
	if code, out := pwPost(t, s, "aspayds-live", h, body); code != 200 || out["outcome"] != "ignored" {
		t.Errorf("payout.completed again: %d %v; want 200 ignored", code, out)
	}
	if code, out := pwPost(t, s, "aspayds-live", h, body); code != 200 || out["outcome"] != "duplicate" {
		t.Errorf("the same delivery twice: %d %v; want 200 duplicate", code, out)
	}
	if evs := pwEventTypes(t, s, s.liveKey, id); !slices.Equal(evs, want) {
		t.Errorf("payout events after late webhooks %v; want %v", evs, want)
	}

	// A payout aspayds rejects: the reservation is released.
	code, po2, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "pwp-2", `{"payout_method_id":"1","amount":30000,"recipient_name":"Jane","recipient_account":"01812345678","transaction_reference":"WH-WD-2"}`)
	if code != 200 || po2["status"] != "pending" {
		t.Fatalf("second payout: %d %v", code, po2)
	}
	if avail, reserved := pvBalance(t, s, "BDT"); avail != 120000 || reserved != 30000 {
		t.Errorf("after the second request: available %d reserved %d; want 120000 and 30000", avail, reserved)
	}
	if err := fake.SettlePayout(po2["id"].(string), "rejected"); err != nil {
		t.Fatalf("payout.rejected webhook: %v", err)
	}
	got = pwListed(t, s, s.liveKey, "payouts", po2["id"].(string))
	if got["status"] != "rejected" || got["failure_code"] != "provider_rejected" {
		t.Errorf("after payout.rejected: %v; want rejected with failure_code provider_rejected", got)
	}
	if avail, reserved := pvBalance(t, s, "BDT"); avail != 150000 || reserved != 0 {
		t.Errorf("after the rejection: available %d reserved %d; want 150000 and 0", avail, reserved)
	}
	pvCheckLedger(t, s.db)
}

// TestProviderReconcilerSettlesInvoiceAndPayout: without any webhook, the
// reconciler polls the aspayds invoice (partial, then full payment) and the
// payouts (completed, rejected) on its schedule until they settle, then
// stops asking about the payouts (the paid invoice, on its schedule, for a
// week after its expiry).
func TestProviderReconcilerSettlesInvoiceAndPayout(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	s := pvStart(t, pwConfig(fake, ""), pvEnv, "--reconcile-schedule", "150ms,100ms", "--reconcile-interval", "20ms",
		"--provider-timeout", "300ms")
	pvSetLiveMethods(t, s.db, `{"payout_methods":[{"id":"1","name":"bKash","type":"mobile_banking","currency":"BDT",
		"min_amount":10000,"max_amount":5000000,"fee":{"fixed_amount":0,"basis_points":0},"account_format":"01XXXXXXXXX"}]}`)
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "rc-inv", `{"amount":300000,"currency":"BDT","customer":{"name":"A"},"transaction_reference":"RECON-1","callback_url":"https://shop.example/cb"}`)
	if code != 200 {
		t.Fatalf("invoice: %d %v", code, inv)
	}
	id := inv["id"].(string)
	ref := strings.TrimPrefix(inv["payment_url"].(string), fake.URL()+"/methods/")
	_ = fake.PayInvoice("RECON-1", 100000)
	got := pwWaitListed(t, s, s.liveKey, "invoices", id, "partially_paid")
	if pvNumber(t, got["amount_paid"]) != 100000 {
		t.Errorf("partially paid invoice %v; want amount_paid 100000", got)
	}
	_ = fake.PayInvoice("RECON-1", 200000)
	got = pwWaitListed(t, s, s.liveKey, "invoices", id, "paid")
	if pvNumber(t, got["amount_paid"]) != 300000 {
		t.Errorf("paid invoice %v; want amount_paid 300000", got)
	}
	want := []string{"invoice.created", "invoice.partially_paid", "invoice.paid"}
	if evs := pwEventTypes(t, s, s.liveKey, id); !slices.Equal(evs, want) {
		t.Errorf("invoice events %v; want %v", evs, want)
	}

	code, po, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "rc-po-1", `{"payout_method_id":"1","amount":100000,"recipient_name":"John Doe","recipient_account":"01712345678","transaction_reference":"RECON-WD-1"}`)
	if code != 200 || po["status"] != "pending" {
		t.Fatalf("payout: %d %v", code, po)
	}
	code, po2, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "rc-po-2", `{"payout_method_id":"1","amount":50000,"recipient_name":"Jane","recipient_account":"01812345678","transaction_reference":"RECON-WD-2"}`)
	if code != 200 || po2["status"] != "pending" {
		t.Fatalf("second payout: %d %v", code, po2)
	}
	_ = fake.SettlePayout(po["id"].(string), "completed")
	_ = fake.SettlePayout(po2["id"].(string), "rejected")
	pwWaitListed(t, s, s.liveKey, "payouts", po["id"].(string), "completed")
	pwWaitListed(t, s, s.liveKey, "payouts", po2["id"].(string), "rejected")
	if evs := pwEventTypes(t, s, s.liveKey, po["id"].(string)); !slices.Equal(evs, []string{"payout.created", "payout.completed"}) {
		t.Errorf("payout events %v; want payout.created, payout.completed", evs)
	}
	if avail, reserved := pvBalance(t, s, "BDT"); avail != 200000 || reserved != 0 {
		t.Errorf("balance: available %d reserved %d; want 200000 (3000 collected − 1000 paid out) and 0", avail, reserved)
	}
	pvCheckLedger(t, s.db)

	// Settled payouts leave the schedule: no more status calls about them.
	// The paid invoice stays on it for a week after its expiry (money may
	// still reach aspayds), asked on the schedule, not at every pass.
	invGets, gets := pwGets(fake, "/payment/"+ref), len(fake.Requests())
	time.Sleep(500 * time.Millisecond) // 25 reconciler passes at 20ms, schedule 100ms
	n := pwGets(fake, "/payment/"+ref) - invGets
	if n > 6 {
		t.Errorf("the reconciler asked about the paid invoice %d more times in 500ms; want at most 6 (every 100ms)", n)
	}
	if m := len(fake.Requests()) - gets; m != n {
		t.Errorf("the reconciler made %d more calls after everything settled, %d of them not about the paid invoice", m, m-n)
	}
}

// TestHostedPageRefusesProviderInvoices: a test-mode invoice routed to a
// real provider is paid at that provider's page, so paymentd's /pay/{id}
// answers 404 for it, as for live invoices; sandbox invoices keep their
// page. The sandbox's webhooks stay reachable as "sandbox" beside a
// configured test connection's.
func TestHostedPageRefusesProviderInvoices(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - name: aspayds-test
    provider: aspayds
    mode: test
    base_url: `+fake.URL()+`
    credentials: {api_key: ASPAYDS_KEY, api_secret: ASPAYDS_SECRET}
routes:
  - {operation: invoices, mode: test, currency: BDT, connections: [aspayds-test]}
`, pvEnv)
	testKey, _ := createKey(t, s.db, "test", "read,write", "")
	code, routed, _ := s.restDo(t, "POST", "/v1/invoices", testKey, "hp-1",
		`{"amount":10000,"currency":"BDT","customer":{"name":"A"},"transaction_reference":"HP-1","callback_url":"https://shop.example/cb"}`)
	if code != 200 || routed["provider"] != "aspayds-test" || routed["livemode"] == true ||
		!strings.HasPrefix(routed["payment_url"].(string), fake.URL()) {
		t.Fatalf("test invoice routed to aspayds: %d %v", code, routed)
	}
	code, local, _ := s.restDo(t, "POST", "/v1/invoices", testKey, "hp-2",
		`{"amount":1000,"currency":"USD","transaction_reference":"HP-2","callback_url":"https://shop.example/cb"}`)
	if code != 200 || local["provider"] != "sandbox" || local["payment_url"] != s.baseURL+"/pay/"+local["id"].(string) {
		t.Fatalf("sandbox test invoice: %d %v", code, local)
	}
	page := func(method, id string) (int, string) {
		t.Helper()
		var rd io.Reader
		if method == "POST" {
			rd = strings.NewReader("action=pay")
		}
		req, _ := http.NewRequest(method, s.baseURL+"/pay/"+id, rd)
		if rd != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := page("GET", routed["id"].(string)); code != 404 || !strings.Contains(body, "Invoice not found") {
		t.Errorf("GET /pay/ of the aspayds test invoice: %d; want the 404 page", code)
	}
	if code, _ := page("POST", routed["id"].(string)); code != 404 {
		t.Errorf("POST /pay/ of the aspayds test invoice: %d; want 404", code)
	}
	if got := pwListed(t, s, testKey, "invoices", routed["id"].(string)); got["status"] != "open" {
		t.Errorf("the aspayds test invoice after the page refused it: %v; want open", got)
	}
	if code, body := page("GET", local["id"].(string)); code != 200 || !strings.Contains(body, `id="reference">HP-2<`) {
		t.Errorf("GET /pay/ of the sandbox invoice: %d; want its payment page", code)
	}
	// The test connection takes its own webhooks; the sandbox keeps its name.
	_ = fake.PayInvoice("HP-1", 10000)
	h, body := pwWebhook(t, fake, "payment.completed", "HP-1", time.Now())
	if code, out := pwPost(t, s, "aspayds-test", h, body); code != 200 || out["outcome"] != "applied" {
		t.Errorf("webhook to the test connection: %d %v; want 200 applied", code, out)
	}
	if got := pwListed(t, s, testKey, "invoices", routed["id"].(string)); got["status"] != "paid" {
		t.Errorf("the aspayds test invoice after its webhook: %v; want paid", got)
	}
	sb := []byte(`{"id":"sbevt_x","type":"payment.captured","data":{"object":"payment","payment_id":"pay_nosuch","status":"captured"}}`)
	code, out := pwPost(t, s, "sandbox", http.Header{sandbox.WebhookSignatureHeader: {sandbox.SignWebhook(sandbox.DefaultWebhookSecret, time.Now(), sb)}}, sb)
	if code != 200 || out["outcome"] != "ignored" {
		t.Errorf("sandbox webhook with a configuration: %d %v; want 200 ignored", code, out)
	}
}

// TestProviderAspaydsInvoiceCallbackURL: with invoice_callback_url set to
// paymentd's webhook URL, aspayds' payment.completed reaches paymentd (POST)
// and so does the customer's browser (GET), which paymentd sends on to the
// invoice's own callback_url after confirming the payment with aspayds.
func TestProviderAspaydsInvoiceCallbackURL(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	addr := pvClosedAddr(t)
	hook := "http://" + addr + "/v1/provider-webhooks/aspayds-live"
	s := pvStart(t, pwConfig(fake, ", invoice_callback_url: '"+hook+"'"), pvEnv, "--http-addr", addr, "--reconcile-schedule", "1h")
	fake.DeliverWebhooks(true)
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "cb-1",
		`{"amount":120000,"currency":"BDT","customer":{"name":"John Doe"},"transaction_reference":"CB-1","callback_url":"https://shop.example/orders/7?lang=bn"}`)
	if code != 200 {
		t.Fatalf("invoice: %d %v", code, inv)
	}
	var sent map[string]any
	_ = json.Unmarshal(fake.Requests()[len(fake.Requests())-1].Body, &sent)
	if sent["callback_url"] != hook {
		t.Errorf("aspayds got callback_url %v; want %s", sent["callback_url"], hook)
	}
	id := inv["id"].(string)
	ref := strings.TrimPrefix(inv["payment_url"].(string), fake.URL()+"/methods/")
	if err := fake.PayInvoice("CB-1", 120000); err != nil { // the fake fails unless paymentd answers 2xx
		t.Fatalf("payment.completed webhook: %v", err)
	}
	if got := pwListed(t, s, s.liveKey, "invoices", id); got["status"] != "paid" || pvNumber(t, got["amount_paid"]) != 120000 {
		t.Fatalf("after aspayds' webhook: %v; want paid 120000", got)
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	back := func(query string) (int, string) {
		t.Helper()
		resp, err := noRedirect.Get(s.baseURL + "/v1/provider-webhooks/aspayds-live?" + query)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	code, loc := back("status=success&invoice_id=" + ref + "&transaction_reference=CB-1")
	if want := "https://shop.example/orders/7?lang=bn&status=success&invoice_id=" + id + "&transaction_reference=CB-1"; code != 303 || loc != want {
		t.Errorf("customer return: %d %q; want 303 to %q", code, loc, want)
	}
	// A second invoice whose webhook is lost: the customer's return itself
	// has paymentd ask aspayds, which records the payment.
	fake.DeliverWebhooks(false)
	code, inv2, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "cb-2",
		`{"amount":50000,"currency":"BDT","customer":{"name":"Jane"},"transaction_reference":"CB-2","callback_url":"https://shop.example/orders/8"}`)
	if code != 200 {
		t.Fatalf("second invoice: %d %v", code, inv2)
	}
	ref2 := strings.TrimPrefix(inv2["payment_url"].(string), fake.URL()+"/methods/")
	code, loc = back("status=cancel&invoice_id=" + ref2 + "&transaction_reference=CB-2")
	if code != 303 || !strings.Contains(loc, "status=cancel") {
		t.Errorf("unpaid customer return: %d %q; want 303 with status=cancel", code, loc)
	}
	if got := pwListed(t, s, s.liveKey, "invoices", inv2["id"].(string)); got["status"] != "open" {
		t.Errorf("invoice after a return without payment: %v; want open", got)
	}
	_ = fake.PayInvoice("CB-2", 50000)
	if code, loc = back("status=success&invoice_id=" + ref2 + "&transaction_reference=CB-2"); code != 303 || !strings.Contains(loc, "invoice_id="+inv2["id"].(string)) {
		t.Errorf("customer return after payment: %d %q; want 303 naming %s", code, loc, inv2["id"])
	}
	if got := pwListed(t, s, s.liveKey, "invoices", inv2["id"].(string)); got["status"] != "paid" {
		t.Errorf("invoice after the customer's return: %v; want paid (confirmed with aspayds)", got)
	}
	if code, _ := back("status=success&invoice_id=ATINV0&transaction_reference=NOPE"); code != 404 {
		t.Errorf("return for an unknown invoice: %d; want 404", code)
	}
	// A typed or tampered return with U+0000 or bytes that are not UTF-8
	// names no invoice (PostgreSQL refuses them as query parameters).
	for _, q := range []string{"invoice_id=%00", "invoice_id=" + ref + "%00", "transaction_reference=CB-1%00", "invoice_id=%ff"} {
		if code, _ := back("status=success&" + q); code != 404 {
			t.Errorf("return with %s: %d; want 404", q, code)
		}
	}
	pvCheckLedger(t, s.db)
}
