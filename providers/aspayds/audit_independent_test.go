package aspayds_test

// An independent fake of aspayds written from /work/shared/provider-docs/aspayds.txt
// alone (before reading the adapter or aspaydsfake). It validates every
// request strictly as the document describes and keeps its own books.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aspayds"
)

const (
	auKey    = "pk_audit"
	auSecret = "sk_audit"
)

type auInvoice struct {
	ID, Ref, Name, Callback string
	Amount                  int64 // minor (poisha)
	Paid                    int64 // minor
	Status                  string
	PaidAt                  string
}

type auPayout struct {
	ID, Ref, Name, Account, Desc, Callback string
	Method                                 int
	Amount, Fee                            int64 // minor
	Status                                 string
}

type auMethod struct {
	ID       int
	Name     string
	Currency string
	Min, Max int64 // minor
	FeeBps   int64 // the fake's own fee rule (the document shows only the fee in answers)
	FeeFixed int64
}

type auCall struct {
	Method, Path string
	Body         []byte
}

// auFake is the independent aspayds.
type auFake struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex

	invoices map[string]*auInvoice // by invoice id
	invByRef map[string]*auInvoice
	payouts  map[string]*auPayout
	poByRef  map[string]*auPayout
	methods  []auMethod
	seq      int

	calls      []auCall
	violations []string
	notes      []string

	// faults: path → queue of faults, consumed per request.
	// "500-after": process, then answer 500. "hang-after": process, then sleep past the deadline.
	// "503": refuse without processing. "500-before": 500 without processing.
	faults map[string][]string
	// getExtra adds fields to GET /payment/{id} beyond the documented four.
	getRaw func(inv *auInvoice) string
}

func newAuFake(t *testing.T) *auFake {
	f := &auFake{t: t, invoices: map[string]*auInvoice{}, invByRef: map[string]*auInvoice{},
		payouts: map[string]*auPayout{}, poByRef: map[string]*auPayout{}, faults: map[string][]string{},
		methods: []auMethod{{ID: 1, Name: "bKash", Currency: "BDT", Min: 10000, Max: 5000000, FeeBps: 150},
			{ID: 2, Name: "Nagad", Currency: "BDT", Min: 5000, Max: 2500000, FeeFixed: 1000}}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, v := range f.violations {
			t.Errorf("DOC VIOLATION: %s", v)
		}
		for _, n := range f.notes {
			t.Logf("note (document silent): %s", n)
		}
	})
	return f
}

func (f *auFake) URL() string { return f.srv.URL + "/api" }

func (f *auFake) violate(format string, args ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
}

func (f *auFake) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	for _, o := range f.notes {
		if o == n {
			return
		}
	}
	f.notes = append(f.notes, n)
}

func (f *auFake) fault(path, kind string) {
	f.mu.Lock()
	f.faults[path] = append(f.faults[path], kind)
	f.mu.Unlock()
}

func (f *auFake) callsTo(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.Path == path {
			n++
		}
	}
	return n
}

func (f *auFake) ncalls() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.calls) }

// money parses a "Numeric" amount: a JSON number (as in every example) or a
// numeric string (the document says only "Numeric"), in major units, to
// minor units with BDT's two digits.
var numericRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

func (f *auFake) money(field string, raw json.RawMessage) (int64, bool) {
	s := strings.TrimSpace(string(raw))
	if strings.HasPrefix(s, `"`) {
		f.note("%s sent as a JSON string %s (document examples use JSON numbers; 'Numeric')", field, s)
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return 0, false
		}
		s = str
	}
	if !numericRE.MatchString(s) {
		f.violate("%s = %s is not a plain non-negative decimal number", field, s)
		return 0, false
	}
	whole, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 2 {
		f.violate("%s = %s has more than 2 decimal places (major units of BDT)", field, s)
		return 0, false
	}
	v, err := strconv.ParseInt(whole+frac+strings.Repeat("0", 2-len(frac)), 10, 64)
	if err != nil {
		f.violate("%s = %s out of range", field, s)
		return 0, false
	}
	if len(whole)+len(frac) > 15 {
		f.note("%s = %s has more than 15 significant digits: a PHP float loses precision", field, s)
	}
	return v, true
}

