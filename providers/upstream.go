package providers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTPOptions are the transport settings every HTTP adapter takes. Zero
// values take the defaults documented on each field.
type HTTPOptions struct {
	// Client sends the requests; default a client that never follows
	// redirects and has no overall timeout (deadlines come from the context).
	Client *http.Client
	// Timeout bounds a whole call, retries included, when the context has no
	// deadline of its own (default 20s).
	Timeout time.Duration
	// MaxResponseBytes caps how much of a response body is read (default
	// 1 MiB); a larger body is an error, never silently truncated JSON.
	MaxResponseBytes int64
	// MaxAttempts bounds the attempts of one call (default 4).
	MaxAttempts int
	// BaseDelay is the first retry's backoff (default 200ms); it doubles per
	// attempt up to MaxDelay (default 5s), with jitter.
	BaseDelay, MaxDelay time.Duration
	// Observe, if set, is told the outcome of every call, for the status
	// page. It must be quick and must not block.
	Observe func(Observation)
}

// Observation is the outcome of one upstream call, after its retries.
type Observation struct {
	Method, Path string
	Status       int           // the last HTTP status, 0 when none was received
	Latency      time.Duration // of the last attempt
	Attempts     int
	At           time.Time // when the call ended
	// Kind is 0 when the provider answered (any status below 500 but 429),
	// otherwise the kind of the failure.
	Kind ErrorKind
}

// Upstream sends an adapter's HTTP calls. It owns what every adapter must do
// the same way: a deadline on every call; retries with backoff, honouring
// Retry-After, only while the deadline allows and only where a retry cannot
// move money twice; capped response bodies; and the mapping of transport
// outcomes onto error kinds, where a call that may have reached the provider
// never becomes anything but Unknown.
type Upstream struct {
	name    string
	baseURL string
	o       HTTPOptions
}

// NewUpstream returns an Upstream for the connection name (used in error
// messages) at baseURL.
func NewUpstream(name, baseURL string, o HTTPOptions) *Upstream {
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 1 << 20
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 200 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	return &Upstream{name: name, baseURL: strings.TrimRight(baseURL, "/"), o: o}
}

// Name returns the connection name the Upstream was made for.
func (u *Upstream) Name() string { return u.name }

// Call is one logical request to a provider.
type Call struct {
	Method string
	Path   string // appended to the base URL; may carry a query
	URL    string // a full URL, used instead of the base URL and Path when set
	Header http.Header
	Body   []byte // sent as is; Content-Type application/json when not empty
	// Mutating says the call creates or changes something at the provider.
	// When such a call may have reached the provider without an answer
	// (timeout, dropped connection, 500/502/504), the error is Unknown;
	// for reads it is Unavailable.
	Mutating bool
	// Replayable says sending the call again cannot act twice: a read, or a
	// call carrying a key the provider documents that it deduplicates on.
	// Only replayable calls are retried after an ambiguous failure; every
	// call is retried after a refusal (429, 503 unless Ambiguous503,
	// connection refused), which proves the provider did nothing.
	Replayable bool
	// Ambiguous503 says a 503 does not prove that the provider did
	// nothing: its document does not say that it answers 503 only before
	// processing a request, and a proxy or gateway in front of it may
	// answer 503 after forwarding the request. A 503 is then ambiguous, like
	// a 500: retried only when the call is Replayable, and Unknown for a
	// mutating call. Without it a 503 is a refusal, retried for every call.
	Ambiguous503 bool
	// Sign, if set, is called on every attempt's request just before it is
	// sent (e.g. to add an HMAC of the body).
	Sign func(*http.Request)
}

// Response is the provider's answer to a Call.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// AfterAmbiguous says an earlier attempt of the same call may have
	// reached the provider, so a refusal now (e.g. "duplicate reference")
	// does not prove that nothing happened.
	AfterAmbiguous bool
	Attempts       int
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// attempt outcomes
type outcome int

const (
	answered  outcome = iota // a response to hand back
	refused                  // the provider did nothing; retry
	ambiguous                // the provider may have acted; retry only if replayable
)

// Do sends c, retrying as the call allows, and returns the provider's
// answer: any 2xx, 3xx or 4xx other than 429 is returned as a Response for
// the adapter to interpret. Everything else is an *Error: Unavailable when
// every attempt was refused, Unknown when a mutating call may have reached
// the provider.
func (u *Upstream) Do(ctx context.Context, c Call) (*Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.o.Timeout)
		defer cancel()
	}
	url := c.URL
	if url == "" {
		url = u.baseURL + c.Path
	}
	obs := Observation{Method: c.Method, Path: c.Path}
	if c.URL != "" {
		obs.Path = c.URL
	}
	var (
		wasAmbiguous bool
		lastErr      string
	)
	finish := func(kind ErrorKind) {
		obs.Kind, obs.At = kind, time.Now()
		if u.o.Observe != nil {
			u.o.Observe(obs)
		}
	}
	for attempt := 1; ; attempt++ {
		obs.Attempts = attempt
		resp, out, retryAfter, detail := u.attempt(ctx, c, url, &obs)
		if out == answered {
			resp.AfterAmbiguous, resp.Attempts = wasAmbiguous, attempt
			finish(0)
			return resp, nil
		}
		lastErr = detail
		if out == ambiguous {
			wasAmbiguous = true
		}
		retry := out == refused || c.Replayable
		if retry && attempt < u.o.MaxAttempts && ctx.Err() == nil {
			wait := u.backoff(attempt)
			if retryAfter > wait {
				wait = retryAfter
			}
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > wait {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
					continue
				case <-ctx.Done():
					t.Stop()
				}
			}
		}
		kind := Unavailable
		if wasAmbiguous && c.Mutating {
			kind = Unknown
		}
		finish(kind)
		return nil, u.failure(kind, c, attempt, lastErr)
	}
}

