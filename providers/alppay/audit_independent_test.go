package alppay_test

// An independent fake of alppay's "Create Payment" written from
// ../shared/provider-docs/alppay.txt alone (not from alppayfake), and
// scenarios that drive the adapter against it and compare books.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/alppay"
)

const (
	auditKey    = "ak_live_1234567890abcdef"
	auditSecret = "audit-hmac-secret"
)

var decimalRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

type pTxn struct {
	id     string
	amount string // decimal string as alppay would write it
}

type pPayment struct {
	id, amount, short, network, invoice, checkout, status string
	txns                                                  []pTxn
	customerID                                            int64
}

type alppayDocFake struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	seq        int
	payments   map[string]*pPayment
	requests   []string
	bodies     [][]byte
	violations []string
	hmacHex    bool // whether every X-HMAC was hex HMAC-SHA256(body) (the adapter's reading)

	after500 int
	delay    time.Duration
}

func newAlppayDocFake(t *testing.T) *alppayDocFake {
	f := &alppayDocFake{t: t, payments: map[string]*pPayment{}, hmacHex: true}
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

func (f *alppayDocFake) violate(format string, a ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, a...))
}

func pJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *alppayDocFake) answer(p *pPayment) map[string]any {
	total := new(big.Rat)
	txns := []map[string]any{}
	for _, t := range p.txns {
		r, _ := new(big.Rat).SetString(t.amount)
		total.Add(total, r)
		txns = append(txns, map[string]any{"paymentId": p.id, "txnId": t.id, "receivedAmount": t.amount,
			"asset": map[string]any{"short": p.short, "name": "Tether", "network": p.network}, "destTag": nil,
			"addressFrom": "Tfrom", "addressTo": "Tdeposit" + p.id[:4], "date": "2025-05-20T12:34:56Z"})
	}
	return map[string]any{"id": p.id, "transactions": txns, "amount": p.amount, "totalReceivedAmount": total.FloatString(2),
		"asset": map[string]any{"short": p.short, "name": "Tether", "network": p.network}, "addressTo": "Tdeposit" + p.id[:4],
		"confirmsNeeded": 30, "timeout": 9000, "checkoutUrl": p.checkout, "status": p.status, "displayStatus": p.status,
		"customer": map[string]any{"id": p.customerID}, "merchant": map[string]any{"id": "m"}, "invoice": p.invoice,
		"paymentRedirectUrl": "https://a-pay-system.com/en/invoice?id=" + p.id, "createdAt": "2025-05-20T12:34:56Z", "updatedAt": "2025-05-20T12:34:56Z"}
}

