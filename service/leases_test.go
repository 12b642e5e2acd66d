package service

import (
	"context"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

// TestMemoryLeases: the single writer's leases hold one holder at a time,
// let the holder extend its lease, pass an expired one to the next holder,
// and ignore a release by a holder that no longer has it.
func TestMemoryLeases(t *testing.T) {
	ctx := context.Background()
	l := newLeases(nil, false)
	item := store.Lease{AccountID: "acct_1", Name: "idempotency/CreatePayment/k"}
	acquire := func(holder string, until time.Time) bool {
		t.Helper()
		held, err := l.acquire(ctx, item, holder, until)
		if err != nil {
			t.Fatal(err)
		}
		return held
	}
	soon := time.Now().Add(time.Minute)
	if !acquire("a", soon) || acquire("b", soon) || !acquire("a", soon) {
		t.Fatal("want a to hold the lease alone, and to extend it")
	}
	if !acquire("a", time.Now().Add(-time.Second)) || !acquire("b", soon) {
		t.Fatal("want b to take over a's expired lease")
	}
	l.release(ctx, item, "a") // a lost it: no effect
	if acquire("c", soon) {
		t.Fatal("a's late release freed b's lease")
	}
	l.release(ctx, item, "b")
	if !acquire("c", soon) {
		t.Fatal("c could not take a released lease")
	}
	if released, err := l.releaseIn(nil, item, "c"); released || err != nil {
		t.Fatalf("memory releaseIn = %v, %v; want false, nil (released after the write)", released, err)
	}
}