func major(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

// majorNum writes a JSON number as the document's examples do (100, 100.5).
func majorNum(v int64) string {
	if v%100 == 0 {
		return strconv.FormatInt(v/100, 10)
	}
	return strings.TrimRight(major(v), "0")
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func errBody(msg string, field string) string {
	b, _ := json.Marshal(map[string]any{"status": "error", "message": msg, "errors": map[string][]string{field: {msg}}})
	return string(b)
}

func (f *auFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/api")
	f.mu.Lock()
	f.calls = append(f.calls, auCall{r.Method, path, body})
	var flt string
	if q := f.faults[path]; len(q) > 0 {
		flt, f.faults[path] = q[0], q[1:]
	}
	if !strings.HasPrefix(r.URL.EscapedPath(), "/api/") {
		f.violate("%s %s is not under the base URL …/api", r.Method, r.URL.Path)
	}
	if r.Header.Get("x-api-key") != auKey || r.Header.Get("x-api-secret") != auSecret {
		f.violate("%s %s: missing or wrong x-api-key/x-api-secret", r.Method, path)
		f.mu.Unlock()
		writeJSON(w, 401, `{"status":"error","message":"Unauthenticated."}`)
		return
	}
	if len(r.Header.Values("Authorization")) > 0 {
		f.note("request carries an Authorization header the document does not mention")
	}
	switch flt {
	case "503":
		f.mu.Unlock()
		writeJSON(w, 503, `{"status":"error","message":"maintenance"}`)
		return
	case "500-before":
		f.mu.Unlock()
		writeJSON(w, 500, `{"status":"error","message":"Server Error"}`)
		return
	}
	status, out := f.route(r, path, body)
	f.mu.Unlock()
	switch flt {
	case "500-after":
		writeJSON(w, 500, `{"status":"error","message":"Server Error"}`)
		return
	case "hang-after":
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
		return
	}
	writeJSON(w, status, out)
}

var invIDRE = regexp.MustCompile(`^/payment/([^/]+)$`)
var poIDRE = regexp.MustCompile(`^/payout/([^/]+)$`)

func (f *auFake) needJSON(r *http.Request, path string) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		f.violate("POST %s: Content-Type %q, the document sends application/json", path, ct)
	}
}

// decode reads a JSON object keeping raw values, noting fields the document does not list.
func (f *auFake) decode(path string, body []byte, known ...string) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		f.violate("POST %s: body is not a JSON object: %v", path, err)
		return nil, false
	}
	for k := range m {
		ok := false
		for _, kn := range known {
			ok = ok || k == kn
		}
		if !ok {
			f.note("POST %s sends field %q that the document does not list", path, k)
		}
	}
	return m, true
}