func (f *alppayDocFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.bodies = append(f.bodies, body)
	d := f.delay
	f.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// "Security: Requires both API-KEY and X-HMAC headers."
	if r.Header.Get("API-KEY") != auditKey || r.Header.Get("X-HMAC") == "" {
		pJSON(w, 401, map[string]any{"message": "unauthorized"})
		return
	}
	m := hmac.New(sha256.New, []byte(auditSecret))
	m.Write(body)
	if r.Header.Get("X-HMAC") != hex.EncodeToString(m.Sum(nil)) {
		f.hmacHex = false
	}
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v2/payment/") {
		// Not documented: the adapter's assumed read-back.
		p := f.payments[strings.TrimPrefix(r.URL.Path, "/v2/payment/")]
		if p == nil {
			pJSON(w, 404, map[string]any{"message": "not found"})
			return
		}
		pJSON(w, 200, f.answer(p))
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v2/payment" {
		f.violate("%s %s: the document has only POST https://api.alppay.io/v2/payment", r.Method, r.URL.Path)
		pJSON(w, 404, map[string]any{"message": "not found"})
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		f.violate("Content-Type %q, the document says application/json", r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var req map[string]any
	if err := dec.Decode(&req); err != nil {
		f.violate("body is not JSON: %v", err)
		pJSON(w, 400, map[string]any{"message": "bad json"})
		return
	}
	for k := range req {
		switch k {
		case "amount", "asset", "customer", "clientId", "invoice", "checkoutUrl":
		default:
			f.violate("undocumented field %q", k)
		}
	}
	amount, ok := req["amount"].(string)
	if !ok || !decimalRE.MatchString(amount) {
		f.violate("amount %v (%T) is not a decimal string", req["amount"], req["amount"])
		pJSON(w, 400, map[string]any{"message": "amount"})
		return
	}
	asset, ok := req["asset"].(map[string]any)
	short, _ := asset["short"].(string)
	network, _ := asset["network"].(string)
	if !ok || short == "" || network == "" {
		f.violate("asset %v must be {short, network}", req["asset"])
	}
	cust, ok := req["customer"].(map[string]any)
	if !ok {
		f.violate("customer (required, object) missing")
		pJSON(w, 400, map[string]any{"message": "customer"})
		return
	}
	var cid int64
	if n, ok := cust["id"].(json.Number); !ok || strings.ContainsAny(string(n), ".eE") {
		f.violate("customer.id %v is not an integer", cust["id"])
	} else {
		cid, _ = n.Int64()
	}
	if cid > 1<<53 {
		f.t.Logf("note: customer.id %d is above 2^53 (JSON number precision in many servers)", cid)
	}
	for _, k := range []string{"clientId", "invoice", "checkoutUrl"} {
		if v, ok := req[k]; ok {
			if _, ok := v.(string); !ok {
				f.violate("%s is not a string", k)
			}
		}
	}
	f.seq++
	id := fmt.Sprintf("%08d-7663-4580-ba7f-8afb2f2d3292", f.seq)
	inv, _ := req["invoice"].(string)
	co, _ := req["checkoutUrl"].(string)
	p := &pPayment{id: id, amount: amount, short: short, network: network, invoice: inv, checkout: co, status: "OPEN", customerID: cid}
	f.payments[id] = p
	if f.after500 > 0 {
		f.after500--
		w.WriteHeader(500)
		return
	}
	pJSON(w, 200, f.answer(p))
}

func (f *alppayDocFake) pay(id, amount string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.payments[id]
	p.txns = append(p.txns, pTxn{id: fmt.Sprintf("0x%d%s", len(p.txns), id[:4]), amount: amount})
}

func (f *alppayDocFake) last() (*pPayment, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var p *pPayment
	for _, v := range f.payments {
		if p == nil || v.id > p.id {
			p = v
		}
	}
	var b []byte
	if len(f.bodies) > 0 {
		b = f.bodies[len(f.bodies)-1]
	}
	return p, b
}

func (f *alppayDocFake) nreq() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.requests) }

func newAlp(t *testing.T, f *alppayDocFake) *alppay.Client {
	c, err := alppay.New(alppay.Options{BaseURL: f.srv.URL, APIKey: auditKey, Secret: auditSecret,
		HTTP: providers.HTTPOptions{Timeout: 300 * time.Millisecond, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuditAlppayAmountsAndReceipts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cur, net string
		amount   int64
		wantStr  string
	}{
		{"USDT", "tron", 1000_000000, "1000.00"},
		{"USDT", "tron", 1_500000, "1.50"},
		{"USDT", "tron", 1, "0.000001"},
		{"usdc", "ethereum", 123_456789, "123.456789"},
		{"BTC", "bitcoin", 1, "0.00000001"},
		{"BTC", "bitcoin", 2_100_000_000_000_000, "21000000.00"},
		{"USDT", "tron", 9_000_000_000_000_000_000, "9000000000000.00"},
	} {
		f := newAlppayDocFake(t)
		c := newAlp(t, f)
		st, err := c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_1", Reference: "ORD-1", Amount: tc.amount, Currency: tc.cur,
			Network: tc.net, CustomerName: "John", CustomerEmail: "j@example.com", CustomerID: "cus_abc", CallbackURL: "https://shop/x"})
		if err != nil {
			t.Errorf("%s %d: %v", tc.cur, tc.amount, err)
			continue
		}
		p, _ := f.last()
		if p.amount != tc.wantStr {
			t.Errorf("%s %d sent as %q, want %q", tc.cur, tc.amount, p.amount, tc.wantStr)
		}
		if st.Amount != tc.amount || st.Status != "open" || st.PaymentURL == "" || st.Reference != p.id {
			t.Errorf("state %+v", st)
		}
		if !f.hmacHex {
			t.Logf("X-HMAC is not hex HMAC-SHA256(body)")
		}
	}
}

