package asyncpay_test

import (
	"context"
	"testing"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/asyncpay"
	"github.com/paymentd/paymentd/providers/asyncpay/asyncpayfake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/providers/providertest"
)

const key = "sk_test_conformance"

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		NewFake: func(t *testing.T) providertest.Fake {
			f := asyncpayfake.New(key, asyncpay.Paths{})
			t.Cleanup(f.Close)
			return f
		},
		NewAdapter: func(t *testing.T, baseURL string, o providers.HTTPOptions) any {
			c, err := asyncpay.New(asyncpay.Options{BaseURL: baseURL, SecretKey: key, HTTP: o})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		IdempotencyKey: func(r fakekit.Request) string { return r.Header.Get("Idempotency-Key") },
		Payment:        providers.PaymentRequest{Amount: 5000_00, Currency: "NGN", PaymentMethod: "card"},
		Payout: providers.PayoutRequest{MethodID: "ch_ngn_bank", Amount: 25000_00, Currency: "NGN",
			RecipientName: "Ada Obi", RecipientAccount: "0123456789"},
	})
}

// TestConfigurablePaths: the endpoints Asyncpay's document leaves open are
// configuration, not code.
func TestConfigurablePaths(t *testing.T) {
	paths := asyncpay.Paths{CreatePayment: "/api/v2/charges", GetPayment: "/api/v2/charges/{id}", CreatePayout: "/api/v2/transfers",
		GetPayout: "/api/v2/transfers/{id}", PayoutMethods: "/api/v2/transfer-channels", CreateRefund: "/api/v2/refunds"}
	f := asyncpayfake.New(key, paths)
	defer f.Close()
	c, err := asyncpay.New(asyncpay.Options{BaseURL: f.URL(), SecretKey: key, Paths: paths})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_x1", Amount: 1000_00, Currency: "NGN", Capture: true})
	if err != nil || !res.Captured {
		t.Fatalf("Authorize: %+v, %v", res, err)
	}
	// The reconciler asks by paymentd's id when the answer was lost.
	st, err := c.GetPayment(ctx, "pay_x1")
	if err != nil || st.Reference != res.Reference || st.Status != "captured" || st.Amount != 1000_00 || st.Currency != "NGN" {
		t.Errorf("GetPayment(pay_x1): %+v, %v", st, err)
	}
	po, err := c.CreatePayout(ctx, providers.PayoutRequest{IdempotencyKey: "po_x1", MethodID: "ch_kes_mpesa", Amount: 1000_00,
		Currency: "KES", RecipientName: "W", RecipientAccount: "254712345678"})
	if err != nil || po.Fee != 10_00 || po.TotalAmount != 1010_00 {
		t.Errorf("CreatePayout with a 1%% fee: %+v, %v", po, err)
	}
	if got := f.Requests()[0].Path; got != "/api/v2/charges" {
		t.Errorf("first request to %s; want the configured /api/v2/charges", got)
	}
	if _, err := asyncpay.New(asyncpay.Options{SecretKey: key, Paths: asyncpay.Paths{CreatePayout: "v1/payouts"}}); err == nil {
		t.Error("a relative path was accepted")
	}
}
