package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

// testReconcileSchedule follows an unknown payment and a payment with a
// pending capture through the reconciler's schedule: due when first seen
// (unchanged since firstBefore), not due once a check set the next call
// later, due again at that time with its attempts, and gone once settled.
func testReconcileSchedule(t *testing.T, s *store.Store) {
	ctx := context.Background()
	var since time.Time
	mustWrite(t, s, func(tx *store.Tx) error {
		since = tx.Now()
		unknown := capturedPayment("pay_unknown", "acct_1", 1000, since)
		unknown.Status, unknown.AmountCaptured = "unknown", 0
		held := capturedPayment("pay_held", "acct_1", 1000, since)
		held.Status, held.AmountCaptured, held.AmountCapturable, held.CaptureMethod = "requires_capture", 0, 1000, "manual"
		held.PendingOp, held.PendingAmount, held.PendingSince = "capture", 1000, since
		if err := tx.InsertPayment(unknown); err != nil {
			return err
		}
		return tx.InsertPayment(held)
	})
	due := func(firstBefore, now time.Time) (unsettled, pending []store.ReconcileState) {
		t.Helper()
		ps, us, err := s.UnsettledPayments(ctx, firstBefore, now, 10)
		if err != nil || len(ps) != len(us) {
			t.Fatalf("UnsettledPayments = %v, %v, %v", ps, us, err)
		}
		ops, os, err := s.PendingOperations(ctx, firstBefore, now, 10)
		if err != nil || len(ops) != len(os) || len(ops) > 0 && ops[0].ID != "pay_held" {
			t.Fatalf("PendingOperations = %v, %v, %v; want at most pay_held", ops, os, err)
		}
		return us, os
	}
	if us, os := due(since.Add(-time.Second), since); len(us)+len(os) != 0 {
		t.Errorf("due before their first check was due: %v, %v; want none", us, os)
	}
	if us, os := due(since.Add(time.Second), since); len(us) != 1 || len(os) != 1 || us[0] != (store.ReconcileState{}) {
		t.Errorf("due after firstBefore: %v, %v; want each payment once, never checked", us, os)
	}
	next := time.UnixMicro(since.Add(time.Minute).UnixMicro()).UTC()
	mustWrite(t, s, func(tx *store.Tx) error {
		for _, id := range []string{"pay_unknown", "pay_held"} {
			if err := tx.SetReconcileCheck(id, "acct_1", false, store.ReconcileState{Attempts: 2, NextCheck: next}, "provider timeout"); err != nil {
				return err
			}
		}
		return nil
	})
	if us, os := due(since.Add(time.Second), since.Add(time.Second)); len(us)+len(os) != 0 {
		t.Errorf("due before their next check: %v, %v; want none", us, os)
	}
	want := store.ReconcileState{Attempts: 2, NextCheck: next}
	if us, os := due(since, next); len(us) != 1 || len(os) != 1 || us[0] != want || os[0] != want {
		t.Errorf("due at their next check: %v, %v; want each with %+v", us, os, want)
	}
	mustWrite(t, s, func(tx *store.Tx) error {
		p, err := tx.GetPayment("acct_1", false, "pay_unknown")
		if err != nil {
			return err
		}
		p.Status, p.Updated = "failed", tx.Now()
		if err := tx.UpdatePayment(p); err != nil {
			return err
		}
		return tx.DeleteReconcileCheck("acct_1", false, "pay_unknown")
	})
	if us, _ := due(next, next); len(us) != 0 {
		t.Errorf("a failed payment is still due: %v", us)
	}
}

