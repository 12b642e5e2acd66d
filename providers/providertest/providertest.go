// Package providertest is the conformance suite every provider adapter
// passes against its fake server: Run(t, h) exercises each capability the
// adapter declares (payments, payment status, invoices, payouts, status
// checks) through success, decline, partial refunds or receipts, and every
// way an upstream can misbehave — timeouts, stalled bodies, 5xx and 429 with
// Retry-After, 4xx, 401, answers whose amount or currency differ from the
// request, malformed and oversized bodies, refused connections — and checks
// that the adapter maps each onto the right providers.ErrorKind: a call that
// may have reached the provider is Unknown, never Declined or a success; a
// refusal is Unavailable; retries happen within the deadline with the same
// upstream idempotency key, and never after a 4xx.
package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/fakekit"
)

// Fake is what the suite needs of a fake provider server; fakes get all of
// it but URL by embedding a *fakekit.Kit.
type Fake interface {
	URL() string
	FailNext(n, status int, retryAfter time.Duration)
	SetDelay(time.Duration)
	SetStall(time.Duration)
	SetMalformed(bool)
	SetOversize(bool)
	DeclineNext(n int)
	TamperAmount(delta int64)
	TamperCurrency(code string)
	Requests() []fakekit.Request
	Reset()
}

// InvoicePayer is implemented by fakes of invoice providers: it records a
// customer's payment (or partial payment) of amount minor units towards the
// invoice the provider knows as reference.
type InvoicePayer interface {
	PayInvoice(reference string, amount int64) error
}

// PayoutSettler is implemented by fakes of payout providers: it moves a
// payout to status (completed, rejected, …).
type PayoutSettler interface {
	SettlePayout(reference, status string) error
}

// Harness tells the suite how to build an adapter and its fake, and what to
// ask of it.
type Harness struct {
	// NewFake starts a fresh fake server, closed when the test ends.
	NewFake func(t *testing.T) Fake
	// NewAdapter returns the adapter under test talking to baseURL with the
	// transport options o (the suite sets short backoffs and a small
	// response cap).
	NewAdapter func(t *testing.T, baseURL string, o providers.HTTPOptions) any
	// IdempotencyKey reads the upstream idempotency key (or deduplicating
	// reference) from a recorded request; nil when the provider has none, in
	// which case retries are checked to resend the identical body.
	IdempotencyKey func(r fakekit.Request) string
	// Payment is the template for payments (amount, currency, method).
	Payment providers.PaymentRequest
	// ManualCapture says the adapter supports authorize-then-capture.
	ManualCapture bool
	// Invoice and Payout are templates; the suite fills in the idempotency
	// key and a unique reference.
	Invoice providers.InvoiceRequest
	Payout  providers.PayoutRequest
	// Skip names tests (e.g. "Invoices/CurrencyMismatch") that cannot apply
	// to this provider, with the reason, which is logged.
	Skip map[string]string
}

// options are the transport settings the suite gives adapters: quick
// backoffs so retries fit in short deadlines, a small response cap.
func options() providers.HTTPOptions {
	return providers.HTTPOptions{Timeout: 10 * time.Second, MaxResponseBytes: 256 << 10, MaxAttempts: 4,
		BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
}

var seq atomic.Int64

// unique returns a short unique suffix for ids and references (aspayds
// limits invoice references to 20 characters).
func unique() string { return fmt.Sprintf("%d%04d", time.Now().Unix()%100000, seq.Add(1)%10000) }

// Run runs the conformance suite for every capability the adapter declares.
func Run(t *testing.T, h Harness) {
	probe := h.NewAdapter(t, "http://127.0.0.1:1", options())
	declared := false
	if _, ok := probe.(providers.Payments); ok {
		declared = true
		t.Run("Payments", func(t *testing.T) { runPayments(t, h) })
	}
	if _, ok := probe.(providers.Invoices); ok {
		declared = true
		t.Run("Invoices", func(t *testing.T) { runInvoices(t, h) })
	}
	if _, ok := probe.(providers.Payouts); ok {
		declared = true
		t.Run("Payouts", func(t *testing.T) { runPayouts(t, h) })
	}
	if _, ok := probe.(providers.StatusChecker); ok {
		t.Run("StatusCheck", func(t *testing.T) { runStatus(t, h) })
	}
	if _, ok := probe.(providers.Provider); !ok {
		t.Errorf("the adapter %T has no Name method (providers.Provider)", probe)
	}
	if !declared {
		t.Fatalf("the adapter %T declares none of Payments, Invoices, Payouts", probe)
	}
}

// setup starts a fake and an adapter against it.
func setup[T any](t *testing.T, h Harness) (T, Fake) {
	t.Helper()
	if reason, ok := h.Skip[t.Name()[len(topName(t.Name())):]]; ok {
		t.Skip(reason)
	}
	f := h.NewFake(t)
	return h.NewAdapter(t, f.URL(), options()).(T), f
}

// topName returns the part of a test name before the capability, e.g.
// "TestConformance/" of "TestConformance/Payments/Timeout", so that Skip
// keys are written as "Payments/Timeout".
func topName(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name[:i+1]
		}
	}
	return name
}

