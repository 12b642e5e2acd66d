package fakekit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paymentd/paymentd/providers"
)

// FaultKind is a way one call to a fake goes wrong.
type FaultKind int

// The faults a call can be given. "Apply" means the fake does what the
// request asks (its books change) before the answer goes wrong, which is
// what makes a fault dangerous: the caller cannot tell from the answer
// whether money moved.
const (
	// Refuse answers Status (default 503; 429 and 5xx are typical) without
	// applying the request.
	Refuse FaultKind = iota + 1
	// ApplyThenHang applies the request and then never answers: the
	// connection is held until the caller gives up (or HangLimit passes).
	ApplyThenHang
	// ApplyThenFail applies the request and then answers Status (default
	// 500) in the provider's error shape.
	ApplyThenFail
	// Malformed applies the request and answers a truncated JSON body.
	Malformed
	// Oversize applies the request and answers OversizeBytes of padding
	// before the real content.
	Oversize
	// MismatchAmount applies the request and answers with every amount one
	// minor unit away from the truth.
	MismatchAmount
	// MismatchCurrency applies the request and answers with every currency
	// (and asset) code replaced by XXX.
	MismatchCurrency
	// UnknownStatus applies the request and answers with the object's
	// status word replaced by one no document defines.
	UnknownStatus
)

// String names the fault kind, for logs and failing seeds.
func (k FaultKind) String() string {
	switch k {
	case Refuse:
		return "refuse"
	case ApplyThenHang:
		return "apply-then-hang"
	case ApplyThenFail:
		return "apply-then-fail"
	case Malformed:
		return "malformed"
	case Oversize:
		return "oversize"
	case MismatchAmount:
		return "mismatch-amount"
	case MismatchCurrency:
		return "mismatch-currency"
	case UnknownStatus:
		return "unknown-status"
	}
	return "fault(" + strconv.Itoa(int(k)) + ")"
}

// UnknownStatusWord is what UnknownStatus puts in place of a status.
const UnknownStatusWord = "mystery_state"

// HangLimit bounds how long ApplyThenHang holds an answer when the caller
// never gives up, so a fake can always be closed.
var HangLimit = 2 * time.Minute

// Fault is one injected misbehaviour: the Nth request (1 = the next one)
// whose "METHOD /path" starts with Op ("" matches every request) gets Kind.
type Fault struct {
	Kind   FaultKind
	Op     string // e.g. "POST /api/v1/confirm", "POST /payout", "" for any
	Nth    int    // 0 or 1: the next matching request
	Status int    // for Refuse and ApplyThenFail
	seen   int
}

// String describes the fault, for logs and failing seeds.
func (f Fault) String() string {
	s := f.Kind.String()
	if f.Status != 0 {
		s += fmt.Sprintf("(%d)", f.Status)
	}
	op := f.Op
	if op == "" {
		op = "any request"
	}
	return fmt.Sprintf("%s on %s #%d", s, op, max(f.Nth, 1))
}

// Inject adds faults; each fires once, on its Nth matching request.
func (k *Kit) Inject(faults ...Fault) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults = append(k.faults, faults...)
}

// Pending returns the injected faults that have not fired yet.
func (k *Kit) Pending() []Fault {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Fault(nil), k.faults...)
}

// Fired returns the faults that fired, oldest first, with the request each
// hit ("METHOD /path").
func (k *Kit) Fired() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.fired...)
}

// takeFault returns the fault for the request op, if one fires now. The
// kit's lock is held.
func (k *Kit) takeFault(op string) *Fault {
	var hit *Fault
	kept := k.faults[:0]
	for _, f := range k.faults {
		if hit == nil && strings.HasPrefix(op, f.Op) {
			f.seen++
			if f.seen >= max(f.Nth, 1) {
				c := f
				hit = &c
				k.fired = append(k.fired, f.String()+": "+op)
				continue
			}
		}
		kept = append(kept, f)
	}
	k.faults = kept
	return hit
}

// serveFault answers r as the fault says, with next as the real handler.
func (k *Kit) serveFault(w http.ResponseWriter, r *http.Request, next http.Handler, f *Fault) {
	if f.Kind == Refuse {
		k.render(w, cmp(f.Status, http.StatusServiceUnavailable))
		return
	}
	rec := newRecorder()
	next.ServeHTTP(rec, r)
	out := rec.body.Bytes()
	switch f.Kind {
	case ApplyThenHang:
		ctx, cancel := context.WithTimeout(r.Context(), HangLimit)
		defer cancel()
		<-ctx.Done()
		return
	case ApplyThenFail:
		k.render(w, cmp(f.Status, http.StatusInternalServerError))
		return
	case Malformed:
		out = out[:len(out)/2]
		if len(out) == 0 {
			out = []byte("{")
		}
	case Oversize:
		out = append(append([]byte(`{"padding":"`), bytes.Repeat([]byte("x"), OversizeBytes)...), `"}`...)
	case MismatchAmount:
		out = rewriteJSON(out, func(key string, v any) (any, bool) {
			if key != "amount" {
				return nil, false
			}
			return bump(v)
		})
	case MismatchCurrency:
		out = rewriteJSON(out, func(key string, v any) (any, bool) {
			if _, ok := v.(string); ok && (key == "currency" || key == "short") {
				return "XXX", true
			}
			return nil, false
		})
	case UnknownStatus:
		out = rewriteStatus(out)
	}
	for key, vs := range rec.header {
		w.Header()[key] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(rec.code)
	_, _ = w.Write(out)
}

func cmp(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// recorder is a minimal http.ResponseWriter that keeps the answer.
type recorder struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, code: http.StatusOK} }

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

