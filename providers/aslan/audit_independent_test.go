package aslan_test

// An independent fake of Aslan written from ../shared/provider-docs/aslan.txt
// alone (not from aslanfake), and scenarios that drive the adapter against it
// and compare the fake's books with what the adapter reported.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aslan"
)

const auditKey = "ak_test_audit_0123456789"

type aAuth struct {
	amount    int64
	confirmed bool
	payID     string
}

type aPay struct {
	amount, refunded int64
}

type aPurchase struct {
	amount int64
	status string
}

type aslanDocFake struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	seq        int
	auths      map[string]*aAuth
	pays       map[string]*aPay
	purchases  map[string]*aPurchase
	requests   []string
	violations []string

	// faults
	after500     map[string]int // path -> process then answer 500 this many times
	delay        map[string]time.Duration
	declineNext  string // "402" or "400card"
	omitAuthAmt  bool
	statusAnswer string
	// the code of the refusal of a second confirm: the document names none
	alreadyCode string
}

func newAslanDocFake(t *testing.T) *aslanDocFake {
	f := &aslanDocFake{t: t, auths: map[string]*aAuth{}, pays: map[string]*aPay{}, purchases: map[string]*aPurchase{},
		after500: map[string]int{}, delay: map[string]time.Duration{}, statusAnswer: "operational"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, v := range f.violations {
			t.Errorf("DOC VIOLATION: %s", v)
		}
	})
	return f
}

func (f *aslanDocFake) violate(format string, a ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, a...))
}

func aErr(w http.ResponseWriter, status int, typ, code, msg, param string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"type": typ, "code": code, "message": msg, "param": param}})
}

func aJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// jsonInt reads an integer JSON number (not a string, not a fraction).
func jsonInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