func str(m map[string]json.RawMessage, k string) (string, bool) {
	raw, ok := m[k]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func (f *auFake) route(r *http.Request, path string, body []byte) (int, string) {
	switch {
	case r.Method == "POST" && path == "/payment/create":
		f.needJSON(r, path)
		m, ok := f.decode(path, body, "amount", "customer_name", "transaction_reference", "callback_url")
		if !ok {
			return 400, errBody("bad json", "body")
		}
		amt, ok := f.money("amount", m["amount"])
		if !ok || amt <= 0 {
			return 422, errBody("The amount must be a number.", "amount")
		}
		name, ok := str(m, "customer_name")
		if !ok || name == "" || len([]rune(name)) > 255 {
			f.violate("customer_name %q missing or over 255 chars", name)
			return 422, errBody("The customer name field is required.", "customer_name")
		}
		ref, ok := str(m, "transaction_reference")
		if !ok || ref == "" || len([]rune(ref)) > 20 {
			f.violate("transaction_reference %q missing or over 20 chars", ref)
			return 422, errBody("The transaction reference may not be greater than 20 characters.", "transaction_reference")
		}
		cb, ok := str(m, "callback_url")
		if !ok || cb == "" {
			f.violate("callback_url missing")
			return 422, errBody("The callback url field is required.", "callback_url")
		}
		if f.invByRef[ref] != nil {
			return 422, errBody("The transaction reference has already been taken.", "transaction_reference")
		}
		f.seq++
		inv := &auInvoice{ID: fmt.Sprintf("ATINV1703839200%04d", f.seq), Ref: ref, Name: name, Callback: cb, Amount: amt, Status: "pending"}
		f.invoices[inv.ID], f.invByRef[ref] = inv, inv
		return 200, fmt.Sprintf(`{"status":"success","invoice_id":%q,"payment_url":"https://aspayds.net/methods/%s"}`, inv.ID, inv.ID)
	case r.Method == "POST" && path == "/payment/batch/status":
		f.needJSON(r, path)
		var req struct{ IDs []string }
		if json.Unmarshal(body, &req) != nil || req.IDs == nil {
			f.violate("batch status body without ids array: %s", body)
			return 422, errBody("The ids field is required.", "ids")
		}
		var found []string
		nf := []string{}
		for _, id := range req.IDs {
			inv := f.findInv(id)
			if inv == nil {
				nf = append(nf, id)
				continue
			}
			found = append(found, fmt.Sprintf(`{"invoice_id":%q,"transaction_reference":%q,"status":%q,"amount":%s,"amount_paid":%s}`,
				inv.ID, inv.Ref, inv.Status, majorNum(inv.Amount), majorNum(inv.Paid)))
		}
		nfj, _ := json.Marshal(nf)
		return 200, fmt.Sprintf(`{"status":"success","total_requested":%d,"total_found":%d,"invoices":[%s],"not_found_ids":%s}`,
			len(req.IDs), len(found), strings.Join(found, ","), nfj)
	case r.Method == "GET" && invIDRE.MatchString(path):
		id := unesc(invIDRE.FindStringSubmatch(path)[1])
		inv := f.findInv(id)
		if inv == nil {
			return 404, `{"status":"error","message":"Invoice not found"}`
		}
		if f.getRaw != nil {
			return 200, f.getRaw(inv)
		}
		paidAt := "null"
		if inv.PaidAt != "" {
			paidAt = strconv.Quote(inv.PaidAt)
		}
		// exactly the document's four fields
		return 200, fmt.Sprintf(`{"invoice_id":%q,"status":%q,"amount_paid":%s,"paid_at":%s}`, inv.ID, inv.Status, majorNum(inv.Paid), paidAt)
	case r.Method == "GET" && path == "/payout/methods":
		var ms []string
		for _, m := range f.methods {
			ms = append(ms, fmt.Sprintf(`{"id":%d,"name":%q,"type":"mobile_banking","account_type":"Personal","currency":%q,"min_amount":%s,"max_amount":%s,"logo":"https://payment.aspayds.net/storage/payout/x.png"}`,
				m.ID, m.Name, m.Currency, majorNum(m.Min), majorNum(m.Max)))
		}
		return 200, `{"status":"success","data":[` + strings.Join(ms, ",") + `]}`
	case r.Method == "POST" && path == "/payout/request":
		f.needJSON(r, path)
		m, ok := f.decode(path, body, "payout_method_id", "amount", "recipient_name", "recipient_account", "transaction_reference", "description", "callback_url")
		if !ok {
			return 400, errBody("bad json", "body")
		}
		var mid int
		if raw := m["payout_method_id"]; len(raw) > 0 && raw[0] == '"' {
			f.note("payout_method_id sent as a string %s; /payout/methods gives a JSON integer id", raw)
			var s string
			json.Unmarshal(raw, &s)
			mid, _ = strconv.Atoi(s)
		} else if json.Unmarshal(raw, &mid) != nil {
			f.violate("payout_method_id %s is not the method's integer id", raw)
			return 422, errBody("The selected payout method id is invalid.", "payout_method_id")
		}
		var meth *auMethod
		for i := range f.methods {
			if f.methods[i].ID == mid {
				meth = &f.methods[i]
			}
		}
		if meth == nil {
			return 422, errBody("The selected payout method id is invalid.", "payout_method_id")
		}
		amt, ok := f.money("amount", m["amount"])
		if !ok || amt <= 0 {
			return 422, errBody("The amount must be a number.", "amount")
		}
		rn, _ := str(m, "recipient_name")
		ra, _ := str(m, "recipient_account")
		ref, _ := str(m, "transaction_reference")
		if rn == "" || ra == "" {
			f.violate("recipient_name/recipient_account missing")
			return 422, errBody("The recipient name field is required.", "recipient_name")
		}
		if ref == "" || len([]rune(ref)) > 50 {
			f.violate("payout transaction_reference %q missing or over 50", ref)
			return 422, errBody("The transaction reference may not be greater than 50 characters.", "transaction_reference")
		}
		if amt < meth.Min || amt > meth.Max {
			return 422, errBody(fmt.Sprintf("The amount must be between %s and %s.", majorNum(meth.Min), majorNum(meth.Max)), "amount")
		}
		if f.poByRef[ref] != nil {
			return 422, errBody("The transaction reference has already been taken.", "transaction_reference")
		}
		desc, _ := str(m, "description")
		cb, _ := str(m, "callback_url")
		f.seq++
		fee := meth.FeeFixed + amt*meth.FeeBps/10000
		p := &auPayout{ID: fmt.Sprintf("ATPAY1703839200%04d", f.seq), Ref: ref, Name: rn, Account: ra, Desc: desc, Callback: cb,
			Method: mid, Amount: amt, Fee: fee, Status: "pending"}
		f.payouts[p.ID], f.poByRef[ref] = p, p
		// the document's answer repeats "status"
		return 201, fmt.Sprintf(`{"status":"success","message":"Payout request created successfully","payout_id":%q,"transaction_reference":%q,"amount":%s,"fee":%s,"total_amount":%s,"status":"pending"}`,
			p.ID, p.Ref, majorNum(p.Amount), majorNum(p.Fee), majorNum(p.Amount+p.Fee))
	case r.Method == "POST" && path == "/payout/batch/status":
		f.needJSON(r, path)
		var req struct{ IDs []string }
		if json.Unmarshal(body, &req) != nil || req.IDs == nil {
			f.violate("payout batch status body without ids array: %s", body)
			return 422, errBody("The ids field is required.", "ids")
		}
		var found []string
		nf := []string{}
		for _, id := range req.IDs {
			p := f.findPo(id)
			if p == nil {
				nf = append(nf, id)
				continue
			}
			found = append(found, fmt.Sprintf(`{"payout_id":%q,"transaction_reference":%q,"status":%q,"amount":%s}`, p.ID, p.Ref, p.Status, majorNum(p.Amount)))
		}
		nfj, _ := json.Marshal(nf)
		return 200, fmt.Sprintf(`{"status":"success","total_requested":%d,"total_found":%d,"payouts":[%s],"not_found_ids":%s}`,
			len(req.IDs), len(found), strings.Join(found, ","), nfj)
	case r.Method == "GET" && poIDRE.MatchString(path):
		p := f.findPo(unesc(poIDRE.FindStringSubmatch(path)[1]))
		if p == nil {
			return 404, `{"status":"error","message":"Payout not found"}`
		}
		return 200, fmt.Sprintf(`{"payout_id":%q,"transaction_reference":%q,"status":%q,"amount":%s,"fee":%s,"total_amount":%s,"recipient_name":%q,"recipient_account":%q,"processed_at":null,"created_at":"2023-12-29T14:00:00Z"}`,
			p.ID, p.Ref, p.Status, majorNum(p.Amount), majorNum(p.Fee), majorNum(p.Amount+p.Fee), p.Name, p.Account)
	}
	f.violate("%s %s is not a documented endpoint", r.Method, path)
	return 404, `{"status":"error","message":"Not Found"}`
}

func unesc(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// {id} can be the invoice_number OR transaction_reference.
func (f *auFake) findInv(id string) *auInvoice {
	if inv := f.invoices[id]; inv != nil {
		return inv
	}
	return f.invByRef[id]
}

func (f *auFake) findPo(id string) *auPayout {
	if p := f.payouts[id]; p != nil {
		return p
	}
	return f.poByRef[id]
}

// pay records a customer's payment of amt minor units towards an invoice.
func (f *auFake) pay(id string, amt int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := f.findInv(id)
	inv.Paid += amt
	if inv.Paid >= inv.Amount {
		inv.Status, inv.PaidAt = "paid", "2023-12-29T14:30:00Z"
	}
}

func (f *auFake) setPayout(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.findPo(id).Status = status
}

// sent is the money the fake has sent out (completed payouts, amount plus fee debited).
func (f *auFake) sent() (amount, fee int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.payouts {
		if p.Status == "completed" {
			amount += p.Amount
			fee += p.Fee
		}
	}
	return
}

// webhook builds a webhook exactly as the document describes.
func auWebhook(event string, ts time.Time, data string) (http.Header, []byte) {
	h := http.Header{}
	h.Set("X-Webhook-Event", event)
	h.Set("X-Webhook-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("Content-Type", "application/json")
	body := fmt.Sprintf(`{"event":%q,"timestamp":%q,"data":%s}`, event, ts.UTC().Format("2006-01-02T15:04:05.000Z"), data)
	return h, []byte(body)
}

func auOpts() providers.HTTPOptions {
	return providers.HTTPOptions{Timeout: 2 * time.Second, MaxAttempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
}

func newAuClient(t *testing.T, f *auFake, mod func(*aspayds.Options)) *aspayds.Client {
	o := aspayds.Options{BaseURL: f.URL(), APIKey: auKey, APISecret: auSecret, HTTP: auOpts()}
	if mod != nil {
		mod(&o)
	}
	c, err := aspayds.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var auSeq int

func auInvReq(amount int64) providers.InvoiceRequest {
	auSeq++
	return providers.InvoiceRequest{IdempotencyKey: fmt.Sprintf("inv_01JAUDIT%012d", auSeq), Reference: fmt.Sprintf("AUD%d%05d", time.Now().Unix()%100000, auSeq),
		Amount: amount, Currency: "BDT", CustomerName: "John Doe", CallbackURL: "https://shop.example/cb"}
}

func auPoReq(amount int64) providers.PayoutRequest {
	auSeq++
	return providers.PayoutRequest{IdempotencyKey: fmt.Sprintf("po_01JAUDIT%012d", auSeq), Reference: fmt.Sprintf("WD%d%05d", time.Now().Unix()%100000, auSeq),
		MethodID: "1", Amount: amount, Currency: "BDT", RecipientName: "John Doe", RecipientAccount: "01712345678"}
}

func kind(err error) string {
	switch providers.KindOf(err) {
	case 0:
		return "nil"
	case providers.Declined:
		return "Declined"
	case providers.InvalidRequest:
		return "InvalidRequest"
	case providers.Unavailable:
		return "Unavailable"
	case providers.Unknown:
		return "Unknown"
	}
	return "?"
}

var _ = bytes.NewReader
var _ = context.Background
