package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/store"
)

// testStatusSets writes one object in every status of each lifecycle of the
// domain package and asks the store's queries that keep open objects moving
// (the reconciler's, the expiry sweep's, the payout processor's, the
// in-write check for an open invoice payment) which they find: exactly the objects in
// a non-terminal status (for the reconciler's payment query, in
// paymentd.UnsettledPayments). The statuses come from the lifecycles, so a
// status added to one is tested here without editing this test.
func testStatusSets(t *testing.T, s *store.Store) {
	ctx := context.Background()
	later := time.Now().Add(time.Hour)

	// Payments, each the attempt of an invoice of its own.
	mustWrite(t, s, func(tx *store.Tx) error {
		for _, st := range paymentd.PaymentLifecycle.Statuses {
			p := capturedPayment("pay_"+string(st), "acct_1", 1000, tx.Now().Add(-time.Minute))
			p.Status, p.ProviderRef, p.Metadata = string(st), "ref_"+string(st), map[string]string{"invoice_id": "inv_" + string(st)}
			if err := tx.InsertPayment(p); err != nil {
				return err
			}
		}
		return nil
	})
	unsettled, _, err := s.UnsettledPayments(ctx, later, later, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range paymentd.PaymentLifecycle.Statuses {
		found := slices.ContainsFunc(unsettled, func(p *store.Payment) bool { return p.Status == string(st) })
		if want := slices.Contains(paymentd.UnsettledPayments, st); found != want {
			t.Errorf("UnsettledPayments finds a %s payment: %v; want %v (paymentd.UnsettledPayments)", st, found, want)
		}
		_, err := s.UnsettledPayment(ctx, "sandbox", "pay_"+string(st), "")
		if found, want := err == nil, slices.Contains(paymentd.UnsettledPayments, st); found != want || err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UnsettledPayment of a %s payment: %v; want found %v", st, err, want)
		}
		// Inside a write: the check that an invoice has no open payment attempt.
		mustWrite(t, s, func(tx *store.Tx) error {
			_, err := tx.UnsettledInvoicePayment("acct_1", false, "inv_"+string(st), "")
			if found, want := err == nil, !paymentd.PaymentLifecycle.Terminal(st); found != want || err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Tx.UnsettledInvoicePayment finds a %s payment: %v; want found %v (non-terminal)", st, err, want)
			}
			return nil
		})
	}

	// Refunds.
	mustWrite(t, s, func(tx *store.Tx) error {
		for _, st := range paymentd.RefundLifecycle.Statuses {
			if err := tx.InsertRefund(&store.Refund{ID: "re_" + string(st), AccountID: "acct_1", PaymentID: "pay_succeeded",
				Amount: 1, Currency: "USD", Status: string(st), Created: tx.Now().Add(-time.Minute)}); err != nil {
				return err
			}
		}
		return nil
	})
	refunds, _, err := s.PendingRefunds(ctx, later, later, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range paymentd.RefundLifecycle.Statuses {
		found := slices.ContainsFunc(refunds, func(r *store.Refund) bool { return r.Status == string(st) })
		if want := !paymentd.RefundLifecycle.Terminal(st); found != want {
			t.Errorf("PendingRefunds finds a %s refund: %v; want %v (non-terminal)", st, found, want)
		}
	}

	// Invoices, expired and served by a provider.
	mustWrite(t, s, func(tx *store.Tx) error {
		for _, st := range paymentd.InvoiceLifecycle.Statuses {
			inv := testInvoice("inv_"+string(st), "acct_1", "ref-"+string(st), time.UnixMicro(time.Now().Add(-time.Minute).UnixMicro()).UTC())
			inv.Status, inv.ProviderRef, inv.Updated = string(st), "prov_"+string(st), inv.Created.Add(-time.Minute)
			if err := tx.InsertInvoice(inv); err != nil {
				return err
			}
		}
		return nil
	})
	due, err := s.DueInvoices(ctx, time.Now(), "", false, 100)
	if err != nil {
		t.Fatal(err)
	}
	providerDue, _, err := s.ProviderInvoicesDue(ctx, later, later, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range paymentd.InvoiceLifecycle.Statuses {
		want := !paymentd.InvoiceLifecycle.Terminal(st)
		if found := slices.ContainsFunc(due, func(k store.InvoiceKey) bool { return k.ID == "inv_"+string(st) }); found != want {
			t.Errorf("DueInvoices finds an expired %s invoice: %v; want %v (non-terminal)", st, found, want)
		}
		if found := slices.ContainsFunc(providerDue, func(i *store.Invoice) bool { return i.Status == string(st) }); found != want {
			t.Errorf("ProviderInvoicesDue finds a %s invoice: %v; want %v (non-terminal)", st, found, want)
		}
	}
	endedDue, _, err := s.EndedProviderInvoicesDue(ctx, time.Now().Add(-time.Hour), later, later, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range paymentd.InvoiceLifecycle.Statuses {
		want := slices.Contains(paymentd.EndedInvoices, st)
		if found := slices.ContainsFunc(endedDue, func(i *store.Invoice) bool { return i.Status == string(st) }); found != want {
			t.Errorf("EndedProviderInvoicesDue finds a %s invoice: %v; want %v (ended)", st, found, want)
		}
	}
	if old, _, err := s.EndedProviderInvoicesDue(ctx, time.Now(), later, later, 100); err != nil || len(old) != 0 {
		t.Errorf("EndedProviderInvoicesDue of invoices that expired after now: %v, %v; want none (they expired a minute ago)", old, err)
	}

	// Payouts, at the sandbox and at a provider.
	mustWrite(t, s, func(tx *store.Tx) error {
		for _, provider := range []string{"sandbox", "aspayds"} {
			for _, st := range paymentd.PayoutLifecycle.Statuses {
				p := testPayout("po_"+provider+"_"+string(st), "acct_1", provider+"-"+string(st), 100, tx.Now().Add(-time.Minute))
				p.Status, p.Provider = string(st), provider
				if err := tx.InsertPayout(p); err != nil {
					return err
				}
			}
		}
		return nil
	})
	sandboxDue, err := s.DuePayouts(ctx, "sandbox", later, later, 100)
	if err != nil {
		t.Fatal(err)
	}
	atProvider, _, err := s.ProviderPayoutsDue(ctx, "sandbox", later, later, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range paymentd.PayoutLifecycle.Statuses {
		want := !paymentd.PayoutLifecycle.Terminal(st)
		if found := slices.ContainsFunc(sandboxDue, func(p *store.Payout) bool { return p.Status == string(st) }); found != want {
			t.Errorf("DuePayouts finds a %s sandbox payout: %v; want %v (non-terminal)", st, found, want)
		}
		if found := slices.ContainsFunc(atProvider, func(p *store.Payout) bool { return p.Status == string(st) }); found != want {
			t.Errorf("ProviderPayoutsDue finds a %s payout: %v; want %v (non-terminal)", st, found, want)
		}
	}
}