func (f *aslanDocFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	d := f.delay[r.URL.Path]
	f.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()

	if r.URL.Path == "/api/status" {
		if r.Method != http.MethodGet {
			f.violate("%s /api/status: the document shows GET", r.Method)
		}
		aJSON(w, map[string]any{"service": "Aslan Payment Infrastructure", "status": f.statusAnswer, "version": "1.0.0",
			"components": map[string]any{"database": map[string]any{"status": f.statusAnswer}}})
		return
	}
	if r.Method != http.MethodPost {
		f.violate("%s %s: every documented money endpoint is POST", r.Method, r.URL.Path)
		aErr(w, 404, "invalid_request_error", "not_found", "no such route", "")
		return
	}
	// "All API requests require authentication using an API key in the Authorization header."
	auth := r.Header.Get("Authorization")
	if auth != "Bearer "+auditKey {
		aErr(w, 401, "authentication_error", "invalid_api_key", "Invalid API key", "")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		f.violate("%s: Content-Type %q, the document sends application/json", r.URL.Path, r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		f.violate("%s: body is not a JSON object: %v", r.URL.Path, err)
		aErr(w, 400, "invalid_request_error", "invalid_json", "body is not JSON", "")
		return
	}
	allowed := map[string][]string{
		"/api/v1/authorize": {"amount", "description"},
		"/api/v1/confirm":   {"authorizationId"},
		"/api/v1/refund":    {"paymentId", "amount", "reason"},
		"/v1/purchase":      {"amount", "description", "agent_id"},
	}[r.URL.Path]
	for k := range m {
		found := false
		for _, a := range allowed {
			found = found || a == k
		}
		if !found {
			f.t.Logf("note: %s carries undocumented field %q", r.URL.Path, k)
		}
	}
	if d := f.declineNext; d != "" && (r.URL.Path == "/api/v1/authorize" || r.URL.Path == "/v1/purchase") {
		f.declineNext = ""
		if d == "402" {
			aErr(w, 402, "card_error", "card_declined", "Your card was declined.", "")
		} else {
			aErr(w, 400, "card_error", "card_declined", "Your card was declined.", "")
		}
		return
	}
	f.seq++
	id := fmt.Sprintf("%010d", f.seq)
	answer := func(v any) {
		if f.after500[r.URL.Path] > 0 {
			f.after500[r.URL.Path]--
			aErr(w, 500, "api_error", "internal", "Internal Server Error", "")
			return
		}
		aJSON(w, v)
	}
	switch r.URL.Path {
	case "/api/v1/authorize", "/v1/purchase":
		amt, ok := jsonInt(m["amount"])
		if !ok {
			f.violate("%s: amount %v (%T) is not an integer number of cents", r.URL.Path, m["amount"], m["amount"])
			aErr(w, 400, "invalid_request_error", "parameter_invalid", "amount", "amount")
			return
		}
		if _, ok := m["description"].(string); m["description"] != nil && !ok {
			f.violate("description is not a string")
		}
		if amt < 50 {
			aErr(w, 400, "invalid_request_error", "amount_too_small", "Amount must be at least $0.50 USD", "amount")
			return
		}
		if r.URL.Path == "/v1/purchase" {
			tid := "txn_" + id
			f.purchases[tid] = &aPurchase{amount: amt, status: "authorized"}
			// The document's only purchase answer.
			answer(map[string]any{"success": true, "transaction_id": tid, "status": "authorized", "amount": amt,
				"description": m["description"], "latency_ms": 127, "timestamp": time.Now().UTC().Format(time.RFC3339)})
			return
		}
		aid := "auth_" + id
		f.auths[aid] = &aAuth{amount: amt}
		// The authorize answer is not documented; an authorization object.
		a := map[string]any{"id": aid, "object": "authorization", "amount": amt, "currency": "usd", "status": "authorized"}
		if f.omitAuthAmt {
			a = map[string]any{"id": aid, "status": "authorized"}
		}
		answer(a)
	case "/api/v1/confirm":
		aid, _ := m["authorizationId"].(string)
		a := f.auths[aid]
		if a == nil {
			aErr(w, 404, "invalid_request_error", "resource_missing", "No such authorization", "authorizationId")
			return
		}
		if a.confirmed {
			code := f.alreadyCode
			if code == "" {
				code = "authorization_already_confirmed"
			}
			aErr(w, 400, "invalid_request_error", code, "Authorization already confirmed", "authorizationId")
			return
		}
		a.confirmed = true
		a.payID = "pay_" + id
		f.pays[a.payID] = &aPay{amount: a.amount}
		answer(map[string]any{"id": a.payID, "object": "payment", "amount": a.amount, "currency": "usd", "description": "x",
			"status": "succeeded", "authorizationId": aid, "created": time.Now().Unix(), "receiptUrl": "https://pay.stripe.com/receipts/x"})
	case "/api/v1/refund":
		pid, _ := m["paymentId"].(string)
		p := f.pays[pid]
		if p == nil {
			aErr(w, 404, "invalid_request_error", "resource_missing", "No such payment "+pid, "paymentId")
			return
		}
		amt := p.amount - p.refunded
		if v, present := m["amount"]; present {
			var ok bool
			if amt, ok = jsonInt(v); !ok {
				f.violate("refund amount %v is not an integer", v)
				aErr(w, 400, "invalid_request_error", "parameter_invalid", "amount", "amount")
				return
			}
		}
		if amt <= 0 || p.refunded+amt > p.amount {
			aErr(w, 400, "invalid_request_error", "amount_too_large", "Refund exceeds the payment", "amount")
			return
		}
		p.refunded += amt
		answer(map[string]any{"id": "re_" + id, "object": "refund", "amount": amt, "currency": "usd", "paymentId": pid,
			"reason": m["reason"], "status": "succeeded", "created": time.Now().Unix()})
	default:
		f.violate("POST %s is not a documented endpoint", r.URL.Path)
		aErr(w, 404, "invalid_request_error", "not_found", "no such route", "")
	}
}

// books: authorized-unconfirmed, captured, refunded.
func (f *aslanDocFake) books() (held, captured, refunded int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.auths {
		if !a.confirmed {
			held += a.amount
		}
	}
	for _, p := range f.purchases {
		if p.status == "authorized" {
			held += p.amount
		} else {
			captured += p.amount
		}
	}
	for _, p := range f.pays {
		captured += p.amount
		refunded += p.refunded
	}
	return
}

func (f *aslanDocFake) nreq() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.requests) }

