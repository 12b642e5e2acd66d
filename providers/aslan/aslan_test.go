package aslan_test

import (
	"context"
	"testing"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aslan"
	"github.com/paymentd/paymentd/providers/aslan/aslanfake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/providers/providertest"
)

const key = "ak_test_conformance0000000000000000"

func harness(oneShot bool) providertest.Harness {
	return providertest.Harness{
		NewFake: func(t *testing.T) providertest.Fake {
			f := aslanfake.New(key)
			t.Cleanup(f.Close)
			if oneShot {
				// The suite asks for captured payments; the document's
				// purchase answers "authorized" (held), which
				// TestOneShotPurchaseAuthorizedIsHeld covers.
				f.SetPurchaseStatus("succeeded")
			}
			return f
		},
		NewAdapter: func(t *testing.T, baseURL string, o providers.HTTPOptions) any {
			c, err := aslan.New(aslan.Options{BaseURL: baseURL, APIKey: key, OneShot: oneShot, HTTP: o})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		IdempotencyKey: func(r fakekit.Request) string { return r.Header.Get("Idempotency-Key") },
		Payment:        providers.PaymentRequest{Amount: 2500, Currency: "USD", Description: "AWS credits"},
		ManualCapture:  true,
	}
}

func TestConformance(t *testing.T) { providertest.Run(t, harness(false)) }

func TestConformanceOneShotPurchase(t *testing.T) {
	h := harness(true)
	h.Skip = map[string]string{"Payments/CurrencyMismatch": "the one-shot purchase answer carries no currency"}
	providertest.Run(t, h)
}

// TestManualCaptureThenRefundUsesPaymentID: confirm answers a payment id
// distinct from the authorization's; refunds must name the payment.
func TestManualCaptureThenRefundUsesPaymentID(t *testing.T) {
	f := aslanfake.New(key)
	defer f.Close()
	c, err := aslan.New(aslan.Options{BaseURL: f.URL(), APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_1", Amount: 2500, Currency: "USD"})
	if err != nil || res.Captured {
		t.Fatalf("Authorize: %+v, %v", res, err)
	}
	creq := providers.CaptureRequest{IdempotencyKey: providers.CaptureKey("pay_1"), Reference: res.Reference, Amount: 2500, Currency: "USD"}
	payID, err := c.CaptureReference(ctx, creq)
	if err != nil || payID == res.Reference {
		t.Fatalf("CaptureReference(%s) = %q, %v; want the payment's own id", res.Reference, payID, err)
	}
	// Re-sent with the same idempotency key (a retry after a lost answer),
	// the confirmation answers the payment already made; with another key
	// it is "already confirmed", which is Unknown, never a refusal.
	if again, err := c.CaptureReference(ctx, creq); err != nil || again != payID {
		t.Fatalf("re-sent CaptureReference = %q, %v; want %q", again, err, payID)
	}
	creq.IdempotencyKey = "other"
	if _, err := c.CaptureReference(ctx, creq); providers.KindOf(err) != providers.Unknown {
		t.Fatalf("confirm with another key: %v; want Unknown", err)
	}
	if _, err := c.Refund(ctx, providers.RefundRequest{IdempotencyKey: "re_1", Reference: payID, Amount: 1000, Currency: "USD"}); err != nil {
		t.Fatalf("Refund: %v", err)
	}
	if got := f.Refunded(payID); got != 1000 {
		t.Errorf("the fake recorded %d refunded; want 1000", got)
	}
	// A capture of less than the authorization is not what Aslan does.
	res2, _ := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_2", Amount: 2500, Currency: "USD"})
	if err := c.Capture(ctx, res2.Reference, 1000, "USD"); providers.KindOf(err) != providers.Unknown {
		t.Errorf("partial capture: %v; want an Unknown amount mismatch (Aslan confirms the whole authorization)", err)
	}
}

// TestOneShotPurchaseAuthorizedIsHeld: the document's purchase answer says
// status "authorized", which only a confirm turns into a charge, so the
// payment is reported as authorized, never captured; confirming its
// transaction id charges it, once.
func TestOneShotPurchaseAuthorizedIsHeld(t *testing.T) {
	f := aslanfake.New(key)
	defer f.Close()
	c, err := aslan.New(aslan.Options{BaseURL: f.URL(), APIKey: key, OneShot: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_os1", Amount: 2500, Currency: "USD", Capture: true})
	if err != nil || res.Captured || res.Reference == "" {
		t.Fatalf("one-shot purchase answered authorized: %+v, %v; want an uncaptured authorization with a reference", res, err)
	}
	if held, charged := f.Held()[res.Reference], f.Captured(); held != 2500 || len(charged) != 0 {
		t.Fatalf("Aslan holds %d and charged %v; want 2500 held, nothing charged", held, charged)
	}
	payID, err := c.CaptureReference(ctx, providers.CaptureRequest{IdempotencyKey: providers.CaptureKey("pay_os1"),
		Reference: res.Reference, Amount: 2500, Currency: "USD"})
	if err != nil {
		t.Fatalf("confirming the purchase: %v", err)
	}
	if charged := f.Captured(); len(charged) != 1 || charged[payID] != 2500 || len(f.Held()) != 0 {
		t.Errorf("after the confirm Aslan charged %v and holds %v; want %s charged 2500, nothing held", charged, f.Held(), payID)
	}
	// A purchase Aslan answers as succeeded is captured.
	f.SetPurchaseStatus("succeeded")
	res, err = c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_os2", Amount: 700, Currency: "USD", Capture: true})
	if err != nil || !res.Captured || f.Captured()[res.Reference] != 700 {
		t.Errorf("purchase answered succeeded: %+v, %v; Aslan charged %v", res, err, f.Captured())
	}
}

func TestRefusesOtherCurrenciesAndBadKeys(t *testing.T) {
	if _, err := aslan.New(aslan.Options{APIKey: "sk_live_x"}); err == nil {
		t.Error("a key without the ak_live_/ak_test_ prefix was accepted")
	}
	c, _ := aslan.New(aslan.Options{BaseURL: "http://127.0.0.1:1", APIKey: key})
	_, err := c.Authorize(context.Background(), providers.PaymentRequest{Amount: 100, Currency: "EUR"})
	if providers.KindOf(err) != providers.InvalidRequest {
		t.Errorf("EUR: %v; want InvalidRequest before any call", err)
	}
}

// TestConfirmRefusalsAreDefiniteOnlyWhenNamed: a confirm can charge, so only
// a decline settles it as not charged; any other 4xx to a confirm (which a
// confirm re-sent after a lost answer gets although the first one charged)
// is Unknown, and refused credentials are Unavailable.
func TestConfirmRefusalsAreDefiniteOnlyWhenNamed(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   providers.ErrorKind
	}{
		{400, providers.Unknown}, {404, providers.Unknown}, {409, providers.Unknown}, {422, providers.Unknown},
		{402, providers.Declined}, {401, providers.Unavailable}, {403, providers.Unavailable},
	} {
		f := aslanfake.New(key)
		c, err := aslan.New(aslan.Options{BaseURL: f.URL(), APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_r1", Amount: 2500, Currency: "USD"})
		if err != nil {
			t.Fatal(err)
		}
		f.FailNext(1, tc.status, 0)
		_, err = c.CaptureReference(ctx, providers.CaptureRequest{IdempotencyKey: providers.CaptureKey("pay_r1"),
			Reference: res.Reference, Amount: 2500, Currency: "USD"})
		if got := providers.KindOf(err); got != tc.want {
			t.Errorf("confirm answered HTTP %d: kind %v (%v); want %v", tc.status, got, err, tc.want)
		}
		f.Close()
	}
}
