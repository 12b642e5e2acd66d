package store

import (
	"context"
	"errors"
	"path/filepath"
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
	// ReadPayment hands out the version itself; a later change publishes a
	// new one and leaves the one handed out as it was.
	view, err := st.ReadPayment(ctx, "acct_a", false, "pay_cache1")
	if err != nil || !reflect.DeepEqual(view, got) {
		t.Fatalf("ReadPayment = %+v, %v; want %+v", view, err, got)
	}
	if err := st.Write(ctx, func(tx *Tx) error {
		cur, err := tx.GetPayment("acct_a", false, "pay_cache1")
		if err != nil {
			return err
		}
		cur.AmountRefunded, cur.Updated = 400, tx.Now()
		return tx.UpdatePayment(cur)
	}); err != nil {
		t.Fatal(err)
	}
	if view.AmountRefunded != 0 {
		t.Fatalf("a version handed out by ReadPayment changed: amount_refunded %d", view.AmountRefunded)
	}
	if again, _ := st.ReadPayment(ctx, "acct_a", false, "pay_cache1"); again.AmountRefunded != 400 || !reflect.DeepEqual(again, fromDB()) {
		t.Fatalf("ReadPayment after the refund = %+v\n   db %+v", again, fromDB())
	}
	if _, err := st.ReadPayment(ctx, "acct_b", false, "pay_cache1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadPayment, other account: %v", err)
	}
	// Another account or mode never sees it.
	if _, err := st.GetPayment(ctx, "acct_b", false, "pay_cache1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other account: %v", err)
	}
	if _, err := st.GetPayment(ctx, "acct_a", true, "pay_cache1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other mode: %v", err)
	}
}