func newAslan(t *testing.T, f *aslanDocFake, oneShot bool) *aslan.Client {
	c, err := aslan.New(aslan.Options{BaseURL: f.srv.URL, APIKey: auditKey, OneShot: oneShot,
		HTTP: providers.HTTPOptions{Timeout: 300 * time.Millisecond, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantBooks(t *testing.T, f *aslanDocFake, held, captured, refunded int64) {
	t.Helper()
	h, c, r := f.books()
	if h != held || c != captured || r != refunded {
		t.Errorf("books at Aslan: held %d captured %d refunded %d; paymentd was told held %d captured %d refunded %d", h, c, r, held, captured, refunded)
	}
}

func TestAuditAslanAutoCaptureAndRefunds(t *testing.T) {
	f := newAslanDocFake(t)
	c := newAslan(t, f, false)
	ctx := context.Background()
	res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_a1", Amount: 2500, Currency: "USD", Capture: true})
	if err != nil || !res.Captured || !strings.HasPrefix(res.Reference, "pay_") {
		t.Fatalf("Authorize: %+v %v", res, err)
	}
	wantBooks(t, f, 0, 2500, 0)
	if _, err := c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_1", Reference: res.Reference, Amount: 1000, Currency: "USD", Reason: "requested_by_customer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_2", Reference: res.Reference, Amount: 1500, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	wantBooks(t, f, 0, 2500, 2500)
	_, err = c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_3", Reference: res.Reference, Amount: 1, Currency: "USD"})
	if k := providers.KindOf(err); k != providers.InvalidRequest && k != providers.Declined {
		t.Errorf("over-refund: kind %v, want a definite refusal", k)
	}
	wantBooks(t, f, 0, 2500, 2500)
}

func TestAuditAslanManualCapture(t *testing.T) {
	f := newAslanDocFake(t)
	c := newAslan(t, f, false)
	ctx := context.Background()
	res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_m1", Amount: 99_999_999_999, Currency: "usd"})
	if err != nil || res.Captured {
		t.Fatalf("Authorize: %+v %v", res, err)
	}
	wantBooks(t, f, 99_999_999_999, 0, 0)
	ref, err := c.CaptureReference(ctx, providers.CaptureRequest{IdempotencyKey: "pay_m1-capture", Reference: res.Reference, Amount: 99_999_999_999, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	wantBooks(t, f, 0, 99_999_999_999, 0)
	if _, err := c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_m", Reference: ref, Amount: 99_999_999_999, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	wantBooks(t, f, 0, 99_999_999_999, 99_999_999_999)
}

func TestAuditAslanRefusalsBeforeCall(t *testing.T) {
	f := newAslanDocFake(t)
	c := newAslan(t, f, false)
	for _, cur := range []string{"JPY", "EUR", "KWD"} {
		_, err := c.Authorize(context.Background(), providers.PaymentRequest{IdempotencyKey: "p", Amount: 1000, Currency: cur, Capture: true})
		if providers.KindOf(err) != providers.InvalidRequest {
			t.Errorf("%s: %v", cur, err)
		}
	}
	if n := f.nreq(); n != 0 {
		t.Errorf("%d requests sent for currencies Aslan does not take", n)
	}
	// Below the documented minimum: Aslan's 400 is a definite refusal.
	_, err := c.Authorize(context.Background(), providers.PaymentRequest{IdempotencyKey: "p2", Amount: 49, Currency: "USD", Capture: true})
	if providers.KindOf(err) != providers.InvalidRequest {
		t.Errorf("amount_too_small: %v", err)
	}
}

func TestAuditAslanDeclines(t *testing.T) {
	for _, d := range []string{"402", "400card"} {
		f := newAslanDocFake(t)
		c := newAslan(t, f, false)
		f.declineNext = d
		_, err := c.Authorize(context.Background(), providers.PaymentRequest{IdempotencyKey: "p", Amount: 1000, Currency: "USD", Capture: true})
		if k := providers.KindOf(err); k != providers.Declined && k != providers.InvalidRequest {
			t.Errorf("decline %s: %v", d, err)
		}
		wantBooks(t, f, 0, 0, 0)
	}
}

func TestAuditAslanAmbiguous(t *testing.T) {
	ctx := context.Background()
	t.Run("authorize 500 after acting", func(t *testing.T) {
		f := newAslanDocFake(t)
		c := newAslan(t, f, false)
		f.after500["/api/v1/authorize"] = 1
		_, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "p", Amount: 1000, Currency: "USD", Capture: true})
		if providers.KindOf(err) != providers.Unknown {
			t.Errorf("kind %v: %v", providers.KindOf(err), err)
		}
		wantBooks(t, f, 1000, 0, 0)
	})
	t.Run("confirm 500 after acting", func(t *testing.T) {
		f := newAslanDocFake(t)
		c := newAslan(t, f, false)
		f.after500["/api/v1/confirm"] = 1
		_, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "p", Amount: 1000, Currency: "USD", Capture: true})
		if providers.KindOf(err) != providers.Unknown {
			t.Errorf("kind %v: %v", providers.KindOf(err), err)
		}
		wantBooks(t, f, 0, 1000, 0)
	})
	t.Run("refund timeout", func(t *testing.T) {
		f := newAslanDocFake(t)
		c := newAslan(t, f, false)
		res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "p", Amount: 1000, Currency: "USD", Capture: true})
		if err != nil {
			t.Fatal(err)
		}
		f.delay["/api/v1/refund"] = 400 * time.Millisecond
		_, err = c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "r", Reference: res.Reference, Amount: 500, Currency: "USD"})
		if providers.KindOf(err) != providers.Unknown {
			t.Errorf("kind %v: %v", providers.KindOf(err), err)
		}
	})
	t.Run("refund 500 after acting", func(t *testing.T) {
		f := newAslanDocFake(t)
		c := newAslan(t, f, false)
		res, _ := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "p", Amount: 1000, Currency: "USD", Capture: true})
		f.after500["/api/v1/refund"] = 1
		_, err := c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "r", Reference: res.Reference, Amount: 500, Currency: "USD"})
		if providers.KindOf(err) != providers.Unknown {
			t.Errorf("kind %v: %v", providers.KindOf(err), err)
		}
		wantBooks(t, f, 0, 1000, 500)
	})
}

