package aikdata_test

// An independent fake of the aikdata Payments API written from
// ../shared/provider-docs/aikdata-openapi.txt alone (not from aikdatafake),
// and scenarios that drive the adapter against it and compare books.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aikdata"
)

const auditToken = "eyJhbGciOiJIUzI1NiJ9.audit.sig"

type kCharge struct {
	id       string
	amount   int64
	currency string
	status   string
	refunded int64
	meta     map[string]any
	seq      int
}

type aikdataDocFake struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	seq        int
	charges    map[string]*kCharge
	requests   []string
	violations []string

	// faults
	after500    map[string]int
	delay       map[string]time.Duration
	declineNext bool
	maxLimit    int  // the provider's page size cap (doc silent; example 20)
	listMeta    bool // list items carry metadata and currency (doc example: no)
}

var iso4217 = regexp.MustCompile(`^[A-Z]{3}$`)

// a few ISO 4217 codes; crypto tickers are not ISO 4217.
var isoKnown = map[string]bool{"USD": true, "EUR": true, "GBP": true, "JPY": true, "KRW": true, "CAD": true, "AUD": true,
	"CHF": true, "SGD": true, "INR": true, "BDT": true, "NGN": true, "KES": true, "KWD": true, "BHD": true}

func newAikdataDocFake(t *testing.T) *aikdataDocFake {
	f := &aikdataDocFake{t: t, charges: map[string]*kCharge{}, after500: map[string]int{}, delay: map[string]time.Duration{}, maxLimit: 1000}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/payments/", f.serve)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.violate("%s %s is outside the server URL /v1/payments", r.Method, r.URL.Path)
		f.mu.Unlock()
		http.NotFound(w, r)
	})
	f.srv = httptest.NewServer(mux)
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

func (f *aikdataDocFake) violate(format string, a ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, a...))
}

func kErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func kJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func jsonInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

func (f *aikdataDocFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path := strings.TrimPrefix(r.URL.Path, "/v1/payments")
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+path)
	d := f.delay[path]
	f.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// securitySchemes bearerAuth: http bearer.
	if r.Header.Get("Authorization") != "Bearer "+auditToken {
		w.WriteHeader(401)
		return
	}
	var m map[string]any
	if r.Method == http.MethodPost {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			f.violate("%s: Content-Type %q, the requestBody is application/json", path, r.Header.Get("Content-Type"))
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			f.violate("%s: body not a JSON object: %v", path, err)
			kErr(w, 400, "invalid_request", "bad json")
			return
		}
	}
	answer := func(v any) {
		if f.after500[path] > 0 {
			f.after500[path]--
			w.WriteHeader(500)
			return
		}
		kJSON(w, v)
	}
	switch {
	case path == "/charge" && r.Method == http.MethodPost:
		for k := range m {
			if k != "amount" && k != "currency" && k != "description" && k != "metadata" {
				f.violate("/charge: undocumented property %q", k)
			}
		}
		amt, ok := jsonInt(m["amount"])
		if !ok {
			f.violate("/charge: amount %v is not an integer", m["amount"])
			kErr(w, 400, "invalid_amount", "amount must be an integer")
			return
		}
		cur, _ := m["currency"].(string)
		if !iso4217.MatchString(cur) || !isoKnown[cur] {
			// "ISO 4217 currency code"
			kErr(w, 400, "invalid_currency", "currency must be an ISO 4217 code")
			return
		}
		if v, ok := m["description"]; ok {
			if _, ok := v.(string); !ok {
				f.violate("description is not a string")
			}
		}
		var meta map[string]any
		if v, ok := m["metadata"]; ok {
			if meta, ok = v.(map[string]any); !ok {
				f.violate("metadata is not an object")
			}
		}
		if f.declineNext {
			f.declineNext = false
			kErr(w, 400, "card_declined", "The card was declined.")
			return
		}
		f.seq++
		ch := &kCharge{id: fmt.Sprintf("ch_%06d", f.seq), amount: amt, currency: cur, status: "succeeded", meta: meta, seq: f.seq}
		f.charges[ch.id] = ch
		answer(map[string]any{"id": ch.id, "amount": amt, "currency": cur, "status": "succeeded", "created_at": time.Now().UTC().Format(time.RFC3339)})
	case strings.HasPrefix(path, "/charge/") && r.Method == http.MethodGet:
		ch := f.charges[strings.TrimPrefix(path, "/charge/")]
		if ch == nil {
			kErr(w, 404, "not_found", "no such charge") // undocumented
			return
		}
		kJSON(w, map[string]any{"id": ch.id, "amount": ch.amount, "currency": ch.currency, "status": ch.status})
	case path == "/charges" && r.Method == http.MethodGet:
		q := r.URL.Query()
		limit, offset := 20, 0
		if v := q.Get("limit"); v != "" {
			limit, _ = strconv.Atoi(v)
		}
		if v := q.Get("offset"); v != "" {
			offset, _ = strconv.Atoi(v)
		}
		limit = min(limit, f.maxLimit)
		var all []*kCharge
		for _, ch := range f.charges {
			if s := q.Get("status"); s == "" || s == ch.status {
				all = append(all, ch)
			}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].seq > all[j].seq })
		data := []map[string]any{}
		for i := offset; i < len(all) && i < offset+limit; i++ {
			it := map[string]any{"id": all[i].id, "amount": all[i].amount, "status": all[i].status}
			if f.listMeta {
				it["currency"], it["metadata"] = all[i].currency, all[i].meta
			}
			data = append(data, it)
		}
		kJSON(w, map[string]any{"data": data, "total": len(all), "limit": limit, "offset": offset})
	case path == "/refund" && r.Method == http.MethodPost:
		for k := range m {
			if k != "charge_id" && k != "amount" && k != "reason" && k != "metadata" {
				f.violate("/refund: undocumented property %q", k)
			}
		}
		id, _ := m["charge_id"].(string)
		ch := f.charges[id]
		if ch == nil {
			kErr(w, 400, "invalid_charge", "no such charge")
			return
		}
		amt := ch.amount - ch.refunded // "omit for full"
		if v, ok := m["amount"]; ok {
			if amt, ok = jsonInt(v); !ok {
				f.violate("/refund: amount %v is not an integer", v)
				kErr(w, 400, "invalid_amount", "amount")
				return
			}
		}
		if amt <= 0 || ch.refunded+amt > ch.amount {
			kErr(w, 400, "amount_too_large", "refund exceeds charge")
			return
		}
		ch.refunded += amt
		f.seq++
		answer(map[string]any{"id": fmt.Sprintf("rf_%06d", f.seq), "charge_id": id, "amount": amt, "status": "succeeded"})
	default:
		f.violate("%s %s is not in the document", r.Method, path)
		w.WriteHeader(404)
	}
}

