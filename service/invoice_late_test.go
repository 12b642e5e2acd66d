package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/alppay"
	"github.com/paymentd/paymentd/providers/alppay/alppayfake"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/store"
)

// TestLateTransferToEndedInvoiceRecorded: paymentd expires an alppay
// invoice on its clock; the customer's transfer reaches alppay afterwards.
// The reconciler keeps asking alppay about the ended invoice on its
// schedule (not at every pass), records the late money on it (the invoice
// stays expired, for the merchant to honour or refund), and never asks
// about an invoice that ended more than LateTransferWindow ago. A second
// transfer to a paid invoice is recorded the same way.
func TestLateTransferToEndedInvoiceRecorded(t *testing.T) {
	const key, secret = "ak_late_test", "late-secret"
	fake := alppayfake.New(key, secret)
	t.Cleanup(fake.Close)
	f, err := routing.ParseFile([]byte(`
connections:
  - {name: alppay-live, provider: alppay, mode: live, base_url: ` + fake.URL() + `, credentials: {api_key: K, hmac_secret: S}}
routes:
  - {operation: invoices, mode: live, currency: USDT, connections: [alppay-live]}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.New(f, routing.Options{Getenv: func(name string) string { return map[string]string{"K": key, "S": secret}[name] }})
	if err != nil {
		t.Fatal(err)
	}
	client, err := alppay.New(alppay.Options{Name: "alppay-live", BaseURL: fake.URL(), APIKey: key, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	s := New(Config{Store: st, Router: r})
	acct := NewID(PrefixAccount)
	ctx := context.Background()
	// Two alppay invoices, recorded as paymentd records them: one due to
	// expire now, one that expired eight days ago.
	invoice := func(expires time.Time, status string) *store.Invoice {
		t.Helper()
		inv := &store.Invoice{ID: NewID(PrefixInvoice), AccountID: acct, Livemode: true, Status: status, Amount: 50_000000,
			Currency: "USDT", Network: "tron", TransactionReference: NewID("ref_"), Provider: "alppay-live",
			ConfirmationsRequired: alppayfake.ConfirmsNeeded, ExpiresAt: expires}
		ist, err := client.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: inv.ID, Reference: inv.TransactionReference,
			Amount: inv.Amount, Currency: "USDT", Network: "tron", CustomerName: "Ann", CustomerID: "7", Livemode: true})
		if err != nil {
			t.Fatal(err)
		}
		inv.ProviderRef, inv.PaymentURL = ist.Reference, ist.PaymentURL
		err = st.Write(ctx, func(tx *store.Tx) error {
			inv.Created, inv.Updated = tx.Now().Add(-time.Hour), tx.Now().Add(-time.Hour)
			return tx.InsertInvoice(inv)
		})
		if err != nil {
			t.Fatal(err)
		}
		return inv
	}
	if err := st.Write(ctx, func(tx *store.Tx) error {
		return tx.InsertAccount(&store.Account{ID: acct, Name: "t", Created: tx.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	inv := invoice(time.Now().Add(-time.Second), "open")
	old := invoice(time.Now().Add(-8*24*time.Hour), "expired")
	gets := func(ref string) (n int) {
		for _, req := range fake.Requests() {
			if req.Method == "GET" && strings.Contains(req.Path, ref) {
				n++
			}
		}
		return n
	}
	if err := s.expireDue(ctx, "", false); err != nil { // the sweep
		t.Fatal(err)
	}
	if err := s.expireDue(ctx, "", true); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetInvoice(ctx, acct, true, inv.ID)
	if err != nil || got.Status != "expired" {
		t.Fatalf("after the sweep: %v, %v; want expired", got, err)
	}
	// The customer pays after the expiry; alppay confirms the transfer.
	if err := fake.PayInvoice(inv.ProviderRef, 50_000000); err != nil {
		t.Fatal(err)
	}
	if err := fake.PayInvoice(old.ProviderRef, 50_000000); err != nil {
		t.Fatal(err)
	}
	cfg := ReconcileConfig{Schedule: []time.Duration{50 * time.Millisecond, time.Hour}}.withDefaults()
	time.Sleep(60 * time.Millisecond)
	reconciler{s}.reconcileOnce(ctx, cfg)
	got, _ = st.GetInvoice(ctx, acct, true, inv.ID)
	if got.Status != "expired" || got.AmountPaid != 50_000000 || len(got.Receipts) != 1 || !got.Receipts[0].Counted {
		t.Fatalf("after the reconciler asked alppay: %s, amount_paid %d, receipts %v; want expired with the late 50 USDT counted", got.Status, got.AmountPaid, got.Receipts)
	}
	n := gets(inv.ProviderRef)
	reconciler{s}.reconcileOnce(ctx, cfg)
	time.Sleep(60 * time.Millisecond)
	reconciler{s}.reconcileOnce(ctx, cfg) // a first delay after the change: asked once more, nothing new
	reconciler{s}.reconcileOnce(ctx, cfg) // not due again for an hour
	if m := gets(inv.ProviderRef); m != n+1 {
		t.Errorf("alppay was asked %d more times about the ended invoice; want 1 (its schedule, not every pass)", m-n)
	}
	if m := gets(old.ProviderRef); m != 0 {
		t.Errorf("alppay was asked %d times about an invoice that ended 8 days ago; want none (LateTransferWindow)", m)
	}

	// A paid invoice is asked about too: a second transfer after the
	// payment is money at alppay, recorded on the invoice.
	paid := invoice(time.Now().Add(time.Hour), "open")
	if err := fake.PayInvoice(paid.ProviderRef, 50_000000); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	reconciler{s}.reconcileOnce(ctx, cfg)
	if got, _ := st.GetInvoice(ctx, acct, true, paid.ID); got.Status != "paid" || got.AmountPaid != 50_000000 {
		t.Fatalf("after the payment: %s, amount_paid %d; want paid, 50 USDT", got.Status, got.AmountPaid)
	}
	if err := fake.PayInvoice(paid.ProviderRef, 7_000000); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	reconciler{s}.reconcileOnce(ctx, cfg)
	if got, _ := st.GetInvoice(ctx, acct, true, paid.ID); got.Status != "paid" || got.AmountPaid != 57_000000 || len(got.Receipts) != 2 {
		t.Errorf("after a second transfer to the paid invoice: %s, amount_paid %d, %d receipts; want paid, 57 USDT, 2", got.Status, got.AmountPaid, len(got.Receipts))
	}
}