// The document shows the authorize request but not its answer: an answer
// without amount/currency is a plausible reading.
func TestAuditAslanAuthorizeAnswerWithoutAmount(t *testing.T) {
	f := newAslanDocFake(t)
	c := newAslan(t, f, false)
	f.omitAuthAmt = true
	_, err := c.Authorize(context.Background(), providers.PaymentRequest{IdempotencyKey: "p", Amount: 1000, Currency: "USD"})
	t.Logf("authorize answered {id,status} only: kind %v err %v", providers.KindOf(err), err)
	wantBooks(t, f, 1000, 0, 0)
}

// The one-shot purchase: the document's only answer says status "authorized".
func TestAuditAslanOneShotPurchaseStatus(t *testing.T) {
	f := newAslanDocFake(t)
	c := newAslan(t, f, true)
	ctx := context.Background()
	res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_o1", Amount: 2500, Currency: "USD", Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	held, captured, _ := f.books()
	if res.Captured && captured != 2500 {
		t.Errorf("adapter reported Captured=true (ref %s) but Aslan answered status \"authorized\": held %d, captured %d", res.Reference, held, captured)
	}
	_, err = c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_o1", Reference: res.Reference, Amount: 2500, Currency: "USD"})
	t.Logf("refund of the purchase's transaction_id: %v", err)
}

func TestAuditAslanStatus(t *testing.T) {
	f := newAslanDocFake(t)
	c := newAslan(t, f, false)
	if err := c.CheckStatus(context.Background()); err != nil {
		t.Errorf("operational: %v", err)
	}
	f.statusAnswer = "degraded"
	if err := c.CheckStatus(context.Background()); err == nil {
		t.Errorf("degraded: no error")
	}
}

// A confirm whose answer was lost, sent again later (the client's retry of
// the capture with the same key, which paymentd resumes): Aslan documents no
// idempotency key, so it refuses the second confirm with a 400 whose code
// the document does not name. The refusal must not be taken as "nothing was
// captured".
func TestAuditAslanConfirmResentAfterLostAnswer(t *testing.T) {
	for _, code := range []string{"authorization_already_confirmed", "payment_already_confirmed", "resource_already_exists"} {
		f := newAslanDocFake(t)
		c := newAslan(t, f, false)
		f.alreadyCode = code
		ctx := context.Background()
		res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_c1", Amount: 2500, Currency: "USD"})
		if err != nil {
			t.Fatal(err)
		}
		req := providers.CaptureRequest{IdempotencyKey: providers.CaptureKey("pay_c1"), Reference: res.Reference, Amount: 2500, Currency: "USD"}
		f.mu.Lock()
		f.delay["/api/v1/confirm"] = 400 * time.Millisecond
		f.mu.Unlock()
		if _, err := c.CaptureReference(ctx, req); providers.KindOf(err) != providers.Unknown {
			t.Fatalf("lost confirm: %v", err)
		}
		time.Sleep(150 * time.Millisecond) // the confirm completes at Aslan
		f.mu.Lock()
		f.delay["/api/v1/confirm"] = 0
		f.mu.Unlock()
		_, err = c.CaptureReference(ctx, req)
		_, captured, _ := f.books()
		if k := providers.KindOf(err); k != providers.Unknown {
			t.Errorf("code %s: re-sent confirm answered kind %v (%v) while Aslan captured %d: paymentd clears the pending capture as refused", code, k, err, captured)
		}
	}
}
