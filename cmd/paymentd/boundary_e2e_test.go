package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
	"github.com/paymentd/paymentd/providers/alppay/alppayfake"
	"github.com/paymentd/paymentd/providers/aslan/aslanfake"
	"github.com/paymentd/paymentd/providers/aspayds/aspaydsfake"
	"github.com/paymentd/paymentd/providers/fakekit"
)

// Tests of issue 10's rule at the provider boundary: an operation that can
// move money at a provider is recorded before the call, and until a
// definite answer settles it nothing may contradict what the provider did.

func bdAslanConfig(fake *aslanfake.Server) string {
	return `
connections:
  - {name: aslan-live, provider: aslan, mode: live, base_url: '` + fake.URL() + `', credentials: {api_key: ASLAN_LIVE_KEY}}
routes:
  - {operation: payments, mode: live, currency: USD, connections: [aslan-live]}
`
}

// bdMessage is the message of a REST error body.
func bdMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// bdRequests counts the fake's requests to path.
func bdRequests(fake *aslanfake.Server, path string) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// bdWaitPayment polls a payment until cond holds (the reconciler works in
// the background) or fails after 15s.
func bdWaitPayment(t *testing.T, s *pvServer, id string, what string, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, p, _ := s.restDo(t, "GET", "/v1/payments/"+id, s.liveKey, "", "")
		if code == 200 && cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment %s: %d %v; want %s", id, code, p, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bdRefundAtAslan refunds amount of payment id and checks that Aslan
// refunded it on the payment its confirmation made (paymentd recorded
// Aslan's pay_ id).
func bdRefundAtAslan(t *testing.T, s *pvServer, fake *aslanfake.Server, id string, amount int64) {
	t.Helper()
	code, r, _ := s.restDo(t, "POST", "/v1/refunds", s.liveKey, "", fmt.Sprintf(`{"payment_id":%q,"amount":%d}`, id, amount))
	if code != 200 || r["status"] != "succeeded" {
		t.Fatalf("refund of %s: %d %v", id, code, r)
	}
	for pid := range fake.Captured() {
		if fake.Refunded(pid) == amount {
			return
		}
	}
	t.Errorf("no Aslan payment was refunded %d; want the one the confirmation made", amount)
}

// TestBoundaryAslanPartialCaptureRefused: Aslan's confirm captures the whole
// authorization, so a partial capture is refused before any call, naming
// amount; the full capture still works.
func TestBoundaryAslanPartialCaptureRefused(t *testing.T) {
	fake := aslanfake.New(pvAslanKey)
	defer fake.Close()
	s := pvStart(t, bdAslanConfig(fake), pvEnv)
	code, m, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "pc-1", `{"amount":4000,"currency":"USD","payment_method":"pm_agent","capture_method":"manual"}`)
	if code != 200 || m["status"] != "requires_capture" {
		t.Fatalf("manual payment: %d %v", code, m)
	}
	id := m["id"].(string)
	code, body, _ := s.restDo(t, "POST", "/v1/payments/"+id+"/capture", s.liveKey, "pc-2", `{"amount":3000}`)
	e := restError(t, code, body)
	if code != 400 || e.code != "partial_capture_unsupported" || e.param != "amount" ||
		!strings.Contains(bdMessage(body), "whole") || !strings.Contains(bdMessage(body), "cancel") {
		t.Fatalf("partial capture on Aslan: %d %+v; want 400 partial_capture_unsupported naming amount, saying to capture all or cancel", code, e)
	}
	if n := bdRequests(fake, "/api/v1/confirm"); n != 0 {
		t.Fatalf("Aslan was sent %d confirmations for a refused partial capture; want none", n)
	}
	if len(fake.Captured()) != 0 {
		t.Fatalf("Aslan charged %v; want nothing", fake.Captured())
	}
	_, p, _ := s.restDo(t, "GET", "/v1/payments/"+id, s.liveKey, "", "")
	if p["status"] != "requires_capture" || pvNumber(t, p["amount_capturable"]) != 4000 {
		t.Fatalf("after the refusal: %v; want requires_capture with 4000 capturable", p)
	}
	// The whole amount, given explicitly, is a full capture.
	code, p, _ = s.restDo(t, "POST", "/v1/payments/"+id+"/capture", s.liveKey, "pc-3", `{"amount":4000}`)
	if code != 200 || p["status"] != "succeeded" || pvNumber(t, p["amount_captured"]) != 4000 {
		t.Fatalf("full capture: %d %v", code, p)
	}
	pvCheckLedger(t, s.db)
}

