package aspayds_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aspayds"
	"github.com/paymentd/paymentd/providers/aspayds/aspaydsfake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/providers/providertest"
)

const key, secret = "pk_conformance", "sk_conformance"

func newClient(t *testing.T, baseURL string, o providers.HTTPOptions) *aspayds.Client {
	t.Helper()
	c, err := aspayds.New(aspayds.Options{BaseURL: baseURL, APIKey: key, APISecret: secret, HTTP: o})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		NewFake: func(t *testing.T) providertest.Fake {
			f := aspaydsfake.New(key, secret)
			t.Cleanup(f.Close)
			return f
		},
		NewAdapter: func(t *testing.T, baseURL string, o providers.HTTPOptions) any { return newClient(t, baseURL, o) },
		// aspayds deduplicates on the transaction_reference.
		IdempotencyKey: func(r fakekit.Request) string {
			var b struct {
				Ref string `json:"transaction_reference"`
			}
			_ = json.Unmarshal(r.Body, &b)
			return b.Ref
		},
		Invoice: providers.InvoiceRequest{Amount: 100_00, Currency: "BDT", CustomerName: "John Doe",
			CallbackURL: "https://shop.example/callback"},
		Payout: providers.PayoutRequest{MethodID: "1", Amount: 500_00, Currency: "BDT", RecipientName: "John Doe",
			RecipientAccount: "01712345678"},
		Skip: map[string]string{
			"Invoices/AmountMismatch":   "the documented create-invoice answer carries no amount",
			"Invoices/CurrencyMismatch": "the documented create-invoice answer carries no currency",
			"Payouts/CurrencyMismatch":  "the documented create-payout answer carries no currency",
		},
	})
}

func TestFieldLimitsCheckedBeforeTheCall(t *testing.T) {
	f := aspaydsfake.New(key, secret)
	defer f.Close()
	c := newClient(t, f.URL(), providers.HTTPOptions{})
	ctx := context.Background()
	inv := providers.InvoiceRequest{Amount: 100_00, Currency: "BDT", CustomerName: "John Doe", Reference: "TRX123456",
		CallbackURL: "https://shop.example/cb"}
	cases := []struct {
		name  string
		edit  func(*providers.InvoiceRequest)
		param string
	}{
		{"reference of 21 characters", func(r *providers.InvoiceRequest) { r.Reference = strings.Repeat("R", 21) }, "transaction_reference"},
		{"no reference", func(r *providers.InvoiceRequest) { r.Reference = "" }, "transaction_reference"},
		{"name of 256 characters", func(r *providers.InvoiceRequest) { r.CustomerName = strings.Repeat("é", 256) }, "customer.name"},
		{"no name", func(r *providers.InvoiceRequest) { r.CustomerName = " " }, "customer.name"},
		{"no callback", func(r *providers.InvoiceRequest) { r.CallbackURL = "" }, "callback_url"},
		{"another currency", func(r *providers.InvoiceRequest) { r.Currency = "USD" }, "currency"},
	}
	for _, tc := range cases {
		r := inv
		tc.edit(&r)
		_, err := c.CreateInvoice(ctx, r)
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Kind != providers.InvalidRequest || pe.Param != tc.param || pe.Message == "" {
			t.Errorf("%s: %v; want InvalidRequest naming %s", tc.name, err, tc.param)
		}
	}
	// Exactly at the limits is fine.
	r := inv
	r.Reference, r.CustomerName = strings.Repeat("R", 20), strings.Repeat("é", 255)
	if _, err := c.CreateInvoice(ctx, r); err != nil {
		t.Errorf("a 20-character reference and a 255-character name: %v", err)
	}
	// The payout's transaction_reference is paymentd's payout id.
	po := providers.PayoutRequest{MethodID: "1", Amount: 500_00, Currency: "BDT", RecipientName: "John Doe",
		RecipientAccount: "01712345678", Reference: "WD-LIMIT", IdempotencyKey: "po_" + strings.Repeat("W", 48)}
	if _, err := c.CreatePayout(ctx, po); providers.KindOf(err) != providers.InvalidRequest {
		t.Errorf("a 51-character payout transaction_reference: %v; want InvalidRequest", err)
	}
	po.IdempotencyKey = ""
	if _, err := c.CreatePayout(ctx, po); providers.KindOf(err) != providers.InvalidRequest {
		t.Errorf("a payout without paymentd's id: %v; want InvalidRequest", err)
	}
	po.IdempotencyKey = "po_" + strings.Repeat("W", 47)
	if _, err := c.CreatePayout(ctx, po); err != nil {
		t.Errorf("a 50-character payout transaction_reference: %v", err)
	}
	if n := len(f.Requests()); n != 2 {
		t.Errorf("the fake saw %d requests; want only the 2 valid creations", n)
	}
}

