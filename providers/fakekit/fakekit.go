// Package fakekit is what the in-repo fake provider servers share: a record
// of every request they received and the knobs tests turn to make a fake
// misbehave the way real providers do — injected error statuses with
// Retry-After, slow answers, stalled bodies, malformed and oversized bodies,
// declines and answers whose amount or currency differ from the request.
// Each fake renders errors in its own provider's documented shape.
package fakekit

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Request is one request a fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	At     time.Time
}

// ErrorRenderer writes the provider's own error body for an injected
// failure status.
type ErrorRenderer func(w http.ResponseWriter, status int)

// Kit holds a fake's knobs and request log. The zero value is not usable;
// make one with New.
type Kit struct {
	mu        sync.Mutex
	render    ErrorRenderer
	failures  []failure
	delay     time.Duration
	stall     time.Duration
	malformed bool
	oversize  bool
	declines  int
	delta     int64
	currency  string
	requests  []Request
	faults    []Fault
	fired     []string
	books     map[string]*Money
	alias     map[string]string
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// OversizeBytes is how large an oversized body is: well above any adapter's
// response cap.
const OversizeBytes = 3 << 20

// New returns a Kit whose injected failures are rendered by render.
func New(render ErrorRenderer) *Kit { return &Kit{render: render} }

// FailNext makes the next n requests answer status (in the provider's error
// shape), with a Retry-After header of retryAfter rounded up to seconds
// when it is positive.
func (k *Kit) FailNext(n, status int, retryAfter time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for range n {
		k.failures = append(k.failures, failure{status, retryAfter})
	}
}

// SetDelay makes every answer wait d before its headers are written (or
// until the client gives up).
func (k *Kit) SetDelay(d time.Duration) { k.mu.Lock(); k.delay = d; k.mu.Unlock() }

// SetStall makes every answer write its headers and the first bytes of its
// body, then wait d before the rest.
func (k *Kit) SetStall(d time.Duration) { k.mu.Lock(); k.stall = d; k.mu.Unlock() }

// SetMalformed makes every answer keep its status but carry a truncated,
// invalid JSON body.
func (k *Kit) SetMalformed(on bool) { k.mu.Lock(); k.malformed = on; k.mu.Unlock() }

// SetOversize makes every answer keep its status and content but carry
// OversizeBytes of padding first, so only a reader without a cap accepts it.
func (k *Kit) SetOversize(on bool) { k.mu.Lock(); k.oversize = on; k.mu.Unlock() }

// DeclineNext makes the next n money-moving requests be declined in the
// provider's documented way.
func (k *Kit) DeclineNext(n int) { k.mu.Lock(); k.declines += n; k.mu.Unlock() }

// TakeDecline reports whether this request is to be declined, and uses up
// one decline if so. Fakes call it on their money-moving endpoints.
func (k *Kit) TakeDecline() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.declines > 0 {
		k.declines--
		return true
	}
	return false
}

// TamperAmount makes answers report amounts delta minor units away from the
// truth.
func (k *Kit) TamperAmount(delta int64) { k.mu.Lock(); k.delta = delta; k.mu.Unlock() }

// TamperCurrency makes answers report currency code instead of the truth
// ("" stops it).
func (k *Kit) TamperCurrency(code string) { k.mu.Lock(); k.currency = code; k.mu.Unlock() }

// Amount returns v as the fake should report it (tampered or not).
func (k *Kit) Amount(v int64) int64 { k.mu.Lock(); defer k.mu.Unlock(); return v + k.delta }

// Currency returns code as the fake should report it (tampered or not).
func (k *Kit) Currency(code string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.currency != "" {
		return k.currency
	}
	return code
}

// Requests returns a copy of the requests received so far, oldest first.
func (k *Kit) Requests() []Request {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Request(nil), k.requests...)
}

// Reset turns every knob back off and forgets the requests and injected
// faults. The books are the provider's state, not a knob: they are kept.
func (k *Kit) Reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults, k.fired = nil, nil
	k.failures, k.delay, k.stall, k.malformed, k.oversize, k.declines, k.delta, k.currency, k.requests =
		nil, 0, 0, false, false, 0, 0, "", nil
}

// Wrap returns next with the knobs applied: every request is recorded, then
// delayed, failed, or has its answer rewritten as the knobs say.
func (k *Kit) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		k.mu.Lock()
		k.requests = append(k.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
			Header: r.Header.Clone(), Body: body, At: time.Now()})
		delay, stall, malformed, oversize := k.delay, k.stall, k.malformed, k.oversize
		var f *failure
		if len(k.failures) > 0 {
			f = &k.failures[0]
			k.failures = k.failures[1:]
		}
		var injected *Fault
		if f == nil {
			injected = k.takeFault(r.Method + " " + r.URL.Path)
		}
		k.mu.Unlock()

		if injected != nil {
			k.serveFault(w, r, next, injected)
			return
		}

		if delay > 0 && !sleep(r, delay) {
			return
		}
		if f != nil {
			if f.retryAfter > 0 {
				secs := int((f.retryAfter + time.Second - 1) / time.Second)
				w.Header().Set("Retry-After", strconv.Itoa(secs))
			}
			k.render(w, f.status)
			return
		}
		if !malformed && !oversize && stall == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		out := rec.Body.Bytes()
		switch {
		case malformed:
			out = out[:len(out)/2]
			if len(out) == 0 {
				out = []byte("{")
			}
		case oversize:
			pad := bytes.Repeat([]byte("x"), OversizeBytes)
			rest := bytes.TrimPrefix(bytes.TrimSpace(out), []byte("{"))
			if len(rest) > 0 && rest[0] != '}' {
				rest = append([]byte(","), rest...)
			}
			out = append(append(append([]byte(`{"padding":"`), pad...), '"'), rest...)
		}
		for key, vs := range rec.Header() {
			w.Header()[key] = vs
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(rec.Code)
		if stall > 0 {
			n := min(len(out), 8)
			_, _ = w.Write(out[:n])
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			if !sleep(r, stall) {
				return
			}
			out = out[n:]
		}
		_, _ = w.Write(out)
	})
}

// sleep waits d or until the client goes away; it reports whether the full
// time passed.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// WriteJSON writes v as a JSON answer with the status.
func WriteJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// StatusText is a short reason for an injected status, for error bodies.
func StatusText(status int) string {
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}