// TestBoundaryCaptureUnansweredRefusesCancel: Aslan charges on confirm and
// the answer is lost. The payment keeps the pending capture: a cancel and a
// second capture are refused with payment_operation_unsettled, and the
// retry with the same idempotency key re-sends the confirmation (same
// upstream key), which answers the payment already made: one charge, and
// the payment succeeded with Aslan's payment id for refunds.
func TestBoundaryCaptureUnansweredRefusesCancel(t *testing.T) {
	fake := aslanfake.New(pvAslanKey)
	defer fake.Close()
	s := pvStart(t, bdAslanConfig(fake), pvEnv, "--provider-timeout", "1s")
	code, m, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "cu-1", `{"amount":4000,"currency":"USD","payment_method":"pm_agent","capture_method":"manual"}`)
	if code != 200 || m["status"] != "requires_capture" {
		t.Fatalf("manual payment: %d %v", code, m)
	}
	id := m["id"].(string)
	fake.LoseConfirmAnswers(1)
	code, body, _ := s.restDo(t, "POST", "/v1/payments/"+id+"/capture", s.liveKey, "cu-cap", `{}`)
	if e := restError(t, code, body); code != 503 || e.code != "provider_unsettled" {
		t.Fatalf("capture whose answer was lost: %d %+v; want 503 provider_unsettled", code, e)
	}
	if len(fake.Captured()) != 1 {
		t.Fatalf("Aslan charged %v; want the one payment the lost confirmation made", fake.Captured())
	}
	code, body, _ = s.restDo(t, "POST", "/v1/payments/"+id+"/cancel", s.liveKey, "cu-cancel", "")
	if e := restError(t, code, body); code != 409 || e.code != "payment_operation_unsettled" || !strings.Contains(bdMessage(body), "capture") {
		t.Fatalf("cancel during an unsettled capture: %d %+v; want 409 payment_operation_unsettled", code, e)
	}
	code, body, _ = s.restDo(t, "POST", "/v1/payments/"+id+"/capture", s.liveKey, "cu-other", `{}`)
	if e := restError(t, code, body); code != 409 || e.code != "payment_operation_unsettled" {
		t.Fatalf("a second capture (another key) during an unsettled capture: %d %+v; want 409 payment_operation_unsettled", code, e)
	}
	_, p, _ := s.restDo(t, "GET", "/v1/payments/"+id, s.liveKey, "", "")
	if p["status"] != "requires_capture" || pvNumber(t, p["amount_captured"]) != 0 ||
		p["pending_operation"] != "capture" || pvNumber(t, p["pending_amount"]) != 4000 {
		t.Fatalf("while unsettled: %v; want requires_capture with a pending capture of 4000, nothing captured yet", p)
	}
	// The retry with the same key resumes the capture.
	code, p, _ = s.restDo(t, "POST", "/v1/payments/"+id+"/capture", s.liveKey, "cu-cap", `{}`)
	if code != 200 || p["status"] != "succeeded" || pvNumber(t, p["amount_captured"]) != 4000 {
		t.Fatalf("retry with the same key: %d %v; want succeeded, 4000 captured", code, p)
	}
	if c := fake.Captured(); len(c) != 1 {
		t.Fatalf("Aslan charged %v after the retry; want still one payment", c)
	}
	keys := map[string]bool{}
	for _, r := range fake.Requests() {
		if r.Path == "/api/v1/confirm" {
			keys[r.Header.Get("Idempotency-Key")] = true
		}
	}
	if len(keys) != 1 || keys[""] {
		t.Errorf("confirmations carried Idempotency-Keys %v; want one and the same non-empty key", keys)
	}
	code, p, _ = s.restDo(t, "POST", "/v1/payments/"+id+"/capture", s.liveKey, "cu-cap", `{}`)
	if code != 200 || p["status"] != "succeeded" {
		t.Fatalf("replay after settling: %d %v", code, p)
	}
	code, body, _ = s.restDo(t, "POST", "/v1/payments/"+id+"/cancel", s.liveKey, "cu-cancel-2", "")
	if e := restError(t, code, body); code != 409 || e.code != "payment_unexpected_state" {
		t.Fatalf("cancel after the capture settled: %d %+v; want 409 payment_unexpected_state", code, e)
	}
	code, r, _ := s.restDo(t, "POST", "/v1/refunds", s.liveKey, "cu-re", `{"payment_id":"`+id+`","amount":1000,"reason":"requested_by_customer"}`)
	if code != 200 || r["status"] != "succeeded" {
		t.Fatalf("refund of the resumed capture: %d %v", code, r)
	}
	for _, req := range fake.Requests() {
		if req.Path == "/api/v1/refund" && !strings.Contains(string(req.Body), `"reason":"requested_by_customer"`) {
			t.Errorf("Aslan refund body %s; want the caller's reason", req.Body)
		}
	}
	pvCheckLedger(t, s.db)
}

