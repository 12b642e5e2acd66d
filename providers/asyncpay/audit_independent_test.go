package asyncpay_test

// An independent fake of Asyncpay from /work/shared/provider-docs/asyncpay.txt.
// The document defines only the frame: base URL https://api.asyncpay.io,
// relative paths such as /v1/customers, JSON requests, and every answer the
// envelope {"status": "success"|"failed", "message", "data": object|array}.
// It names no endpoint, field, auth header, amount unit or idempotency
// mechanism; where it is silent this fake accepts the adapter's reading and
// logs a note. It keeps its own books.

import (
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
	"github.com/paymentd/paymentd/providers/asyncpay"
)

const apKey = "sk_test_audit"

type apPayment struct {
	ID, Ref, Currency, Status string
	Amount, Refunded          int64
}

type apPayout struct {
	ID, Ref, Currency, Status string
	Amount, Fee               int64
}

type apFake struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	seq int

	payments map[string]*apPayment
	payouts  map[string]*apPayout
	refunds  int64
	notes    []string
	viol     []string
	calls    []string

	honorIdem bool              // the document does not say Idempotency-Key is honoured
	idem      map[string]string // key -> answer
	faults    map[string][]string
	override  map[string]func() (int, string)
}

func newAPFake(t *testing.T) *apFake {
	f := &apFake{t: t, payments: map[string]*apPayment{}, payouts: map[string]*apPayout{}, idem: map[string]string{},
		faults: map[string][]string{}, override: map[string]func() (int, string){}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.srv.Close()
		for _, v := range f.viol {
			t.Errorf("DOC VIOLATION: %s", v)
		}
		for _, n := range f.notes {
			t.Logf("note (document silent): %s", n)
		}
	})
	return f
}

func (f *apFake) note(format string, a ...any) {
	n := fmt.Sprintf(format, a...)
	for _, o := range f.notes {
		if o == n {
			return
		}
	}
	f.notes = append(f.notes, n)
}

func env(status, msg, data string) string {
	return fmt.Sprintf(`{"status":%q,"message":%q,"data":%s}`, status, msg, data)
}

func (f *apFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	if a := r.Header.Get("Authorization"); a != "Bearer "+apKey {
		f.note("auth header scheme is undocumented; adapter sends Authorization %q", strings.Replace(a, apKey, "<key>", 1))
		if !strings.Contains(a, apKey) {
			f.mu.Unlock()
			w.WriteHeader(401)
			io.WriteString(w, env("failed", "Unauthorized", "null"))
			return
		}
	}
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		f.note("path %s not under /v1", r.URL.Path)
	}
	if r.Method == "POST" {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			f.viol = append(f.viol, "POST without application/json: "+r.URL.Path)
		}
		if !json.Valid(body) {
			f.viol = append(f.viol, "POST body is not JSON")
		}
		f.note("%s %s body (fields undocumented): %s", r.Method, r.URL.Path, redactIDs(string(body)))
	}
	key := r.Header.Get("Idempotency-Key")
	if key != "" {
		f.note("Idempotency-Key header sent (undocumented)")
	}
	var flt string
	if q := f.faults[r.URL.Path]; len(q) > 0 {
		flt, f.faults[r.URL.Path] = q[0], q[1:]
	}
	if flt == "503-before" {
		f.mu.Unlock()
		w.WriteHeader(503)
		io.WriteString(w, env("failed", "unavailable", "null"))
		return
	}
	var status int
	var out string
	if prev, ok := f.idem[key]; ok && f.honorIdem && key != "" {
		status, out = 200, prev
	} else if o := f.override[r.URL.Path]; o != nil {
		status, out = o()
	} else {
		status, out = f.route(r, body)
		if key != "" && status < 300 {
			f.idem[key] = out
		}
	}
	f.mu.Unlock()
	switch flt {
	case "500-after":
		w.WriteHeader(500)
		io.WriteString(w, env("failed", "Internal error", "null"))
		return
	case "503-after", "502-after":
		w.WriteHeader(map[string]int{"503-after": 503, "502-after": 502}[flt])
		io.WriteString(w, `<html>upstream error</html>`)
		return
	case "hang-after":
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, out)
}

func redactIDs(s string) string { return s }