func (u *Upstream) failure(kind ErrorKind, c Call, attempts int, detail string) *Error {
	if kind == Unknown {
		return &Error{Kind: Unknown, Code: "provider_no_answer", Message: fmt.Sprintf(
			"%s did not give a usable answer to %s %s after %d attempt(s) (%s); the outcome is unknown and must be reconciled.",
			u.name, c.Method, c.pathForMessage(), attempts, detail)}
	}
	return &Error{Kind: Unavailable, Code: "provider_unavailable", Message: fmt.Sprintf(
		"%s refused or could not be reached for %s %s after %d attempt(s) (%s); nothing was done.",
		u.name, c.Method, c.pathForMessage(), attempts, detail)}
}

func (c Call) pathForMessage() string {
	p := c.Path
	if c.URL != "" {
		p = c.URL
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

// attempt sends the call once and classifies the result.
func (u *Upstream) attempt(ctx context.Context, c Call, url string, obs *Observation) (*Response, outcome, time.Duration, string) {
	var body io.Reader
	if len(c.Body) > 0 {
		body = bytes.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, url, body)
	if err != nil {
		// A request that cannot be built was never sent.
		return nil, refused, 0, "bad request URL"
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	if len(c.Body) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Sign != nil {
		c.Sign(req)
	}
	start := time.Now()
	hr, err := u.o.Client.Do(req)
	if err != nil {
		obs.Latency, obs.Status = time.Since(start), 0
		if isDialError(err) {
			return nil, refused, 0, "connection failed: " + dialReason(err)
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, ambiguous, 0, "no answer within the deadline"
		}
		return nil, ambiguous, 0, "connection lost before an answer"
	}
	defer hr.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hr.Body, u.o.MaxResponseBytes+1))
	obs.Latency, obs.Status = time.Since(start), hr.StatusCode
	if err != nil {
		return nil, ambiguous, 0, fmt.Sprintf("HTTP %d with a body that could not be read", hr.StatusCode)
	}
	if int64(len(raw)) > u.o.MaxResponseBytes {
		// Never parse a truncated body: for a 2xx the provider acted but we
		// cannot tell how; anything else is at best an error we cannot read.
		if c.refusedStatus(hr.StatusCode) {
			return nil, refused, retryAfter(hr.Header), fmt.Sprintf("HTTP %d", hr.StatusCode)
		}
		return nil, ambiguous, 0, fmt.Sprintf("HTTP %d with a body over the %d-byte limit", hr.StatusCode, u.o.MaxResponseBytes)
	}
	switch {
	case c.refusedStatus(hr.StatusCode):
		// Rate limited or not serving: refused before any processing.
		return nil, refused, retryAfter(hr.Header), fmt.Sprintf("HTTP %d", hr.StatusCode)
	case hr.StatusCode >= 500:
		// 500, 502, 504…: the provider (or a gateway in front of it) may
		// have processed the request before failing.
		return nil, ambiguous, retryAfter(hr.Header), fmt.Sprintf("HTTP %d", hr.StatusCode)
	}
	return &Response{Status: hr.StatusCode, Header: hr.Header, Body: raw}, answered, 0, ""
}

// refusedStatus reports whether an answer with status proves that the
// provider did not process the call: 429 always, 503 unless the call says
// the provider may act before answering it (Ambiguous503).
func (c Call) refusedStatus(status int) bool {
	return status == http.StatusTooManyRequests || (status == http.StatusServiceUnavailable && !c.Ambiguous503)
}

func (u *Upstream) backoff(attempt int) time.Duration {
	d := u.o.BaseDelay << (attempt - 1)
	if d > u.o.MaxDelay || d <= 0 {
		d = u.o.MaxDelay
	}
	// Full jitter on the upper half: between d/2 and d.
	return d/2 + rand.N(d/2+1)
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// isDialError reports an error that happened while connecting, before any
// byte of the request was sent: connection refused, DNS failure, no route.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func dialReason(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		msg := op.Err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return msg
	}
	return "dial error"
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// Helpers adapters share for interpreting answers.

// AnswerError is the error for a 2xx answer that cannot be used: malformed,
// missing fields, or amounts that do not match the request. For a mutating
// call the provider acted in a way we cannot confirm, so it is Unknown —
// never success, never a decline.
func AnswerError(name string, mutating bool, code, format string, args ...any) *Error {
	kind := Unavailable
	if mutating {
		kind = Unknown
	}
	return &Error{Kind: kind, Code: code, Message: name + ": " + fmt.Sprintf(format, args...)}
}

// AuthError is the error for a 401 or 403: the connection's credentials were
// refused, so nothing was done. The message never contains the credentials.
func AuthError(name string, status int) *Error {
	return &Error{Kind: Unavailable, Code: "provider_authentication_failed", Message: fmt.Sprintf(
		"%s refused paymentd's credentials (HTTP %d); nothing was done. Check the environment variables the connection's credentials come from.",
		name, status)}
}

// RefusalAfterAmbiguous is the error for a 4xx that followed an attempt
// that may have reached the provider: the refusal may mean "already done",
// so the outcome is unknown.
func RefusalAfterAmbiguous(name string, status int) *Error {
	return &Error{Kind: Unknown, Code: "provider_no_answer", Message: fmt.Sprintf(
		"%s refused a retry (HTTP %d) after an earlier attempt went unanswered; the outcome is unknown and must be reconciled.", name, status)}
}