// TestBoundaryReconcilerSettlesPendingCapture: nobody retries the capture
// whose answer was lost; the reconciler re-sends it and settles it.
func TestBoundaryReconcilerSettlesPendingCapture(t *testing.T) {
	fake := aslanfake.New(pvAslanKey)
	defer fake.Close()
	s := pvStart(t, bdAslanConfig(fake), pvEnv, "--provider-timeout", "500ms",
		"--reconcile-schedule", "100ms,100ms", "--reconcile-interval", "50ms")
	code, m, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "rp-1", `{"amount":2500,"currency":"USD","payment_method":"pm_agent","capture_method":"manual"}`)
	if code != 200 {
		t.Fatalf("manual payment: %d %v", code, m)
	}
	id := m["id"].(string)
	fake.LoseConfirmAnswers(1)
	if code, body, _ := s.restDo(t, "POST", "/v1/payments/"+id+"/capture", s.liveKey, "", `{}`); code != 503 {
		t.Fatalf("capture whose answer was lost: %d %v; want 503", code, body)
	}
	p := bdWaitPayment(t, s, id, "succeeded by the reconciler", func(p map[string]any) bool { return p["status"] == "succeeded" })
	if pvNumber(t, p["amount_captured"]) != 2500 || p["pending_operation"] != "" {
		t.Errorf("settled payment %v; want 2500 captured, nothing pending", p)
	}
	bdRefundAtAslan(t, s, fake, id, 500)
	if c := fake.Captured(); len(c) != 1 {
		t.Errorf("Aslan charged %v; want one payment", c)
	}
	pvCheckLedger(t, s.db)
}

// TestBoundaryAslanUnknownSettledOrListed: an automatic Aslan payment whose
// confirmation went unanswered is settled by re-sending the confirmation of
// the same authorization with the same upstream key; one whose
// authorization went unanswered cannot be settled (Aslan has no status
// endpoint) and becomes an operator item, listed by `paymentd
// operator-items` and counted in /v1/status.
func TestBoundaryAslanUnknownSettledOrListed(t *testing.T) {
	fake := aslanfake.New(pvAslanKey)
	defer fake.Close()
	s := pvStart(t, bdAslanConfig(fake), pvEnv, "--provider-timeout", "500ms",
		"--reconcile-schedule", "100ms,100ms", "--reconcile-interval", "50ms")
	fake.LoseConfirmAnswers(1)
	code, p, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "un-1", `{"amount":2500,"currency":"USD","payment_method":"pm_agent"}`)
	if code != 200 || p["status"] != "unknown" {
		t.Fatalf("payment whose confirmation was lost: %d %v; want 200 unknown", code, p)
	}
	id := p["id"].(string)
	p = bdWaitPayment(t, s, id, "succeeded by the reconciler", func(p map[string]any) bool { return p["status"] == "succeeded" })
	if pvNumber(t, p["amount_captured"]) != 2500 {
		t.Errorf("settled payment %v; want 2500 captured", p)
	}
	bdRefundAtAslan(t, s, fake, id, 700)
	if c := fake.Captured(); len(c) != 1 {
		t.Errorf("Aslan charged %v; want one payment", c)
	}

	// The authorization itself goes unanswered: nothing can settle it.
	fake.SetStall(2 * time.Second)
	code, p, _ = s.restDo(t, "POST", "/v1/payments", s.liveKey, "un-2", `{"amount":3000,"currency":"USD","payment_method":"pm_agent"}`)
	fake.SetStall(0)
	if code != 200 || p["status"] != "unknown" {
		t.Fatalf("payment whose authorization was lost: %d %v; want 200 unknown", code, p)
	}
	lost := p["id"].(string)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, st, _ := s.restDo(t, "GET", "/v1/status", "", "", "")
		c, _ := pvJSON(t, st, "components", "operator_items").(map[string]any)
		if code == 200 && c["status"] == "degraded" && strings.Contains(c["message"].(string), "1 open operator item") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/status: %d %v; want operator_items degraded with 1 open item", code, st["components"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out strings.Builder
	err := run(context.Background(), []string{"operator-items", "--db", s.db}, noEnv, &out, &out)
	if err == nil || !strings.Contains(out.String(), lost) || !strings.Contains(out.String(), "payment_unsettled_no_status_endpoint") ||
		strings.Contains(out.String(), id) {
		t.Fatalf("paymentd operator-items: %v\n%s\nwant a failure listing %s only", err, out.String(), lost)
	}
	_, p, _ = s.restDo(t, "GET", "/v1/payments/"+lost, s.liveKey, "", "")
	if p["status"] != "unknown" {
		t.Errorf("the payment that cannot be settled: %v; want it left unknown (never guessed)", p)
	}
	pvCheckLedger(t, s.db)
}