// rewriteJSON changes the values of keys, at the top of the body, in its
// "data" object and in objects nested in either, as f says. A body that is
// not a JSON object is returned as it is.
func rewriteJSON(body []byte, f func(key string, v any) (any, bool)) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return body
	}
	var walk func(m map[string]any, depth int)
	walk = func(m map[string]any, depth int) {
		for key, v := range m {
			if nv, ok := f(key, v); ok {
				m[key] = nv
				continue
			}
			if sub, ok := v.(map[string]any); ok && depth < 2 {
				walk(sub, depth+1)
			}
		}
	}
	walk(top, 0)
	out, err := json.Marshal(top)
	if err != nil {
		return body
	}
	return out
}

// rewriteStatus replaces the object's status word: data.status when the
// answer is an envelope around the object, else the top-level status.
func rewriteStatus(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return body
	}
	if data, ok := top["data"].(map[string]any); ok {
		if _, has := data["status"]; has {
			data["status"] = UnknownStatusWord
			out, _ := json.Marshal(top)
			return out
		}
	}
	top["status"] = UnknownStatusWord
	out, _ := json.Marshal(top)
	return out
}

// bump returns an amount one unit of its last written digit larger, in the
// type it was written in (a JSON number or a decimal string).
func bump(v any) (any, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = x
	default:
		return nil, false
	}
	exp := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		exp = len(s) - i - 1
	}
	n, err := providers.ParseDecimal(s, exp)
	if err != nil {
		return nil, false
	}
	out := providers.FormatDecimal(n+1, exp)
	if _, isNum := v.(json.Number); isNum {
		return json.Number(out), true
	}
	return out, true
}

// WebhookFaultKind is a way an outgoing webhook goes wrong.
type WebhookFaultKind int

// Webhook faults.
const (
	// LoseWebhook never delivers the webhook.
	LoseWebhook WebhookFaultKind = iota + 1
	// DuplicateWebhook delivers the webhook twice.
	DuplicateWebhook
	// DelayWebhook holds the webhook back and delivers it after the next
	// one (or when FlushWebhooks is called): out of order.
	DelayWebhook
)

// Webhooks delivers a fake's outgoing webhooks with the faults injected by
// FaultWebhooks applied. The zero value is ready to use.
type Webhooks struct {
	mu     sync.Mutex
	faults []WebhookFaultKind
	held   []heldWebhook
	Lost   int // how many were dropped by LoseWebhook
}

type heldWebhook struct {
	url    string
	header http.Header
	body   []byte
}

// FaultWebhooks makes the next webhooks, one per kind given, go wrong.
func (wh *Webhooks) FaultWebhooks(kinds ...WebhookFaultKind) {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	wh.faults = append(wh.faults, kinds...)
}

// Send POSTs body with header to url, as the next fault (if any) says, and
// then any webhook held back by an earlier DelayWebhook.
func (wh *Webhooks) Send(url string, header http.Header, body []byte) error {
	wh.mu.Lock()
	var fault WebhookFaultKind
	if len(wh.faults) > 0 {
		fault, wh.faults = wh.faults[0], wh.faults[1:]
	}
	held := wh.held
	wh.held = nil
	switch fault {
	case LoseWebhook:
		wh.Lost++
	case DelayWebhook:
		wh.held = append(wh.held, heldWebhook{url, header, body})
	}
	wh.mu.Unlock()
	var err error
	switch fault {
	case LoseWebhook, DelayWebhook:
	case DuplicateWebhook:
		err = post(url, header, body)
		if err2 := post(url, header, body); err == nil {
			err = err2
		}
	default:
		err = post(url, header, body)
	}
	for _, h := range held {
		if err2 := post(h.url, h.header, h.body); err == nil {
			err = err2
		}
	}
	return err
}

// FlushWebhooks delivers every webhook held back by DelayWebhook.
func (wh *Webhooks) FlushWebhooks() error {
	wh.mu.Lock()
	held := wh.held
	wh.held = nil
	wh.mu.Unlock()
	var err error
	for _, h := range held {
		if err2 := post(h.url, h.header, h.body); err == nil {
			err = err2
		}
	}
	return err
}

func post(url string, header http.Header, body []byte) error {
	if url == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("fakekit: webhook to %s answered %d", url, resp.StatusCode)
	}
	return nil
}