func (f *aikdataDocFake) books() (captured, refunded int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.charges {
		captured += ch.amount
		refunded += ch.refunded
	}
	return
}

func (f *aikdataDocFake) nreq() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.requests) }

func newAik(t *testing.T, f *aikdataDocFake) *aikdata.Client {
	c, err := aikdata.New(aikdata.Options{BaseURL: f.srv.URL + "/v1/payments", Token: auditToken,
		HTTP: providers.HTTPOptions{Timeout: 300 * time.Millisecond, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantBooks(t *testing.T, f *aikdataDocFake, captured, refunded int64) {
	t.Helper()
	c, r := f.books()
	if c != captured || r != refunded {
		t.Errorf("books at aikdata: captured %d refunded %d; paymentd was told captured %d refunded %d", c, r, captured, refunded)
	}
}

func TestAuditAikdataChargeRefundStatus(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cur string
		amt int64
	}{{"USD", 1500}, {"JPY", 1000}, {"usd", 9_007_199_254_740_993}} {
		f := newAikdataDocFake(t)
		c := newAik(t, f)
		res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_k1", Amount: tc.amt, Currency: tc.cur, Capture: true,
			Description: "Order #1234", Metadata: map[string]string{"order_id": "ORD-1"}})
		if err != nil || !res.Captured {
			t.Fatalf("%s: Authorize %+v %v", tc.cur, res, err)
		}
		wantBooks(t, f, tc.amt, 0)
		st, err := c.GetPayment(ctx, res.Reference)
		if err != nil || st.Status != "captured" || st.Amount != tc.amt || st.Currency != strings.ToUpper(tc.cur) {
			t.Errorf("GetPayment: %+v %v", st, err)
		}
		part := tc.amt / 3
		if _, err := c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_1", Reference: res.Reference, Amount: part, Currency: tc.cur, Reason: "requested_by_customer"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_2", Reference: res.Reference, Amount: tc.amt - part, Currency: tc.cur}); err != nil {
			t.Fatal(err)
		}
		wantBooks(t, f, tc.amt, tc.amt)
		_, err = c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_3", Reference: res.Reference, Amount: 1, Currency: tc.cur})
		if k := providers.KindOf(err); k != providers.InvalidRequest && k != providers.Declined {
			t.Errorf("over-refund: %v", err)
		}
		wantBooks(t, f, tc.amt, tc.amt)
	}
}