// TestBoundaryAdapterDetails (issue 10 case 9): a provider's 401 is recorded
// as provider_authentication_failed; aikdata receives the caller's metadata
// and the refund's reason and metadata; Aslan the refund's reason (checked
// in TestBoundaryCaptureUnansweredRefusesCancel).
func TestBoundaryAdapterDetails(t *testing.T) {
	fake := aikdatafake.New(pvAikdataToken)
	defer fake.Close()
	aslan := aslanfake.New(pvAslanKey)
	defer aslan.Close()
	env := map[string]string{}
	for k, v := range pvEnv {
		env[k] = v
	}
	env["ASLAN_WRONG_KEY"] = "ak_live_notTheKeyAslanKnows00000000"
	s := pvStart(t, `
connections:
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '`+fake.URL()+`', credentials: {token: AIKDATA_TOKEN}}
  - {name: aslan-wrong, provider: aslan, mode: live, base_url: '`+aslan.URL()+`', credentials: {api_key: ASLAN_WRONG_KEY}}
routes:
  - {operation: payments, mode: live, currency: EUR, connections: [aikdata-live]}
  - {operation: payments, mode: live, currency: USD, connections: [aslan-wrong]}
`, env)
	code, p, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "ad-1",
		`{"amount":1500,"currency":"EUR","payment_method":"pm_x","metadata":{"order_id":"ORD-7"}}`)
	if code != 200 || p["status"] != "succeeded" {
		t.Fatalf("aikdata payment: %d %v", code, p)
	}
	var chargeID string
	for _, r := range fake.Requests() {
		if r.Path == "/charge" {
			var b struct {
				Metadata map[string]string `json:"metadata"`
			}
			_ = json.Unmarshal(r.Body, &b)
			if b.Metadata["order_id"] != "ORD-7" || b.Metadata["paymentd_id"] != p["id"] {
				t.Errorf("aikdata charge metadata %v; want the caller's order_id and paymentd_id", b.Metadata)
			}
			chargeID = "seen"
		}
	}
	if chargeID == "" {
		t.Fatal("aikdata got no charge")
	}
	code, r, _ := s.restDo(t, "POST", "/v1/refunds", s.liveKey, "ad-2",
		`{"payment_id":"`+p["id"].(string)+`","amount":500,"reason":"duplicate","metadata":{"ticket":"SUP-1"}}`)
	if code != 200 || r["status"] != "succeeded" {
		t.Fatalf("aikdata refund: %d %v", code, r)
	}
	for _, req := range fake.Requests() {
		if req.Path == "/refund" {
			var b struct {
				Reason   string            `json:"reason"`
				Metadata map[string]string `json:"metadata"`
			}
			_ = json.Unmarshal(req.Body, &b)
			if b.Reason != "duplicate" || b.Metadata["ticket"] != "SUP-1" {
				t.Errorf("aikdata refund body %s; want reason duplicate and the caller's metadata", req.Body)
			}
		}
	}

	// Aslan refuses the connection's key: no money moved, and the payment
	// says why in the documented code.
	code, body, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "ad-3", `{"amount":2500,"currency":"USD","payment_method":"pm_agent"}`)
	if e := restError(t, code, body); code != 503 || e.code != "provider_authentication_failed" {
		t.Errorf("payment through a connection with a refused key: %d %+v; want 503 provider_authentication_failed", code, e)
	}
	_, list, _ := s.restDo(t, "GET", "/v1/payments?status=failed", s.liveKey, "", "")
	ps, _ := list["payments"].([]any)
	if len(ps) != 1 || ps[0].(map[string]any)["failure_code"] != "provider_authentication_failed" {
		t.Errorf("failed payments %v; want one with failure_code provider_authentication_failed", ps)
	}
	if strings.Contains(s.log.String(), env["ASLAN_WRONG_KEY"]) {
		t.Error("the refused key is in the log")
	}
}