func (f *apFake) route(r *http.Request, body []byte) (int, string) {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	_ = dec.Decode(&m)
	num := func(k string) (int64, bool) {
		n, ok := m[k].(json.Number)
		if !ok {
			return 0, false
		}
		v, err := n.Int64()
		return v, err == nil
	}
	s := func(k string) string { v, _ := m[k].(string); return v }
	p := r.URL.Path
	switch {
	case r.Method == "POST" && p == "/v1/payments":
		amt, ok := num("amount")
		if !ok || amt <= 0 {
			return 400, env("failed", "amount is invalid", "null")
		}
		f.seq++
		pm := &apPayment{ID: fmt.Sprintf("pay_ap_%d", f.seq), Ref: s("reference"), Currency: s("currency"), Amount: amt, Status: "successful"}
		if s("payment_method") == "decline" {
			pm.Status = "failed"
			return 200, env("failed", "Payment declined", f.payJSON(pm))
		}
		f.payments[pm.ID] = pm
		return 200, env("success", "Payment created", f.payJSON(pm))
	case r.Method == "GET" && strings.HasPrefix(p, "/v1/payments/"):
		id := strings.TrimPrefix(p, "/v1/payments/")
		for _, pm := range f.payments {
			if pm.ID == id || pm.Ref == id {
				return 200, env("success", "ok", f.payJSON(pm))
			}
		}
		return 404, env("failed", "Payment not found", "null")
	case r.Method == "POST" && p == "/v1/refunds":
		amt, _ := num("amount")
		pm := f.payments[s("payment_id")]
		if pm == nil {
			return 404, env("failed", "Payment not found", "null")
		}
		if amt <= 0 || pm.Refunded+amt > pm.Amount {
			return 400, env("failed", "Refund exceeds the payment", "null")
		}
		pm.Refunded += amt
		f.refunds += amt
		f.seq++
		return 200, env("success", "Refund created", fmt.Sprintf(`{"id":"rf_%d","payment_id":%q,"amount":%d,"currency":%q,"status":"successful"}`, f.seq, pm.ID, amt, pm.Currency))
	case r.Method == "GET" && p == "/v1/payout-channels":
		return 200, env("success", "ok", `[{"id":7,"name":"Bank NG","type":"bank_transfer","currency":"NGN","min_amount":10000,"max_amount":100000000,"fee_fixed":5000,"fee_percent_bps":0}]`)
	case r.Method == "POST" && p == "/v1/payouts":
		amt, ok := num("amount")
		if !ok || amt < 10000 || amt > 100000000 {
			return 400, env("failed", "amount out of range", "null")
		}
		f.seq++
		po := &apPayout{ID: fmt.Sprintf("po_ap_%d", f.seq), Ref: s("reference"), Currency: s("currency"), Amount: amt, Fee: 5000, Status: "pending"}
		f.payouts[po.ID] = po
		return 200, env("success", "Payout created", f.poJSON(po))
	case r.Method == "GET" && strings.HasPrefix(p, "/v1/payouts/"):
		id := strings.TrimPrefix(p, "/v1/payouts/")
		for _, po := range f.payouts {
			if po.ID == id || po.Ref == id {
				return 200, env("success", "ok", f.poJSON(po))
			}
		}
		return 404, env("failed", "Payout not found", "null")
	}
	f.note("%s %s: no such endpoint", r.Method, p)
	return 404, env("failed", "Not found", "null")
}

func (f *apFake) payJSON(pm *apPayment) string {
	return fmt.Sprintf(`{"id":%q,"reference":%q,"amount":%d,"currency":%q,"status":%q}`, pm.ID, pm.Ref, pm.Amount, pm.Currency, pm.Status)
}

func (f *apFake) poJSON(po *apPayout) string {
	return fmt.Sprintf(`{"id":%q,"reference":%q,"amount":%d,"fee":%d,"currency":%q,"status":%q}`, po.ID, po.Ref, po.Amount, po.Fee, po.Currency, po.Status)
}

func (f *apFake) captured() (n int, sum int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, pm := range f.payments {
		if pm.Status == "successful" {
			n++
			sum += pm.Amount
		}
	}
	return
}

