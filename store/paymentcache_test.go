package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestPaymentCacheServesOnlyCommittedVersions checks that reads of recently
// written payments equal what the database holds, and that a change rolled
// back never shows.
func TestPaymentCacheServesOnlyCommittedVersions(t *testing.T) {
	st := openTestStore(t)
	ctx := context.Background()
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	p := &Payment{ID: "pay_cache1", AccountID: "acct_a", Status: "requires_capture", Amount: 1000, Currency: "USD",
		AmountCapturable: 1000, CaptureMethod: "manual", PaymentMethod: "pm_card_visa", Provider: "sandbox",
		Metadata: map[string]string{"k": "v"}, Created: now, Updated: now}
	if err := st.Write(ctx, func(tx *Tx) error { return tx.InsertPayment(p) }); err != nil {
		t.Fatal(err)
	}
	fromDB := func() *Payment {
		t.Helper()
		got, err := scanPayment(st.r.getPayment.QueryRowContext(ctx, "acct_a", 0, "pay_cache1"))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	cached, err := st.GetPayment(ctx, "acct_a", false, "pay_cache1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cached, fromDB()) {
		t.Fatalf("cached %+v\n   db %+v", cached, fromDB())
	}
	// A change that fails after updating the payment is not published.
	boom := errors.New("boom")
	err = st.Write(ctx, func(tx *Tx) error {
		cur, err := tx.GetPayment("acct_a", false, "pay_cache1")
		if err != nil {
			return err
		}
		cur.Status, cur.AmountCaptured, cur.AmountCapturable = "succeeded", 1000, 0
		if err := tx.UpdatePayment(cur); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got, _ := st.GetPayment(ctx, "acct_a", false, "pay_cache1"); got.Status != "requires_capture" {
		t.Fatalf("rolled-back status %q visible", got.Status)
	}
	// A committed update is.
	if err := st.Write(ctx, func(tx *Tx) error {
		cur, err := tx.GetPayment("acct_a", false, "pay_cache1")
		if err != nil {
			return err
		}
		cur.Status, cur.AmountCaptured, cur.AmountCapturable, cur.Updated = "succeeded", 1000, 0, tx.Now()
		return tx.UpdatePayment(cur)
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := st.GetPayment(ctx, "acct_a", false, "pay_cache1")
	if !reflect.DeepEqual(got, fromDB()) || got.Status != "succeeded" {
		t.Fatalf("after update: cached %+v\n   db %+v", got, fromDB())
	}
	// Another account or mode never sees it.
	if _, err := st.GetPayment(ctx, "acct_b", false, "pay_cache1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other account: %v", err)
	}
	if _, err := st.GetPayment(ctx, "acct_a", true, "pay_cache1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other mode: %v", err)
	}
}