// TestBoundarySandboxDeadlineRecorded (issue 10 case 8): a sandbox payment
// cut short by the caller's own deadline is still recorded (unknown, for the
// reconciler), so that the retry with the same key the error asks for
// finds it instead of charging again.
func TestBoundarySandboxDeadlineRecorded(t *testing.T) {
	s := startServer(t, testDB(t), "--provider-timeout", "5s", "--reconcile-schedule", "1h")
	ctx, cancel := context.WithTimeout(withIdem(withKey(context.Background(), s.key), "dl-1"), 300*time.Millisecond)
	_, err := s.payments.CreatePayment(ctx, &pb.CreatePaymentRequest{Amount: 2500, Currency: "USD", PaymentMethod: "pm_card_timeout"})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("CreatePayment with a 300ms deadline: %v; want DeadlineExceeded", err)
	}
	var got *pb.Payment
	for deadline := time.Now().Add(10 * time.Second); got == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		list, err := s.payments.ListPayments(withKey(context.Background(), s.key), &pb.ListPaymentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Payments) == 1 {
			got = list.Payments[0]
		}
	}
	if got == nil || got.Status != "unknown" {
		t.Fatalf("after the caller's deadline: %v; want the payment recorded as unknown", got)
	}
	again, err := s.payments.CreatePayment(withIdem(withKey(context.Background(), s.key), "dl-1"),
		&pb.CreatePaymentRequest{Amount: 2500, Currency: "USD", PaymentMethod: "pm_card_timeout"})
	if err != nil || again.Payment.Id != got.Id {
		t.Fatalf("retry with the same key: %v, %v; want the recorded payment %s", again, err, got.Id)
	}
}

