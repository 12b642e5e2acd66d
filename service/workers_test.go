package service

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

// twoReplicas returns two services sharing one store through its leases
// table, as two replicas of a fleet share a database.
func twoReplicas(t *testing.T) (a, b *Service) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "paymentd.db"), store.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	replica := func() *Service {
		s := New(Config{Store: st, ProviderTimeout: time.Second})
		s.leases = newLeases(st, true)
		return s
	}
	return replica(), replica()
}

// TestSweepRunsOnOneReplica: of two replicas, the one that takes a sweep's
// lease keeps it while it renews it; the other takes over once the lease
// has expired (the holder stopped: crashed).
func TestSweepRunsOnOneReplica(t *testing.T) {
	a, b := twoReplicas(t)
	ctx := context.Background()
	ta := sweepTurn{lease: store.Lease{Name: "sweep/test"}, ttl: 400 * time.Millisecond}
	tb := ta
	if !a.haveTurn(ctx, &ta) {
		t.Fatal("a did not get the free sweep lease")
	}
	for range 3 { // a renews at half-life; b is refused meanwhile
		if b.haveTurn(ctx, &tb) {
			t.Fatal("b got the sweep while a holds its lease")
		}
		tb.retry = time.Time{} // ask again at once
		time.Sleep(150 * time.Millisecond)
		if !a.haveTurn(ctx, &ta) {
			t.Fatal("a lost the sweep it keeps renewing")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !b.haveTurn(ctx, &tb) { // a stops renewing
		if time.Now().After(deadline) {
			t.Fatal("b did not take over the sweep after a's lease expired")
		}
		tb.retry = time.Time{}
		time.Sleep(50 * time.Millisecond)
	}
	ta.until = time.Time{} // a comes back and asks
	if a.haveTurn(ctx, &ta) {
		t.Fatal("a took the sweep back while b holds it")
	}
}

// TestReconcilerItemClaimedByOneReplica: an object claimed by one
// replica's reconciler is not asked about by the other's until the claim
// has expired; the holder may claim it again (its next pass).
func TestReconcilerItemClaimedByOneReplica(t *testing.T) {
	a, b := twoReplicas(t)
	ctx := context.Background()
	if !a.claimItem(ctx, "acct_1", true, "pay_1") || !a.claimItem(ctx, "acct_1", true, "pay_1") {
		t.Fatal("a could not claim, and claim again, a free object")
	}
	if b.claimItem(ctx, "acct_1", true, "pay_1") {
		t.Fatal("b claimed an object a is asking about")
	}
	if !b.claimItem(ctx, "acct_1", true, "pay_2") {
		t.Fatal("b could not claim another object")
	}
}

// TestInvoicePageOneAttemptAcrossReplicas: a payment attempt on an invoice
// page holds the invoice's turn; an attempt on the other replica waits for
// it to finish, and gives up when its caller does.
func TestInvoicePageOneAttemptAcrossReplicas(t *testing.T) {
	a, b := twoReplicas(t)
	a.fleet, b.fleet = true, true
	inv := &store.Invoice{ID: "inv_1", AccountID: "acct_1"}
	release, err := a.lockInvoicePage(context.Background(), inv)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 3*pageLockPoll)
	defer cancel()
	if _, err := b.lockInvoicePage(short, inv); err == nil {
		t.Fatal("b took the invoice's turn while a's attempt holds it")
	}
	got := make(chan error, 1)
	go func() {
		rb, err := b.lockInvoicePage(context.Background(), inv)
		if err == nil {
			rb()
		}
		got <- err
	}()
	time.Sleep(2 * pageLockPoll)
	release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b did not get the invoice's turn after a released it")
	}
}