func TestAuditAlppayPartialAndPaid(t *testing.T) {
	ctx := context.Background()
	f := newAlppayDocFake(t)
	c := newAlp(t, f)
	st, err := c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_2", Amount: 1000_000000, Currency: "USDT", Network: "tron", CustomerID: "42"})
	if err != nil {
		t.Fatal(err)
	}
	f.pay(st.Reference, "20.00")
	got, err := c.GetInvoice(ctx, st.Reference)
	if err != nil || got.AmountPaid != 20_000000 || got.Status != "partially_paid" || len(got.Receipts) != 1 {
		t.Errorf("after 20.00: %+v %v", got, err)
	}
	f.pay(st.Reference, "980.00")
	got, err = c.GetInvoice(ctx, st.Reference)
	// alppay's status word is still OPEN (the document's example shows OPEN
	// beside a received transaction and confirmsNeeded 30).
	t.Logf("after 1000.00 received, alppay status OPEN: adapter status %q paid %d, receipts' confirmations %v (confirmsNeeded %d)",
		got.Status, got.AmountPaid, []int{got.Receipts[0].Confirmations, got.Receipts[1].Confirmations}, got.ConfirmationsRequired)
}

func TestAuditAlppayRequestShape(t *testing.T) {
	ctx := context.Background()
	f := newAlppayDocFake(t)
	c := newAlp(t, f)
	// No customer fields at all: customer is required by the document.
	if _, err := c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_3", Amount: 5_000000, Currency: "USDT", Network: "tron"}); err != nil {
		t.Fatal(err)
	}
	_, b := f.last()
	t.Logf("body without customer data: %s", b)
	if !f.hmacHex {
		t.Errorf("X-HMAC is not hex HMAC-SHA256(body)")
	}
	// Numeric customer id beyond 2^53.
	if _, err := c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_4", Amount: 5_000000, Currency: "USDT", Network: "tron", CustomerID: "9007199254740993"}); err != nil {
		t.Fatal(err)
	}
	_, b = f.last()
	t.Logf("body with numeric customer id: %s", b)
}

func TestAuditAlppayRefusedBeforeCall(t *testing.T) {
	f := newAlppayDocFake(t)
	c := newAlp(t, f)
	for _, r := range []providers.InvoiceRequest{
		{IdempotencyKey: "i", Amount: 1000, Currency: "USD", Network: "tron"},
		{IdempotencyKey: "i", Amount: 1000, Currency: "JPY", Network: "tron"},
		{IdempotencyKey: "i", Amount: 1000, Currency: "USDT"},
	} {
		if _, err := c.CreateInvoice(context.Background(), r); providers.KindOf(err) != providers.InvalidRequest {
			t.Errorf("%+v: %v", r, err)
		}
	}
	if n := f.nreq(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestAuditAlppayAmbiguous(t *testing.T) {
	ctx := context.Background()
	f := newAlppayDocFake(t)
	c := newAlp(t, f)
	f.after500 = 1
	_, err := c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_5", Amount: 1_000000, Currency: "USDT", Network: "tron"})
	if providers.KindOf(err) != providers.Unknown {
		t.Errorf("500 after creating: kind %v %v", providers.KindOf(err), err)
	}
	if n := f.nreq(); n != 1 {
		t.Errorf("creation re-sent %d times without an idempotency key", n)
	}
	f.delay = 400 * time.Millisecond
	_, err = c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_6", Amount: 1_000000, Currency: "USDT", Network: "tron"})
	if providers.KindOf(err) != providers.Unknown {
		t.Errorf("timeout: kind %v %v", providers.KindOf(err), err)
	}
}
