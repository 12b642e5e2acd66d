package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

// testPaymentsKeysetPages lists payments of three scopes (account × mode)
// page by page: each page is newest first, the pages join without gaps or
// repeats, the filters hold, and another account's id is not found.
func testPaymentsKeysetPages(t *testing.T, s *store.Store) {
	ctx := context.Background()
	const n = 25
	payment := func(account string, live bool, i int) *store.Payment {
		status := "succeeded"
		if i%3 == 0 {
			status = "failed"
		}
		return &store.Payment{ID: fmt.Sprintf("pay_%026d", i), AccountID: account, Livemode: live, Status: status,
			Amount: 1000, Currency: "USD", AmountCaptured: 1000, CaptureMethod: "automatic",
			PaymentMethod: "pm_card_visa", Provider: "sandbox"}
	}
	var newestFirst, failed []string
	mustWrite(t, s, func(tx *store.Tx) error {
		for i := range n {
			for _, p := range []*store.Payment{payment("acct_a", false, i), payment("acct_a", true, i+100), payment("acct_b", false, i+200)} {
				p.Created, p.Updated = tx.Now(), tx.Now()
				if err := tx.InsertPayment(p); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for i := n - 1; i >= 0; i-- {
		id := fmt.Sprintf("pay_%026d", i)
		newestFirst = append(newestFirst, id)
		if i%3 == 0 {
			failed = append(failed, id)
		}
	}

	// pages walks the pages of f, passing the last id of each as the next Before.
	pages := func(f store.PageFilter) (ids []string, sizes []int) {
		t.Helper()
		for {
			ps, err := s.ListPayments(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) == 0 {
				return ids, sizes
			}
			sizes = append(sizes, len(ps))
			for _, p := range ps {
				if p.AccountID != "acct_a" || p.Livemode {
					t.Fatalf("payment %s of %s (live %v) listed for acct_a test mode", p.ID, p.AccountID, p.Livemode)
				}
				ids = append(ids, p.ID)
			}
			f.Before = ps[len(ps)-1].ID
		}
	}
	ids, sizes := pages(store.PageFilter{AccountID: "acct_a", Limit: 10})
	if !slices.Equal(ids, newestFirst) || !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("pages of 10: sizes %v ids %v; want sizes [10 10 5] and ids %v", sizes, ids, newestFirst)
	}
	ids, _ = pages(store.PageFilter{AccountID: "acct_a", Status: "failed", Limit: 4})
	if !slices.Equal(ids, failed) {
		t.Errorf("failed payments: %v; want %v", ids, failed)
	}
	ids, _ = pages(store.PageFilter{AccountID: "acct_a", AtOrAfter: newestFirst[14], Before: newestFirst[4], Limit: 3})
	if !slices.Equal(ids, newestFirst[5:15]) {
		t.Errorf("ids in [%s, %s): %v; want %v", newestFirst[14], newestFirst[4], ids, newestFirst[5:15])
	}
	if ps, err := s.ListPayments(ctx, store.PageFilter{AccountID: "acct_c", Limit: 10}); err != nil || len(ps) != 0 {
		t.Errorf("an account without payments lists %d, %v", len(ps), err)
	}
	p, err := s.GetPayment(ctx, "acct_a", false, newestFirst[0])
	if err != nil || p.Amount != 1000 || p.Status != "succeeded" && p.Status != "failed" {
		t.Errorf("GetPayment = %+v, %v", p, err)
	}
	if _, err := s.GetPayment(ctx, "acct_b", false, newestFirst[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPayment of another account's id = %v; want ErrNotFound", err)
	}
	if _, err := s.GetPayment(ctx, "acct_a", true, newestFirst[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPayment of a test-mode id in live mode = %v; want ErrNotFound", err)
	}
}

// capturedPayment returns a succeeded payment of amount, all of it captured.
func capturedPayment(id, account string, amount int64, now time.Time) *store.Payment {
	return &store.Payment{ID: id, AccountID: account, Status: "succeeded", Amount: amount, Currency: "USD",
		AmountCaptured: amount, CaptureMethod: "automatic", PaymentMethod: "pm_card_visa", Provider: "sandbox",
		Created: now, Updated: now}
}

// testPaymentRoundTrip writes a payment with every field set, reads it back
// inside a write and outside, updates its mutable fields, and checks the
// scoping of updates: another account's or mode's id is ErrNotFound.
func testPaymentRoundTrip(t *testing.T, s *store.Store) {
	ctx := context.Background()
	var p *store.Payment
	mustWrite(t, s, func(tx *store.Tx) error {
		p = capturedPayment("pay_rt", "acct_1", 5000, tx.Now())
		p.Status, p.AmountCaptured, p.AmountCapturable, p.CaptureMethod = "requires_capture", 0, 5000, "manual"
		p.ProviderRef, p.Description, p.Metadata = "sb_1", "a book", map[string]string{"order": "42"}
		p.CustomerName, p.CustomerEmail, p.CustomerID, p.AgentID = "Ann", "ann@example.com", "cus_1", "agent_1"
		p.PendingOp, p.PendingAmount, p.PendingKey, p.PendingSince = "capture", 5000, "key-1", tx.Now()
		return tx.InsertPayment(p)
	})
	got, err := s.GetPayment(ctx, "acct_1", false, "pay_rt")
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("GetPayment:\n got  %+v, %v\n want %+v", got, err, p)
	}
	mustWrite(t, s, func(tx *store.Tx) error {
		in, err := tx.GetPayment("acct_1", false, "pay_rt")
		if err != nil || !reflect.DeepEqual(in, p) {
			return fmt.Errorf("Tx.GetPayment = %+v, %v; want %+v", in, err, p)
		}
		p.Status, p.AmountCapturable, p.AmountCaptured, p.Updated = "succeeded", 0, 5000, tx.Now()
		p.PendingOp, p.PendingAmount, p.PendingKey, p.PendingSince = "", 0, "", time.Time{}
		return tx.UpdatePayment(p)
	})
	if got, err := s.GetPayment(ctx, "acct_1", false, "pay_rt"); err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("GetPayment after UpdatePayment:\n got  %+v, %v\n want %+v", got, err, p)
	}
	for _, other := range []struct {
		account string
		live    bool
	}{{"acct_2", false}, {"acct_1", true}} {
		q := *p
		q.AccountID, q.Livemode = other.account, other.live
		if err := s.Write(ctx, func(tx *store.Tx) error { return tx.UpdatePayment(&q) }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdatePayment of pay_rt as %s live=%v = %v; want ErrNotFound", other.account, other.live, err)
		}
		if _, err := s.GetPayment(ctx, other.account, other.live, "pay_rt"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetPayment of pay_rt as %s live=%v = %v; want ErrNotFound", other.account, other.live, err)
		}
	}
	if err := s.Write(ctx, func(tx *store.Tx) error { return tx.InsertPayment(p) }); err == nil {
		t.Errorf("inserting pay_rt twice succeeded; want an error")
	}
}