func kindName(k providers.ErrorKind) string {
	switch k {
	case 0:
		return "no error"
	case providers.Declined:
		return "Declined"
	case providers.InvalidRequest:
		return "InvalidRequest"
	case providers.Unavailable:
		return "Unavailable"
	case providers.Unknown:
		return "Unknown"
	}
	return fmt.Sprintf("kind %d", k)
}

func wantKind(t *testing.T, what string, err error, want providers.ErrorKind) {
	t.Helper()
	if got := providers.KindOf(err); got != want {
		t.Fatalf("%s: got %s (%v); want %s", what, kindName(got), err, kindName(want))
	}
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %v is not a *providers.Error", what, err)
	}
	if pe.Message == "" || pe.Code == "" {
		t.Errorf("%s: error %+v lacks a code or message", what, pe)
	}
}

// mutation is a capability's main money-moving call, run with fresh ids.
type mutation[T any] func(ctx context.Context, a T) error

// runFailures runs the misbehaving-upstream battery against one mutation.
// reqPath is not known in advance: the first recorded request's path is the
// mutation's own request, and retries are counted on that path.
func runFailures[T any](t *testing.T, h Harness, m mutation[T]) {
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.SetDelay(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := m(ctx, a)
		wantKind(t, "a call the provider never answered", err, providers.Unknown)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the call returned after %v; want it to stop at its 300ms deadline", d)
		}
	})
	t.Run("StalledBody", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.SetStall(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		wantKind(t, "an answer whose body stalled past the deadline", m(ctx, a), providers.Unknown)
	})
	t.Run("Retry503SameKey", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.FailNext(2, http.StatusServiceUnavailable, 0)
		if err := m(context.Background(), a); err != nil {
			t.Fatalf("after two 503s the third attempt succeeds upstream; got %v", err)
		}
		checkRetries(t, h, f.Requests(), 3)
	})
	t.Run("Retry429HonoursRetryAfter", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.FailNext(1, http.StatusTooManyRequests, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m(ctx, a); err != nil {
			t.Fatalf("after one 429 with Retry-After: 1 the retry succeeds upstream; got %v", err)
		}
		reqs := checkRetries(t, h, f.Requests(), 2)
		if gap := reqs[1].At.Sub(reqs[0].At); gap < 950*time.Millisecond {
			t.Errorf("retried %v after a 429 with Retry-After: 1; want at least 1s", gap)
		}
	})
	t.Run("RetryAfterBeyondDeadline", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.FailNext(1, http.StatusTooManyRequests, 60*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		wantKind(t, "a 429 asking to wait past the deadline", m(ctx, a), providers.Unavailable)
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("the call waited %v; want it to give up at once when Retry-After exceeds the deadline", d)
		}
		if n := len(f.Requests()); n != 1 {
			t.Errorf("%d requests; want 1", n)
		}
	})
	t.Run("Persistent500", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.FailNext(100, http.StatusInternalServerError, 0)
		// A 500 may come after the provider acted: unknown, never declined.
		wantKind(t, "a call answered only with 500s", m(context.Background(), a), providers.Unknown)
	})
	t.Run("Persistent503", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.FailNext(100, http.StatusServiceUnavailable, 0)
		wantKind(t, "a call refused with 503 on every attempt", m(context.Background(), a), providers.Unavailable)
		if n := len(f.Requests()); n < 2 {
			t.Errorf("%d requests; want retries", n)
		}
	})
	t.Run("NoRetryOn400", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.FailNext(1, http.StatusBadRequest, 0)
		wantKind(t, "a call refused with 400", m(context.Background(), a), providers.InvalidRequest)
		if n := len(f.Requests()); n != 1 {
			t.Errorf("%d requests after a 400; want exactly 1 (no retry)", n)
		}
	})
	t.Run("Unauthorized401", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.FailNext(1, http.StatusUnauthorized, 0)
		wantKind(t, "a call refused with 401", m(context.Background(), a), providers.Unavailable)
		if n := len(f.Requests()); n != 1 {
			t.Errorf("%d requests after a 401; want exactly 1 (no retry)", n)
		}
	})
	t.Run("AmountMismatch", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.TamperAmount(1)
		wantKind(t, "an answer with another amount than requested", m(context.Background(), a), providers.Unknown)
	})
	t.Run("CurrencyMismatch", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.TamperCurrency("XTS")
		wantKind(t, "an answer with another currency than requested", m(context.Background(), a), providers.Unknown)
	})
	t.Run("OversizedBody", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.SetOversize(true)
		wantKind(t, "a 2xx answer over the response cap", m(context.Background(), a), providers.Unknown)
	})
	t.Run("MalformedBody", func(t *testing.T) {
		t.Parallel()
		a, f := setup[T](t, h)
		f.SetMalformed(true)
		wantKind(t, "a 2xx answer that is not valid JSON", m(context.Background(), a), providers.Unknown)
	})
	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		if reason, ok := h.Skip[t.Name()[len(topName(t.Name())):]]; ok {
			t.Skip(reason)
		}
		a := h.NewAdapter(t, "http://"+closedAddr(t), options()).(T)
		wantKind(t, "a call to a port nobody listens on", m(context.Background(), a), providers.Unavailable)
	})
}

