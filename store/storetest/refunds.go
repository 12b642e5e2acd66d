package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/paymentd/paymentd/store"
)

// testRefundsNeverExceedCaptured runs 20 parallel refunds of 100 against a
// payment of which 1000 is captured, each the way the service makes one:
// read the payment in the write, refuse if the rest is too small, else
// insert the (pending) refund and raise amount_refunded. Exactly 10 must
// succeed, and the refunds, the payment and paymentd check must agree.
func testRefundsNeverExceedCaptured(t *testing.T, s *store.Store) {
	ctx := context.Background()
	collect(t, s, "acct_1", "pay_r", 1000)
	errTooMuch := errors.New("refund exceeds the captured amount left")
	const n = 20
	ok := ParallelWrites(t, []*store.Store{s}, n, errTooMuch, RefundWrite("acct_1", "pay_r", errTooMuch))
	if ok != 10 {
		t.Errorf("%d of %d refunds of 100 on a captured 1000 succeeded; want exactly 10", ok, n)
	}
	p, err := s.GetPayment(ctx, "acct_1", false, "pay_r")
	if err != nil || p.AmountRefunded != int64(ok)*100 {
		t.Errorf("payment after the refunds: %+v, %v; want amount_refunded %d", p, err, ok*100)
	}
	refunds, err := s.ListRefunds(ctx, store.PageFilter{AccountID: "acct_1", Limit: 100}, "pay_r")
	if err != nil || len(refunds) != ok {
		t.Errorf("ListRefunds = %d refunds, %v; want %d", len(refunds), err, ok)
	}
	mustCheckClean(t, s)
}

// RefundWrite returns the i-th of parallel refunds of 100 on paymentID, made
// the way the service makes one: read the payment in the write, refuse with
// refusal if the captured rest is too small, else insert the (pending)
// refund and raise amount_refunded.
func RefundWrite(accountID, paymentID string, refusal error) func(tx *store.Tx, i int) error {
	return func(tx *store.Tx, i int) error {
		p, err := tx.GetPayment(accountID, false, paymentID)
		if err != nil {
			return err
		}
		if p.AmountCaptured-p.AmountRefunded < 100 {
			return refusal
		}
		if err := tx.InsertRefund(&store.Refund{ID: fmt.Sprintf("re_%02d", i), AccountID: accountID, PaymentID: paymentID,
			Amount: 100, Currency: "USD", Status: "pending", Created: tx.Now()}); err != nil {
			return err
		}
		p.AmountRefunded += 100
		p.Updated = tx.Now()
		return tx.UpdatePayment(p)
	}
}

// testRefundReadsAndStatus reads refunds by id and by payment, scoped by
// account and mode, and updates a refund's status.
func testRefundReadsAndStatus(t *testing.T, s *store.Store) {
	ctx := context.Background()
	var want []*store.Refund
	mustWrite(t, s, func(tx *store.Tx) error {
		for _, pid := range []string{"pay_a", "pay_b"} {
			if err := tx.InsertPayment(capturedPayment(pid, "acct_1", 1000, tx.Now())); err != nil {
				return err
			}
		}
		for i, pid := range []string{"pay_a", "pay_b", "pay_a"} {
			r := &store.Refund{ID: fmt.Sprintf("re_%d", i), AccountID: "acct_1", PaymentID: pid, Amount: 10, Currency: "USD",
				Status: "pending", Reason: "requested_by_customer", Metadata: map[string]string{"n": fmt.Sprint(i)}, Created: tx.Now()}
			if err := tx.InsertRefund(r); err != nil {
				return err
			}
			want = append(want, r)
		}
		return nil
	})
	if got, err := s.GetRefund(ctx, "acct_1", false, "re_1"); err != nil || !reflect.DeepEqual(got, want[1]) {
		t.Errorf("GetRefund(re_1) = %+v, %v; want %+v", got, err, want[1])
	}
	if _, err := s.GetRefund(ctx, "acct_2", false, "re_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRefund of another account's refund = %v; want ErrNotFound", err)
	}
	got, err := s.ListRefunds(ctx, store.PageFilter{AccountID: "acct_1", Limit: 10}, "pay_a")
	if err != nil || len(got) != 2 || got[0].ID != "re_2" || got[1].ID != "re_0" {
		t.Errorf("ListRefunds(pay_a) = %v, %v; want re_2, re_0", got, err)
	}
	want[0].Status = "succeeded"
	mustWrite(t, s, func(tx *store.Tx) error { return tx.UpdateRefundStatus(want[0]) })
	if got, err := s.GetRefund(ctx, "acct_1", false, "re_0"); err != nil || got.Status != "succeeded" {
		t.Errorf("GetRefund after UpdateRefundStatus = %+v, %v; want succeeded", got, err)
	}
	live := *want[0]
	live.Livemode = true
	if err := s.Write(ctx, func(tx *store.Tx) error { return tx.UpdateRefundStatus(&live) }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateRefundStatus in the other mode = %v; want ErrNotFound", err)
	}
}
