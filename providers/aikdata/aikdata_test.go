package aikdata_test

import (
	"context"
	"testing"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aikdata"
	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/providers/providertest"
)

const token = "aik_conformance_token"

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		NewFake: func(t *testing.T) providertest.Fake {
			f := aikdatafake.New(token)
			t.Cleanup(f.Close)
			return f
		},
		NewAdapter: func(t *testing.T, baseURL string, o providers.HTTPOptions) any {
			c, err := aikdata.New(aikdata.Options{BaseURL: baseURL, Token: token, HTTP: o})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		IdempotencyKey: func(r fakekit.Request) string { return r.Header.Get("Idempotency-Key") },
		Payment:        providers.PaymentRequest{Amount: 1500, Currency: "USD", Description: "Order #1234"},
		ManualCapture:  false,
	})
}

func TestListAndGetCharges(t *testing.T) {
	f := aikdatafake.New(token)
	defer f.Close()
	c, _ := aikdata.New(aikdata.Options{BaseURL: f.URL(), Token: token})
	ctx := context.Background()
	var refs []string
	for i, amt := range []int64{1500, 2500, 3500} {
		res, err := c.Authorize(ctx, providers.PaymentRequest{IdempotencyKey: "pay_" + string(rune('a'+i)), Amount: amt, Currency: "USD", Capture: true})
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, res.Reference)
	}
	if md := f.Metadata(refs[0]); md["paymentd_id"] != "pay_a" {
		t.Errorf("charge metadata %v; want paymentd_id pay_a", md)
	}
	page, err := c.ListCharges(ctx, 2, 1, "succeeded")
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 3 || page.Limit != 2 || page.Offset != 1 || len(page.Charges) != 2 ||
		page.Charges[0].Reference != refs[1] || page.Charges[1].Reference != refs[0] || page.Charges[0].Amount != 2500 {
		t.Errorf("ListCharges(2, 1, succeeded) = %+v; want total 3 and the 2nd and 1st charges (newest first)", page)
	}
	st, err := c.GetPayment(ctx, refs[2])
	if err != nil || st.Status != "captured" || st.Amount != 3500 || st.Currency != "USD" {
		t.Errorf("GetPayment = %+v, %v", st, err)
	}
	// The reconciler asks by paymentd's id when a charge was never answered.
	st, err = c.GetPayment(ctx, "pay_b")
	if err != nil || st.Reference != refs[1] || st.Status != "captured" || st.Amount != 2500 {
		t.Errorf("GetPayment(pay_b) = %+v, %v; want charge %s", st, err, refs[1])
	}
	if _, err := c.GetPayment(ctx, "pay_never_sent"); err == nil || providers.KindOf(err) == providers.Declined {
		t.Errorf("GetPayment of an unknown paymentd id: %v; want an error that does not settle anything", err)
	}
	if _, err := c.GetPayment(ctx, "ch_missing"); providers.KindOf(err) != providers.InvalidRequest {
		t.Errorf("GetPayment of a missing charge: %v; want InvalidRequest", err)
	}
}