// TestBoundaryInvoicePageNeverCollectsTwice (issue 10 case 4): a page
// payment whose answer is lost (pm_card_timeout) leaves an unsettled
// attempt; while it is unsettled the page refuses a second payment and the
// API refuses to cancel the invoice; once the reconciler settles the
// payment it is applied to the invoice (paid, invoice.paid), and only one
// payment ever succeeded.
func TestBoundaryInvoicePageNeverCollectsTwice(t *testing.T) {
	srv, invc := invServer(t, "--provider-timeout", "500ms", "--reconcile-schedule", "3s,100ms", "--reconcile-interval", "50ms")
	ctx := withKey(context.Background(), srv.key)
	inv := mustCreateInvoice(t, ctx, invc, cardInvoice("bd-page-1"))
	code, _, page := postPayPage(t, srv, inv.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_timeout"}})
	if code != http.StatusAccepted {
		t.Fatalf("pay with pm_card_timeout: %d; want 202 (unsettled)\n%.400s", code, page)
	}
	code, _, page = postPayPage(t, srv, inv.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_visa"}})
	if code != http.StatusConflict {
		t.Fatalf("second payment while the first is unsettled: %d; want 409\n%.400s", code, page)
	}
	_, err := invc.CancelInvoice(withIdem(ctx, "bd-cancel"), &pb.CancelInvoiceRequest{Id: inv.Id})
	if e := grpcError(t, err); e.code != "invoice_payment_unsettled" {
		t.Fatalf("cancel while a payment is unsettled: %+v; want invoice_payment_unsettled", e)
	}
	code, _, page = postPayPage(t, srv, inv.Id, url.Values{"action": {"cancel"}})
	if code != http.StatusConflict {
		t.Fatalf("cancel on the page while a payment is unsettled: %d; want 409", code)
	}
	var got *pb.Invoice
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = mustGetInvoice(t, ctx, invc, inv.Id); got.Status == "paid" {
			break
		}
	}
	if got.Status != "paid" || got.AmountPaid != 2500 || got.PaymentId == "" {
		t.Fatalf("after the reconciler settled the attempt: %v; want paid 2500 by its payment", got)
	}
	list, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	succeeded := 0
	for _, p := range list.Payments {
		if p.Status == "succeeded" {
			succeeded++
			if p.Id != got.PaymentId {
				t.Errorf("succeeded payment %s is not the invoice's %s", p.Id, got.PaymentId)
			}
		}
	}
	if succeeded != 1 || len(list.Payments) != 1 {
		t.Errorf("payments %v; want exactly the one attempt, succeeded", list.Payments)
	}
	st, acct := invStore(t, srv)
	if types := invEventTypes(t, st, acct, inv.Id); !slices.Contains(types, "invoice.paid") {
		t.Errorf("invoice events %v; want invoice.paid", types)
	}
	// Paid: a further payment is never taken.
	code, loc, _ := postPayPage(t, srv, inv.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_visa"}})
	if code != http.StatusSeeOther || !strings.Contains(loc, "status=success") {
		t.Errorf("pay after paid: %d %q; want the redirect to the callback", code, loc)
	}
	pvCheckLedger(t, srv.db)
}

// TestBoundaryInvoiceCancelWaitsForPagePayment: a cancel (API or page) sent
// while the page's payment call is still at the provider waits for that
// attempt and is then refused with invoice_payment_unsettled, instead of
// canceling an invoice whose payment may yet succeed; once the reconciler
// settles the attempt it pays the invoice.
func TestBoundaryInvoiceCancelWaitsForPagePayment(t *testing.T) {
	srv, invc := invServer(t, "--provider-timeout", "2s", "--reconcile-schedule", "3s,100ms", "--reconcile-interval", "50ms")
	ctx := withKey(context.Background(), srv.key)
	for _, via := range []string{"api", "page"} {
		inv := mustCreateInvoice(t, ctx, invc, cardInvoice("bd-inflight-"+via))
		paid := make(chan int, 1)
		go func() {
			code, _, _ := postPayPage(t, srv, inv.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_timeout"}})
			paid <- code
		}()
		time.Sleep(500 * time.Millisecond) // the page's call is at the provider
		if via == "api" {
			_, err := invc.CancelInvoice(withIdem(ctx, "bd-inflight-cancel"), &pb.CancelInvoiceRequest{Id: inv.Id})
			if e := grpcError(t, err); e.code != "invoice_payment_unsettled" {
				t.Errorf("API cancel while the page payment is at the provider: %+v; want invoice_payment_unsettled", e)
			}
		} else if code, loc, _ := postPayPage(t, srv, inv.Id, url.Values{"action": {"cancel"}}); code != http.StatusConflict {
			t.Errorf("page cancel while the page payment is at the provider: %d %s; want 409", code, loc)
		}
		if code := <-paid; code != http.StatusAccepted {
			t.Fatalf("pay with pm_card_timeout: %d; want 202 (unsettled)", code)
		}
		var got *pb.Invoice
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = mustGetInvoice(t, ctx, invc, inv.Id); got.Status == "paid" {
				break
			}
		}
		if got.Status != "paid" || got.AmountPaid != got.Amount || got.PaymentId == "" {
			t.Errorf("via %s, after the reconciler settled the attempt: %v; want paid by its payment", via, got)
		}
	}
}

// TestBoundaryProviderInvoiceCancelRefused (issue 10 case 7): neither aspayds
// nor alppay can close an invoice's payment page, so canceling one they
// serve is refused with invoice_cancel_unsupported; the invoice keeps
// following the provider, and money paid there is recorded as paid.
func TestBoundaryProviderInvoiceCancelRefused(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	s := pvStart(t, pwConfig(fake, ""), pvEnv, "--reconcile-schedule", "1h")
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "pc-inv",
		`{"amount":10000,"currency":"BDT","customer":{"name":"John Doe"},"transaction_reference":"TRXCANCEL1","callback_url":"https://shop.example/callback"}`)
	if code != 200 || inv["provider"] != "aspayds-live" {
		t.Fatalf("invoice through aspayds: %d %v", code, inv)
	}
	code, body, _ := s.restDo(t, "POST", "/v1/invoices/"+inv["id"].(string)+"/cancel", s.liveKey, "pc-cancel", `{}`)
	e := restError(t, code, body)
	if code != 409 || e.code != "invoice_cancel_unsupported" || !strings.Contains(bdMessage(body), "expire") {
		t.Fatalf("cancel of an aspayds invoice: %d %+v; want 409 invoice_cancel_unsupported saying it expires", code, e)
	}
	if err := fake.PayInvoice("TRXCANCEL1", 10000); err != nil {
		t.Fatal(err)
	}
	code, got, _ := s.restDo(t, "GET", "/v1/invoices/TRXCANCEL1", s.liveKey, "", "")
	if code != 200 || got["status"] != "paid" || pvNumber(t, got["amount_paid"]) != 10000 {
		t.Fatalf("after the customer paid at aspayds: %d %v; want paid", code, got)
	}
	pvCheckLedger(t, s.db)
}

// TestBoundaryRefundFailedReplays (issue 10 case 9): a refund the provider
// refused is answered 200 with status failed, and so is its replay; a
// refund left pending at a provider with no refund status call becomes an
// operator item.
func TestBoundaryRefundFailedReplays(t *testing.T) {
	fake := aikdatafake.New(pvAikdataToken)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '`+fake.URL()+`', credentials: {token: AIKDATA_TOKEN}, max_attempts: 1, timeout: 500ms}
routes:
  - {operation: payments, mode: live, currency: "*", connections: [aikdata-live]}
`, pvEnv, "--provider-timeout", "500ms", "--reconcile-schedule", "100ms,100ms", "--reconcile-interval", "50ms")
	code, p, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "rf-1", `{"amount":3000,"currency":"EUR","payment_method":"pm_x"}`)
	if code != 200 || p["status"] != "succeeded" {
		t.Fatalf("payment: %d %v", code, p)
	}
	fake.FailNext(1, 503, 0)
	refund := `{"payment_id":"` + p["id"].(string) + `","amount":1000}`
	code, r, _ := s.restDo(t, "POST", "/v1/refunds", s.liveKey, "rf-2", refund)
	if code != 200 || r["status"] != "failed" {
		t.Fatalf("refund refused by the provider: %d %v; want 200 failed", code, r)
	}
	code, again, _ := s.restDo(t, "POST", "/v1/refunds", s.liveKey, "rf-2", refund)
	if code != 200 || again["status"] != "failed" || again["id"] != r["id"] {
		t.Fatalf("replay: %d %v; want 200, the same failed refund", code, again)
	}

	// The refund's answer is lost: aikdata has no refund status call.
	fake.SetStall(2 * time.Second)
	code, r, _ = s.restDo(t, "POST", "/v1/refunds", s.liveKey, "rf-3", refund)
	fake.SetStall(0)
	if code != 200 || r["status"] != "pending" {
		t.Fatalf("refund whose answer was lost: %d %v; want 200 pending", code, r)
	}
	var out strings.Builder
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out.Reset()
		err := run(context.Background(), []string{"operator-items", "--db", s.db}, noEnv, &out, &out)
		if err != nil && strings.Contains(out.String(), r["id"].(string)) && strings.Contains(out.String(), "refund_unsettled_no_status_endpoint") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("paymentd operator-items: %v\n%s\nwant the pending refund %s listed", err, out.String(), r["id"])
		}
	}
	pvCheckLedger(t, s.db)
}

// bdPosts counts a fake's POST requests to path.
func bdPosts(reqs []fakekit.Request, path string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == "POST" && r.Path == path {
			n++
		}
	}
	return n
}

// TestBoundaryProviderInvoiceCreateResumed (issue 10 case 6): aspayds
// creates the invoice but its answer is lost; the retry with the same key
// finds it by its transaction reference instead of failing with
// duplicate_transaction_reference, and records it. alppay's answer is lost:
// the retry never creates a second alppay payment (alppay cannot be asked),
// and an operator item lists the invoice.
func TestBoundaryProviderInvoiceCreateResumed(t *testing.T) {
	as := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer as.Close()
	alp := alppayfake.New(pvAlppayKey, pvAlppaySecret)
	defer alp.Close()
	s := pvStart(t, `
connections:
  - {name: aspayds-live, provider: aspayds, mode: live, base_url: '`+as.URL()+`', credentials: {api_key: ASPAYDS_KEY, api_secret: ASPAYDS_SECRET}, options: {currency: BDT}}
  - {name: alppay-live, provider: alppay, mode: live, base_url: '`+alp.URL()+`', credentials: {api_key: ALPPAY_API_KEY, hmac_secret: ALPPAY_HMAC_SECRET}}
routes:
  - {operation: invoices, mode: live, currency: BDT, connections: [aspayds-live]}
  - {operation: invoices, mode: live, currency: USDT, connections: [alppay-live]}
`, pvEnv, "--provider-timeout", "500ms", "--reconcile-schedule", "1h")
	body := `{"amount":10000,"currency":"BDT","customer":{"name":"John Doe"},"transaction_reference":"TRXLOST1","callback_url":"https://shop.example/callback"}`
	as.Inject(fakekit.Fault{Kind: fakekit.ApplyThenHang, Op: "POST /payment/create"})
	code, resp, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "lost-1", body)
	if e := restError(t, code, resp); code != 503 {
		t.Fatalf("create whose answer was lost: %d %+v; want 503", code, e)
	}
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "lost-1", body)
	if code != 200 || inv["provider"] != "aspayds-live" || inv["status"] != "open" || inv["transaction_reference"] != "TRXLOST1" {
		t.Fatalf("retry with the same key: %d %v; want the invoice aspayds made, open", code, inv)
	}
	if n := bdPosts(as.Requests(), "/payment/create"); n != 1 {
		t.Errorf("aspayds was asked to create %d times; want once", n)
	}
	if err := as.PayInvoice("TRXLOST1", 10000); err != nil {
		t.Fatal(err)
	}
	code, got, _ := s.restDo(t, "GET", "/v1/invoices/TRXLOST1", s.liveKey, "", "")
	if code != 200 || got["status"] != "paid" || got["id"] != inv["id"] {
		t.Fatalf("after the customer paid at aspayds: %d %v; want the same invoice, paid", code, got)
	}
	// Another request with the same reference is still a duplicate.
	code, resp, _ = s.restDo(t, "POST", "/v1/invoices", s.liveKey, "lost-2", strings.Replace(body, "10000", "20000", 1))
	if e := restError(t, code, resp); code != 409 || e.code != "duplicate_transaction_reference" {
		t.Errorf("another invoice with the reference: %d %+v; want 409 duplicate_transaction_reference", code, e)
	}

	crypto := `{"amount":1000000000,"currency":"USDT","network":"tron","customer":{"id":"12312312","name":"John"},"transaction_reference":"INV-LOST","callback_url":"https://shop.example/orders/1"}`
	alp.Inject(fakekit.Fault{Kind: fakekit.ApplyThenHang, Op: "POST /v2/payment"})
	if code, resp, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "lost-3", crypto); code != 503 {
		t.Fatalf("alppay create whose answer was lost: %d %v; want 503", code, resp)
	}
	code, resp, _ = s.restDo(t, "POST", "/v1/invoices", s.liveKey, "lost-3", crypto)
	if e := restError(t, code, resp); code != 503 || e.code != "invoice_creation_unsettled" {
		t.Fatalf("alppay retry: %d %+v; want 503 invoice_creation_unsettled", code, e)
	}
	if n := bdPosts(alp.Requests(), "/v2/payment"); n != 1 {
		t.Errorf("alppay was asked to create %d payments; want one", n)
	}
	var out strings.Builder
	err := run(context.Background(), []string{"operator-items", "--db", s.db}, noEnv, &out, &out)
	if err == nil || !strings.Contains(out.String(), "invoice_creation_unsettled") {
		t.Errorf("paymentd operator-items: %v\n%s\nwant the alppay invoice listed", err, out.String())
	}
	pvCheckLedger(t, s.db)
}