func apClient(t *testing.T, f *apFake) *asyncpay.Client {
	c, err := asyncpay.New(asyncpay.Options{BaseURL: f.srv.URL, SecretKey: apKey,
		HTTP: providers.HTTPOptions{Timeout: 2 * time.Second, MaxAttempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func kindName(err error) string {
	return map[providers.ErrorKind]string{0: "nil", providers.Declined: "Declined", providers.InvalidRequest: "InvalidRequest",
		providers.Unavailable: "Unavailable", providers.Unknown: "Unknown"}[providers.KindOf(err)]
}

var apSeq int

func apPay(amount int64) providers.PaymentRequest {
	apSeq++
	return providers.PaymentRequest{IdempotencyKey: fmt.Sprintf("pay_01JAUDIT%06d", apSeq), Amount: amount, Currency: "NGN", PaymentMethod: "card", Capture: true}
}

func TestAuditAPPaymentsBooks(t *testing.T) {
	f := newAPFake(t)
	c := apClient(t, f)
	ctx := context.Background()
	var reported int64
	for _, amt := range []int64{1, 5000, 1234567, 1 << 53} {
		res, err := c.Authorize(ctx, apPay(amt))
		if err != nil || !res.Captured {
			t.Fatalf("Authorize(%d): %+v %v", amt, res, err)
		}
		reported += amt
		st, err := c.GetPayment(ctx, res.Reference)
		if err != nil || st.Status != "captured" || st.Amount != amt {
			t.Errorf("GetPayment: %+v %v", st, err)
		}
	}
	// documented "failed" envelope → decline, no money
	req := apPay(5000)
	req.PaymentMethod = "decline"
	_, err := c.Authorize(ctx, req)
	if providers.KindOf(err) != providers.Declined {
		t.Errorf("status failed envelope: %v (%s)", err, kindName(err))
	}
	if _, sum := f.captured(); sum != reported {
		t.Errorf("books: fake captured %d, adapter reported %d", sum, reported)
	}
	// refunds
	res, _ := c.Authorize(ctx, apPay(10000))
	reported += 10000
	if _, err := c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_1", Reference: res.Reference, Amount: 4000, Currency: "NGN"}); err != nil {
		t.Errorf("refund: %v", err)
	}
	_, err = c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_2", Reference: res.Reference, Amount: 7000, Currency: "NGN"})
	t.Logf("over-refund: %v (%s)", err, kindName(err))
	if f.refunds != 4000 {
		t.Errorf("refund books %d", f.refunds)
	}
}

func TestAuditAPAmbiguous(t *testing.T) {
	for _, flt := range []string{"500-after", "502-after", "hang-after", "503-after", "503-before"} {
		t.Run(flt, func(t *testing.T) {
			f := newAPFake(t)
			c := apClient(t, f)
			f.faults["/v1/payments"] = []string{flt}
			ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
			defer cancel()
			res, err := c.Authorize(ctx, apPay(5000))
			n, sum := f.captured()
			t.Logf("%s: res=%+v err=%v (%s); fake holds %d payments, %d minor", flt, res, err, kindName(err), n, sum)
			var reported int64
			if err == nil {
				reported = 5000
			}
			if err != nil && providers.KindOf(err) != providers.Unknown && n > 0 {
				t.Errorf("%s: money taken at Asyncpay (%d) but adapter said %s", flt, sum, kindName(err))
			}
			if err == nil && sum != reported {
				t.Errorf("%s: fake captured %d minor in %d payments; adapter reported one payment of %d", flt, sum, n, reported)
			}
		})
	}
}

func TestAuditAPEnvelope(t *testing.T) {
	cases := map[string]struct {
		status int
		body   string
	}{
		"no envelope":           {200, `{"id":"p1","amount":5000,"currency":"NGN","status":"successful"}`},
		"failed 200 with data":  {200, env("failed", "Insufficient funds", `{"id":"p1","amount":5000,"currency":"NGN","status":"failed"}`)},
		"failed 500":            {500, env("failed", "boom", "null")},
		"failed 400":            {400, env("failed", "amount must be an integer", "null")},
		"failed 422 after":      {422, env("failed", "Validation", "null")},
		"success data array":    {200, env("success", "ok", `[{"id":"p1","amount":5000,"currency":"NGN","status":"successful"}]`)},
		"success amount string": {200, env("success", "ok", `{"id":"p1","amount":"5000","currency":"NGN","status":"successful"}`)},
		"success amount major":  {200, env("success", "ok", `{"id":"p1","amount":50.00,"currency":"NGN","status":"successful"}`)},
	}
	for name, tc := range cases {
		f := newAPFake(t)
		c := apClient(t, f)
		tc := tc
		f.override["/v1/payments"] = func() (int, string) { return tc.status, tc.body }
		res, err := c.Authorize(context.Background(), apPay(5000))
		t.Logf("%s: %+v err=%v (%s)", name, res, err, kindName(err))
	}
}

func TestAuditAPPayouts(t *testing.T) {
	f := newAPFake(t)
	c := apClient(t, f)
	ctx := context.Background()
	ms, err := c.PayoutMethods(ctx)
	t.Logf("methods %+v %v", ms, err)
	st, err := c.CreatePayout(ctx, providers.PayoutRequest{IdempotencyKey: "po_01JAUDIT1", Reference: "WD1", MethodID: "7", Amount: 20000, Currency: "NGN", RecipientName: "A", RecipientAccount: "0123"})
	if err != nil {
		t.Fatal(err)
	}
	po := f.payouts[st.Reference]
	if st.Amount != po.Amount || st.Fee != po.Fee || st.TotalAmount != po.Amount+po.Fee {
		t.Errorf("payout %+v vs %+v", st, po)
	}
	for _, s := range []string{"processing", "completed", "rejected", "cancelled", "failed", "reversed"} {
		po.Status = s
		g, err := c.GetPayout(ctx, "WD1")
		t.Logf("status %s → %+v %v", s, g, err)
	}
	f.faults["/v1/payouts"] = []string{"500-after"}
	_, err = c.CreatePayout(ctx, providers.PayoutRequest{IdempotencyKey: "po_01JAUDIT2", Reference: "WD2", MethodID: "7", Amount: 20000, Currency: "NGN", RecipientName: "A", RecipientAccount: "0123"})
	if providers.KindOf(err) != providers.Unknown {
		t.Errorf("payout 500 after processing: %v (%s)", err, kindName(err))
	}
}