func TestAmountsAreExactMajorUnits(t *testing.T) {
	f := aspaydsfake.New(key, secret)
	defer f.Close()
	c := newClient(t, f.URL(), providers.HTTPOptions{})
	ctx := context.Background()
	st, err := c.CreateInvoice(ctx, providers.InvoiceRequest{Amount: 100_05, Currency: "BDT", CustomerName: "A",
		Reference: "AMT1", CallbackURL: "https://shop.example/cb"})
	if err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Amount json.Number `json:"amount"`
	}
	_ = json.Unmarshal(f.Requests()[0].Body, &sent)
	if sent.Amount != "100.05" {
		t.Errorf("sent amount %s; want the number 100.05 (major units)", sent.Amount)
	}
	// Lookup by the transaction reference finds the same invoice.
	if err := f.PayInvoice("AMT1", 100_05); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetInvoice(ctx, "AMT1")
	if err != nil || got.Reference != st.Reference || got.Status != "paid" || got.AmountPaid != 100_05 {
		t.Errorf("GetInvoice by reference: %+v, %v", got, err)
	}
	found, missing, err := c.BatchInvoices(ctx, []string{st.Reference, "NOPE"})
	if err != nil || len(found) != 1 || found[0].Amount != 100_05 || found[0].Status != "paid" || len(missing) != 1 || missing[0] != "NOPE" {
		t.Errorf("BatchInvoices: %+v %v %v", found, missing, err)
	}
	ms, err := c.PayoutMethods(ctx)
	if err != nil || ms[0].MinAmount != 100_00 || ms[0].MaxAmount != 50000_00 || ms[0].Currency != "BDT" || ms[0].ID != "1" {
		t.Errorf("PayoutMethods: %+v, %v; want bKash 100.00–50000.00 BDT", ms, err)
	}
	po, err := c.CreatePayout(ctx, providers.PayoutRequest{MethodID: "2", Amount: 1000_00, Currency: "BDT",
		RecipientName: "B", RecipientAccount: "01812345678", Reference: "WD-FEE", IdempotencyKey: "po_fee"})
	if err != nil || po.Fee != 10_00 || po.TotalAmount != 1010_00 || po.Amount != 1000_00 {
		t.Errorf("payout with a 1%% fee: %+v, %v; want fee 10.00 and total 1010.00", po, err)
	}
	pos, missing, err := c.BatchPayouts(ctx, []string{"po_fee", "NOPE"})
	if err != nil || len(pos) != 1 || pos[0].Reference != po.Reference || len(missing) != 1 {
		t.Errorf("BatchPayouts: %+v %v %v", pos, missing, err)
	}
}

func TestWebhooks(t *testing.T) {
	f := aspaydsfake.New(key, secret)
	defer f.Close()
	c := newClient(t, f.URL(), providers.HTTPOptions{})
	ctx := context.Background()
	po, err := c.CreatePayout(ctx, providers.PayoutRequest{MethodID: "1", Amount: 500_00, Currency: "BDT",
		RecipientName: "John Doe", RecipientAccount: "01712345678", Reference: "WD123456", IdempotencyKey: "po_webhooks"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := f.SettlePayout(po.Reference, "completed"); err != nil {
		t.Fatal(err)
	}
	h, body, err := f.Webhook("payout.completed", po.Reference, now)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.ParseWebhook(h, body, now)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "payout.completed" || ev.ObjectKind != "payout" || ev.Reference != po.Reference || ev.Status != "completed" ||
		ev.MerchantReference != "po_webhooks" || ev.ID == "" {
		t.Errorf("ParseWebhook: %+v", ev)
	}
	// The claim is confirmed by asking aspayds.
	confirmed, err := c.ConfirmWebhook(ctx, ev)
	if err != nil || confirmed.Status != "completed" {
		t.Errorf("ConfirmWebhook: %+v, %v", confirmed, err)
	}
	// A claim aspayds does not back is corrected by the confirmation.
	h2, body2, _ := f.Webhook("payout.rejected", po.Reference, now)
	ev2, err := c.ParseWebhook(h2, body2, now)
	if err != nil {
		t.Fatal(err)
	}
	if confirmed, _ := c.ConfirmWebhook(ctx, ev2); confirmed.Status != "completed" {
		t.Errorf("a forged payout.rejected confirmed as %q; want aspayds' own completed", confirmed.Status)
	}

	for name, at := range map[string]time.Time{"10 minutes old": now.Add(-10 * time.Minute), "10 minutes ahead": now.Add(10 * time.Minute)} {
		h, body, _ := f.Webhook("payout.completed", po.Reference, at)
		if _, err := c.ParseWebhook(h, body, now); !errors.Is(err, providers.ErrWebhookSignature) {
			t.Errorf("a webhook %s: %v; want ErrWebhookSignature", name, err)
		}
	}
	hMismatch := h.Clone()
	hMismatch.Set("X-Webhook-Event", "payout.cancelled")
	if _, err := c.ParseWebhook(hMismatch, body, now); !errors.Is(err, providers.ErrWebhookSignature) {
		t.Errorf("header and body disagree on the event: %v; want ErrWebhookSignature", err)
	}
	if _, err := c.ParseWebhook(http.Header{}, body, now); !errors.Is(err, providers.ErrWebhookSignature) {
		t.Errorf("no headers: %v; want ErrWebhookSignature", err)
	}

	inv, err := c.CreateInvoice(ctx, providers.InvoiceRequest{Amount: 100_00, Currency: "BDT", CustomerName: "John Doe",
		Reference: "TRX123456", CallbackURL: "https://shop.example/cb"})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.PayInvoice(inv.Reference, 100_00)
	h3, body3, _ := f.Webhook("payment.completed", inv.Reference, now)
	ev3, err := c.ParseWebhook(h3, body3, now.Add(time.Minute))
	if err != nil || ev3.ObjectKind != "invoice" || ev3.Reference != inv.Reference || ev3.Status != "paid" || ev3.MerchantReference != "TRX123456" {
		t.Errorf("payment.completed: %+v, %v", ev3, err)
	}
}