func TestAuditAikdataRefusedBeforeCall(t *testing.T) {
	f := newAikdataDocFake(t)
	c := newAik(t, f)
	_, err := c.Authorize(context.Background(), providers.PaymentRequest{IdempotencyKey: "p", Amount: 100, Currency: "USD"})
	if providers.KindOf(err) != providers.InvalidRequest {
		t.Errorf("manual capture: %v", err)
	}
	if n := f.nreq(); n != 0 {
		t.Errorf("manual capture sent %d requests", n)
	}
	// "currency: ISO 4217 currency code": paymentd's crypto assets are not.
	for _, cur := range []string{"USDT", "USDC", "BTC"} {
		before := f.nreq()
		_, err := c.Authorize(context.Background(), providers.PaymentRequest{IdempotencyKey: "p", Amount: 1_000_000, Currency: cur, Capture: true})
		if n := f.nreq() - before; n != 0 {
			t.Errorf("%s is not an ISO 4217 code, yet the adapter sent it to aikdata (%d request(s)); answer: %v", cur, n, err)
		}
	}
}

func TestAuditAikdataDeclineAndAmbiguous(t *testing.T) {
	ctx := context.Background()
	f := newAikdataDocFake(t)
	c := newAik(t, f)
	f.mu.Lock()
	f.declineNext = true
	f.mu.Unlock()
	_, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "p", Amount: 1500, Currency: "USD", Capture: true})
	if providers.KindOf(err) != providers.Declined {
		t.Errorf("documented card_declined: kind %v %v", providers.KindOf(err), err)
	}
	wantBooks(t, f, 0, 0)

	f.mu.Lock()
	f.after500["/charge"] = 1
	f.mu.Unlock()
	_, err = c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "p2", Amount: 1500, Currency: "USD", Capture: true})
	if providers.KindOf(err) != providers.Unknown {
		t.Errorf("500 after charging: kind %v", providers.KindOf(err))
	}
	wantBooks(t, f, 1500, 0)
	// The reconciler asks by paymentd's id; the list is the only way.
	st, err := c.GetPayment(ctx, "p2")
	t.Logf("GetPayment(paymentd id) with the documented list shape (no metadata): %+v %v", st, err)
	if providers.KindOf(err) == providers.Declined || (err == nil && st.Status == "failed") {
		t.Errorf("not found must never be failed")
	}

	f.mu.Lock()
	f.delay["/charge"] = 400 * time.Millisecond
	f.mu.Unlock()
	_, err = c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "p3", Amount: 1500, Currency: "USD", Capture: true})
	if providers.KindOf(err) != providers.Unknown {
		t.Errorf("timeout: kind %v", providers.KindOf(err))
	}
	f.mu.Lock()
	f.delay["/charge"] = 0
	f.mu.Unlock()
	time.Sleep(150 * time.Millisecond) // let the delayed handler book the charge
	wantBooks(t, f, 3000, 0)
}

// ListPayments against a provider whose page size is capped below the
// adapter's limit=100 (the document does not give a cap; its example
// answers limit 20).
func TestAuditAikdataListPaymentsPageCap(t *testing.T) {
	ctx := context.Background()
	f := newAikdataDocFake(t)
	f.maxLimit = 20
	c := newAik(t, f)
	for i := range 45 {
		if _, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: fmt.Sprint("p", i), Amount: 100, Currency: "USD", Capture: true}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	err := c.ListPayments(ctx, func(providers.ListedPayment) error { n++; return nil })
	if err != nil || n != 45 {
		t.Errorf("ListPayments saw %d of 45 charges (err %v) when aikdata caps a page at 20", n, err)
	}
}

// The reconciler's search by paymentd's id, with list items carrying
// metadata (the document does not show it) and pages capped at 20.
func TestAuditAikdataFindByPaymentdIDPageCap(t *testing.T) {
	ctx := context.Background()
	f := newAikdataDocFake(t)
	f.maxLimit, f.listMeta = 20, true
	c := newAik(t, f)
	for i := range 45 {
		if _, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: fmt.Sprint("pay_", i), Amount: 100 + int64(i), Currency: "USD", Capture: true}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.GetPayment(ctx, "pay_0") // the oldest: listed last
	if err != nil || st.Amount != 100 || st.Status != "captured" {
		t.Errorf("GetPayment(pay_0) with pages of 20: %+v %v", st, err)
	}
}