// checkRetries checks that the mutation's request (the first path seen) was
// sent n times with the same idempotency key, or the same body when the
// provider has no key, and returns those requests.
func checkRetries(t *testing.T, h Harness, all []fakekit.Request, n int) []fakekit.Request {
	t.Helper()
	if len(all) == 0 {
		t.Fatal("the fake received no request")
	}
	var reqs []fakekit.Request
	for _, r := range all {
		if r.Method == all[0].Method && r.Path == all[0].Path {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != n {
		t.Fatalf("%s %s was sent %d times; want %d", all[0].Method, all[0].Path, len(reqs), n)
	}
	for i, r := range reqs {
		if h.IdempotencyKey != nil {
			k0, k := h.IdempotencyKey(reqs[0]), h.IdempotencyKey(r)
			if k0 == "" || k != k0 {
				t.Errorf("attempt %d carried idempotency key %q; want the first attempt's %q (non-empty)", i+1, k, k0)
			}
		} else if !bytes.Equal(r.Body, reqs[0].Body) {
			t.Errorf("attempt %d sent another body than the first", i+1)
		}
	}
	return reqs
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func paymentReq(h Harness, capture bool) providers.PaymentRequest {
	r := h.Payment
	r.IdempotencyKey = "pay_conf" + unique()
	r.Capture = capture
	return r
}

func runPayments(t *testing.T, h Harness) {
	t.Run("Success", func(t *testing.T) {
		t.Parallel()
		a, _ := setup[providers.Payments](t, h)
		res, err := a.Authorize(context.Background(), paymentReq(h, true))
		if err != nil {
			t.Fatalf("Authorize with capture: %v", err)
		}
		if res.Reference == "" || !res.Captured {
			t.Fatalf("Authorize with capture: %+v; want a reference and captured", res)
		}
		if g, ok := a.(providers.PaymentStatusGetter); ok {
			st, err := g.GetPayment(context.Background(), res.Reference)
			if err != nil {
				t.Fatalf("GetPayment(%s): %v", res.Reference, err)
			}
			if st.Status != "captured" || st.Amount != h.Payment.Amount || st.Currency != h.Payment.Currency {
				t.Errorf("GetPayment: %+v; want captured %d %s", st, h.Payment.Amount, h.Payment.Currency)
			}
		}
	})
	t.Run("ManualCapture", func(t *testing.T) {
		t.Parallel()
		a, _ := setup[providers.Payments](t, h)
		res, err := a.Authorize(context.Background(), paymentReq(h, false))
		if !h.ManualCapture {
			wantKind(t, "an authorization without capture, which the provider does not offer", err, providers.InvalidRequest)
			return
		}
		if err != nil || res.Captured || res.Reference == "" {
			t.Fatalf("Authorize without capture: %+v, %v; want an uncaptured authorization with a reference", res, err)
		}
		if err := a.Capture(context.Background(), res.Reference, h.Payment.Amount, h.Payment.Currency); err != nil {
			t.Fatalf("Capture: %v", err)
		}
	})
	t.Run("Decline", func(t *testing.T) {
		t.Parallel()
		a, f := setup[providers.Payments](t, h)
		f.DeclineNext(1)
		_, err := a.Authorize(context.Background(), paymentReq(h, true))
		wantKind(t, "a declined payment", err, providers.Declined)
	})
	t.Run("PartialRefund", func(t *testing.T) {
		t.Parallel()
		a, f := setup[providers.Payments](t, h)
		res, err := a.Authorize(context.Background(), paymentReq(h, true))
		if err != nil {
			t.Fatal(err)
		}
		part := h.Payment.Amount / 3
		for i, amt := range []int64{part, h.Payment.Amount - part} {
			rr, err := a.Refund(context.Background(), providers.RefundRequest{IdempotencyKey: fmt.Sprintf("re_conf%s", unique()),
				Reference: res.Reference, Amount: amt, Currency: h.Payment.Currency})
			if err != nil || rr.Reference == "" {
				t.Fatalf("refund %d of %d: %+v, %v; want a refund reference", i+1, amt, rr, err)
			}
		}
		// A refund answered with another amount than asked is not a success.
		res2, err := a.Authorize(context.Background(), paymentReq(h, true))
		if err != nil {
			t.Fatal(err)
		}
		f.TamperAmount(1)
		_, err = a.Refund(context.Background(), providers.RefundRequest{IdempotencyKey: "re_conf" + unique(),
			Reference: res2.Reference, Amount: part, Currency: h.Payment.Currency})
		wantKind(t, "a refund answered with another amount", err, providers.Unknown)
	})
	runFailures(t, h, mutation[providers.Payments](func(ctx context.Context, a providers.Payments) error {
		res, err := a.Authorize(ctx, paymentReq(h, true))
		if err == nil && (res.Reference == "" || !res.Captured) {
			return fmt.Errorf("answer %+v lacks a reference or capture", res)
		}
		return err
	}))
}

func invoiceReq(h Harness) providers.InvoiceRequest {
	r := h.Invoice
	u := unique()
	r.IdempotencyKey = "inv_conf" + u
	r.Reference = "R" + u
	return r
}

func runInvoices(t *testing.T, h Harness) {
	t.Run("CreateGetAndPartialReceipts", func(t *testing.T) {
		t.Parallel()
		a, f := setup[providers.Invoices](t, h)
		req := invoiceReq(h)
		st, err := a.CreateInvoice(context.Background(), req)
		if err != nil {
			t.Fatalf("CreateInvoice: %v", err)
		}
		if st.Reference == "" || st.PaymentURL == "" || st.Status != "open" {
			t.Fatalf("CreateInvoice: %+v; want a reference, a payment URL and status open", st)
		}
		got, err := a.GetInvoice(context.Background(), st.Reference)
		if err != nil || got.Status != "open" || got.AmountPaid != 0 {
			t.Fatalf("GetInvoice: %+v, %v; want open with nothing paid", got, err)
		}
		payer, ok := f.(InvoicePayer)
		if !ok {
			t.Fatalf("the fake %T cannot pay invoices (providertest.InvoicePayer)", f)
		}
		part := req.Amount / 4
		if err := payer.PayInvoice(st.Reference, part); err != nil {
			t.Fatal(err)
		}
		got, err = a.GetInvoice(context.Background(), st.Reference)
		if err != nil || got.Status != "partially_paid" || got.AmountPaid != part {
			t.Fatalf("GetInvoice after a partial payment of %d: %+v, %v; want partially_paid, amount paid %d", part, got, err, part)
		}
		if err := payer.PayInvoice(st.Reference, req.Amount-part); err != nil {
			t.Fatal(err)
		}
		got, err = a.GetInvoice(context.Background(), st.Reference)
		if err != nil || got.Status != "paid" || got.AmountPaid != req.Amount {
			t.Fatalf("GetInvoice after full payment: %+v, %v; want paid, amount paid %d", got, err, req.Amount)
		}
		// The lookup by the caller's reference finds the same invoice where
		// the provider offers it; a tampered amount paid is reported as is
		// for paymentd to compare with the invoice's amount.
	})
	t.Run("Decline", func(t *testing.T) {
		t.Parallel()
		a, f := setup[providers.Invoices](t, h)
		f.DeclineNext(1)
		_, err := a.CreateInvoice(context.Background(), invoiceReq(h))
		if k := providers.KindOf(err); k != providers.InvalidRequest && k != providers.Declined {
			t.Fatalf("an invoice the provider refused: got %s (%v); want InvalidRequest or Declined", kindName(k), err)
		}
	})
	runFailures(t, h, mutation[providers.Invoices](func(ctx context.Context, a providers.Invoices) error {
		req := invoiceReq(h)
		st, err := a.CreateInvoice(ctx, req)
		if err == nil && (st.Reference == "" || st.Amount != req.Amount || st.Status != "open") {
			return fmt.Errorf("answer %+v lacks a reference, amount %d or status open", st, req.Amount)
		}
		return err
	}))
}

func payoutReq(h Harness) providers.PayoutRequest {
	r := h.Payout
	u := unique()
	r.IdempotencyKey = "po_conf" + u
	r.Reference = "WD" + u
	return r
}

func runPayouts(t *testing.T, h Harness) {
	t.Run("MethodsCreateGetSettle", func(t *testing.T) {
		t.Parallel()
		a, f := setup[providers.Payouts](t, h)
		ms, err := a.PayoutMethods(context.Background())
		if err != nil || len(ms) == 0 {
			t.Fatalf("PayoutMethods: %v, %v; want at least one", ms, err)
		}
		for _, m := range ms {
			if m.ID == "" || m.Currency == "" || m.MinAmount <= 0 || m.MaxAmount < m.MinAmount {
				t.Errorf("payout method %+v: want an id, a currency and 0 < min ≤ max", m)
			}
		}
		req := payoutReq(h)
		st, err := a.CreatePayout(context.Background(), req)
		if err != nil || st.Reference == "" || st.Status != "pending" {
			t.Fatalf("CreatePayout: %+v, %v; want a reference and status pending", st, err)
		}
		got, err := a.GetPayout(context.Background(), st.Reference)
		if err != nil || got.Status != "pending" {
			t.Fatalf("GetPayout: %+v, %v; want pending", got, err)
		}
		settler, ok := f.(PayoutSettler)
		if !ok {
			t.Fatalf("the fake %T cannot settle payouts (providertest.PayoutSettler)", f)
		}
		for _, status := range []string{"processing", "completed"} {
			if err := settler.SettlePayout(st.Reference, status); err != nil {
				t.Fatal(err)
			}
			got, err = a.GetPayout(context.Background(), st.Reference)
			if err != nil || got.Status != status {
				t.Fatalf("GetPayout after the provider moved it to %s: %+v, %v", status, got, err)
			}
		}
	})
	t.Run("Decline", func(t *testing.T) {
		t.Parallel()
		a, f := setup[providers.Payouts](t, h)
		f.DeclineNext(1)
		st, err := a.CreatePayout(context.Background(), payoutReq(h))
		if err != nil {
			wantKind(t, "a payout the provider refused", err, providers.Declined)
			return
		}
		// Providers that accept first and reject later report it on GET.
		got, err := a.GetPayout(context.Background(), st.Reference)
		if err != nil || got.Status != "rejected" {
			t.Fatalf("a declined payout: created %+v, then %+v, %v; want rejected", st, got, err)
		}
	})
	runFailures(t, h, mutation[providers.Payouts](func(ctx context.Context, a providers.Payouts) error {
		st, err := a.CreatePayout(ctx, payoutReq(h))
		if err == nil && (st.Reference == "" || st.Status != "pending") {
			return fmt.Errorf("answer %+v lacks a reference or status pending", st)
		}
		return err
	}))
}

func runStatus(t *testing.T, h Harness) {
	t.Run("Operational", func(t *testing.T) {
		t.Parallel()
		a, _ := setup[providers.StatusChecker](t, h)
		if err := a.CheckStatus(context.Background()); err != nil {
			t.Fatalf("CheckStatus against a healthy fake: %v", err)
		}
	})
	t.Run("Down", func(t *testing.T) {
		t.Parallel()
		a, f := setup[providers.StatusChecker](t, h)
		f.FailNext(100, http.StatusServiceUnavailable, 0)
		if err := a.CheckStatus(context.Background()); err == nil {
			t.Fatal("CheckStatus against a fake answering 503: nil; want an error")
		}
	})
}