// testProviderRecords covers what inbound provider webhooks and the
// provider reconciler store: handled event ids (once each), the lookups of
// unsettled payments by id or provider reference in any account, and
// invoice attempts recorded before their provider answered.
func testProviderRecords(t *testing.T, s *store.Store) {
	ctx := context.Background()
	if seen, err := s.ProviderEventSeen(ctx, "aspayds", "evt_1"); err != nil || seen {
		t.Errorf("ProviderEventSeen before any = %v, %v; want false", seen, err)
	}
	mustWrite(t, s, func(tx *store.Tx) error {
		return tx.InsertProviderEvent("aspayds", "evt_1", "invoice.paid", "inv_1", "applied")
	})
	err := s.Write(ctx, func(tx *store.Tx) error {
		return tx.InsertProviderEvent("aspayds", "evt_1", "invoice.paid", "inv_1", "applied")
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("the same provider event twice = %v; want ErrConflict", err)
	}
	if seen, err := s.ProviderEventSeen(ctx, "aspayds", "evt_1"); err != nil || !seen {
		t.Errorf("ProviderEventSeen after = %v, %v; want true", seen, err)
	}
	if seen, err := s.ProviderEventSeen(ctx, "alppay", "evt_1"); err != nil || seen {
		t.Errorf("ProviderEventSeen of another provider = %v, %v; want false", seen, err)
	}

	mustWrite(t, s, func(tx *store.Tx) error {
		p := capturedPayment("pay_1", "acct_2", 1000, tx.Now())
		p.Status, p.AmountCaptured, p.Provider, p.ProviderRef = "processing", 0, "aslan", "as_1"
		return tx.InsertPayment(p)
	})
	for _, tc := range []struct{ id, ref string }{{"pay_1", ""}, {"", "as_1"}, {"pay_nope", "as_1"}} {
		if p, err := s.UnsettledPayment(ctx, "aslan", tc.id, tc.ref); err != nil || p.ID != "pay_1" {
			t.Errorf("UnsettledPayment(aslan, %q, %q) = %v, %v; want pay_1", tc.id, tc.ref, p, err)
		}
	}
	if _, err := s.UnsettledPayment(ctx, "aikdata", "pay_1", "as_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UnsettledPayment at another provider = %v; want ErrNotFound", err)
	}

	a := &store.InvoiceAttempt{AccountID: "acct_1", TransactionReference: "ref-1", InvoiceID: "inv_1", Provider: "aspayds-live",
		RequestHash: []byte{1, 2, 3}, Invoice: []byte(`{"id":"inv_1"}`)}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.PutInvoiceAttempt(a) })
	moved := *a
	moved.Provider = "alppay-live" // fallback to the next connection: the same invoice, another provider
	mustWrite(t, s, func(tx *store.Tx) error { return tx.PutInvoiceAttempt(&moved) })
	other := *a
	other.InvoiceID, other.Provider = "inv_2", "nope" // another invoice for a taken reference changes nothing
	mustWrite(t, s, func(tx *store.Tx) error { return tx.PutInvoiceAttempt(&other) })
	got, err := s.GetInvoiceAttempt(ctx, "acct_1", false, "ref-1")
	if err != nil || got.InvoiceID != "inv_1" || got.Provider != "alppay-live" || !reflect.DeepEqual(got.RequestHash, a.RequestHash) ||
		string(got.Invoice) != string(a.Invoice) || got.Created.IsZero() {
		t.Errorf("GetInvoiceAttempt = %+v, %v; want inv_1 at alppay-live", got, err)
	}
	if old, err := s.InvoiceAttemptsBefore(ctx, time.Now().Add(time.Second), 10); err != nil || len(old) != 1 {
		t.Errorf("InvoiceAttemptsBefore(now) = %v, %v; want the one attempt", old, err)
	}
	if old, err := s.InvoiceAttemptsBefore(ctx, got.Created.Add(-time.Second), 10); err != nil || len(old) != 0 {
		t.Errorf("InvoiceAttemptsBefore(before it) = %v, %v; want none", old, err)
	}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.DeleteInvoiceAttempt("acct_1", false, "ref-1") })
	if _, err := s.GetInvoiceAttempt(ctx, "acct_1", false, "ref-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetInvoiceAttempt after delete = %v; want ErrNotFound", err)
	}
}