// TestPaymentCacheKeepsReadPayments checks that a payment read from the
// database (not written since the store opened, or evicted) is served from
// memory afterwards, that its later updates replace it, and that a read
// which overlapped a commit is not kept.
func TestPaymentCacheKeepsReadPayments(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(dir, "paymentd.db"), Options{PaymentCache: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	for _, id := range []string{"pay_r1", "pay_r2", "pay_r3"} { // pay_r1 is evicted by pay_r3
		p := &Payment{ID: id, AccountID: "acct_a", Status: "requires_capture", Amount: 1000, Currency: "USD",
			AmountCapturable: 1000, CaptureMethod: "manual", PaymentMethod: "pm_card_visa", Provider: "sandbox", Created: now, Updated: now}
		if err := st.Write(ctx, func(tx *Tx) error { return tx.InsertPayment(p) }); err != nil {
			t.Fatal(err)
		}
	}
	cached := func(id string) *Payment {
		st.payments.mu.RLock()
		defer st.payments.mu.RUnlock()
		return st.payments.m[paymentKey{"acct_a", false, id}]
	}
	if cached("pay_r1") != nil {
		t.Fatal("pay_r1 should have been evicted")
	}
	got, err := st.GetPayment(ctx, "acct_a", false, "pay_r1")
	if err != nil {
		t.Fatal(err)
	}
	if c := cached("pay_r1"); c == nil || !reflect.DeepEqual(c, got) {
		t.Fatalf("read payment not kept: %+v", c)
	}
	// An update replaces the kept version.
	if err := st.Write(ctx, func(tx *Tx) error {
		cur, err := tx.GetPayment("acct_a", false, "pay_r1")
		if err != nil {
			return err
		}
		cur.Status, cur.AmountCaptured, cur.AmountCapturable, cur.Updated = "succeeded", 1000, 0, tx.Now()
		return tx.UpdatePayment(cur)
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetPayment(ctx, "acct_a", false, "pay_r1"); got.Status != "succeeded" {
		t.Fatalf("after update: %q", got.Status)
	}
	// A version read before a publication is not kept: here pay_r2, read
	// while pay_r2 was still requires_capture, then captured and evicted.
	old, err := scanPayment(st.r.getPayment.QueryRowContext(ctx, "acct_a", 0, "pay_r2"))
	if err != nil {
		t.Fatal(err)
	}
	gen := st.payments.generation()
	if err := st.Write(ctx, func(tx *Tx) error {
		cur, err := tx.GetPayment("acct_a", false, "pay_r2")
		if err != nil {
			return err
		}
		cur.Status, cur.Updated = "canceled", tx.Now()
		return tx.UpdatePayment(cur)
	}); err != nil {
		t.Fatal(err)
	}
	st.payments.mu.Lock()
	delete(st.payments.m, paymentKey{"acct_a", false, "pay_r2"}) // as an eviction would
	st.payments.mu.Unlock()
	st.payments.fill(gen, old)
	if c := cached("pay_r2"); c != nil {
		t.Fatalf("an outdated read was kept: %+v", c)
	}
	if got, _ := st.GetPayment(ctx, "acct_a", false, "pay_r2"); got.Status != "canceled" {
		t.Fatalf("pay_r2 reads %q, want canceled", got.Status)
	}
	// List pages that missed the cache fill it too.
	st.payments.mu.Lock()
	clear(st.payments.m)
	st.payments.mu.Unlock()
	page, err := st.ListPayments(ctx, PageFilter{AccountID: "acct_a", Limit: 2})
	if err != nil || len(page) != 2 {
		t.Fatalf("list: %v, %v", page, err)
	}
	for _, p := range page {
		if c := cached(p.ID); c == nil || !reflect.DeepEqual(c, p) {
			t.Errorf("listed %s not kept", p.ID)
		}
	}
}

// TestPaymentPagesFollowWrites checks that a listed page answered from
// memory equals what the database holds after every kind of payment write:
// a new payment, an update that changes the status filter's answer, and a
// rolled-back change (which must not show), and that a caller changing the
// payments it got does not change the next answer.
func TestPaymentPagesFollowWrites(t *testing.T) {
	for _, c := range []struct {
		name  string
		cache int
	}{{"cache=2", 2}, {"cache=default", 0}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := Open(ctx, filepath.Join(t.TempDir(), "paymentd.db"), Options{PaymentCache: c.cache})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			now := time.UnixMilli(time.Now().UnixMilli()).UTC()
			insert := func(id string) {
				t.Helper()
				p := &Payment{ID: id, AccountID: "acct_a", Status: "requires_capture", Amount: 1000, Currency: "USD",
					AmountCapturable: 1000, CaptureMethod: "manual", PaymentMethod: "pm_card_visa", Provider: "sandbox", Created: now, Updated: now}
				if err := st.Write(ctx, func(tx *Tx) error { return tx.InsertPayment(p) }); err != nil {
					t.Fatal(err)
				}
			}
			cancel := func(id string, fail error) error {
				return st.Write(ctx, func(tx *Tx) error {
					cur, err := tx.GetPayment("acct_a", false, id)
					if err != nil {
						return err
					}
					cur.Status, cur.Updated = "canceled", tx.Now()
					if err := tx.UpdatePayment(cur); err != nil {
						return err
					}
					return fail
				})
			}
			all := PageFilter{AccountID: "acct_a", Limit: 3}
			held := PageFilter{AccountID: "acct_a", Status: "requires_capture", Limit: 3}
			// check lists f twice (the second from memory) and compares
			// both with the rows the database holds.
			check := func(f PageFilter, want ...string) {
				t.Helper()
				for range 2 {
					got, err := st.ListPayments(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					var ids []string
					for _, p := range got {
						ids = append(ids, p.ID)
						fromDB, err := scanPayment(st.r.getPayment.QueryRowContext(ctx, "acct_a", 0, p.ID))
						if err != nil {
							t.Fatal(err)
						}
						if !reflect.DeepEqual(p, fromDB) {
							t.Fatalf("listed %+v\n    db %+v", p, fromDB)
						}
						p.Status = "scribbled" // the caller's copy only
					}
					if !reflect.DeepEqual(ids, want) {
						t.Fatalf("%+v: listed %v, want %v", f, ids, want)
					}
				}
			}
			insert("pay_p1")
			insert("pay_p2")
			check(all, "pay_p2", "pay_p1")
			check(held, "pay_p2", "pay_p1")
			insert("pay_p3")
			check(all, "pay_p3", "pay_p2", "pay_p1")
			if err := cancel("pay_p2", nil); err != nil {
				t.Fatal(err)
			}
			check(all, "pay_p3", "pay_p2", "pay_p1")
			check(held, "pay_p3", "pay_p1")
			boom := errors.New("boom")
			if err := cancel("pay_p3", boom); !errors.Is(err, boom) {
				t.Fatal(err)
			}
			check(held, "pay_p3", "pay_p1")
			insert("pay_p4")
			check(all, "pay_p4", "pay_p3", "pay_p2")
			check(PageFilter{AccountID: "acct_a", Before: "pay_p3", Limit: 3}, "pay_p2", "pay_p1")
			check(PageFilter{AccountID: "acct_b", Limit: 3})
		})
	}
}
