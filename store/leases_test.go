package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
	"github.com/paymentd/paymentd/store/storetest"
)

// onBothBackends runs test on a fresh SQLite file and, when a PostgreSQL
// server is configured, on a fresh PostgreSQL database; test gets the DSN so
// that it can open a second store on the same database (a second replica).
func onBothBackends(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, storetest.SQLitePath(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, storetest.PostgresDSN(t)) })
}

func claim(t *testing.T, s *store.Store, l store.Lease, owner string, until time.Time) bool {
	t.Helper()
	held, err := s.ClaimLease(context.Background(), l, owner, until)
	if err != nil {
		t.Fatalf("ClaimLease(%s, %s): %v", l.Name, owner, err)
	}
	return held
}

// TestLeaseOneHolderAtATime: a lease is held by one owner until it expires
// or is released; its owner may extend it; an expired one is taken over,
// and the former owner's release then reports that it had lost it.
func TestLeaseOneHolderAtATime(t *testing.T) {
	onBothBackends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		l := store.Lease{AccountID: "acct_1", Name: "idempotency/CreatePayment/k1"}
		soon := time.Now().Add(time.Minute)
		if !claim(t, s, l, "a", soon) {
			t.Fatal("a could not claim a free lease")
		}
		if claim(t, s, l, "b", soon) {
			t.Fatal("b claimed a lease a holds")
		}
		if !claim(t, s, l, "a", soon.Add(time.Minute)) {
			t.Fatal("a could not extend its own lease")
		}
		// The same name in another mode or account is another lease.
		if !claim(t, s, store.Lease{AccountID: "acct_1", Livemode: true, Name: l.Name}, "b", soon) {
			t.Fatal("b could not claim the live-mode lease of the same name")
		}
		// a's lease expires: b takes it over; a finds it lost.
		if !claim(t, s, l, "a", time.Now().Add(-time.Second)) {
			t.Fatal("a could not shorten its own lease")
		}
		if !claim(t, s, l, "b", soon) {
			t.Fatal("b could not take over an expired lease")
		}
		var aHeld, bHeld bool
		err := s.Write(context.Background(), func(tx *store.Tx) (err error) {
			if aHeld, err = tx.ReleaseLease(l, "a"); err != nil {
				return err
			}
			bHeld, err = tx.ReleaseLease(l, "b")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if aHeld || !bHeld {
			t.Fatalf("release: a held %v, b held %v; want false, true", aHeld, bHeld)
		}
		if !claim(t, s, l, "c", soon) {
			t.Fatal("c could not claim a released lease")
		}
	})
}

// TestLeaseRaceHasOneWinner: two stores on one database (two replicas)
// claim the same leases at the same moment; each lease goes to exactly one.
func TestLeaseRaceHasOneWinner(t *testing.T) {
	onBothBackends(t, func(t *testing.T, dsn string) {
		replicas := []*store.Store{open(t, dsn)}
		if replicas[0].Shared() {
			replicas = append(replicas, open(t, dsn)) // SQLite has one writer process
		}
		const leases, claimers = 20, 6
		wins := make([]int, leases)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for c := range claimers {
			s := replicas[c%len(replicas)]
			wg.Go(func() {
				for i := range leases {
					l := store.Lease{AccountID: "acct_1", Name: fmt.Sprintf("reconcile/pay_%d", i)}
					if claim(t, s, l, fmt.Sprintf("owner%d", c), time.Now().Add(time.Minute)) {
						mu.Lock()
						wins[i]++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		for i, n := range wins {
			if n != 1 {
				t.Errorf("lease %d was won %d times; want exactly once", i, n)
			}
		}
	})
}

func insertDueDeliveries(t *testing.T, s *store.Store, n int) {
	t.Helper()
	err := s.Write(context.Background(), func(tx *store.Tx) error {
		for i := range n {
			now := tx.Now().Add(-time.Duration(n-i) * time.Millisecond)
			if err := tx.InsertDelivery(&store.Delivery{ID: fmt.Sprintf("whd_%03d", i), AccountID: "acct_1",
				EventID: fmt.Sprintf("evt_%03d", i), URL: "https://example.com/hook", Status: store.DeliveryPending,
				NextAttempt: now, RetryFrom: now, Created: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func claimDue(t *testing.T, s *store.Store, owner string, until time.Time, limit int) []string {
	t.Helper()
	ds, err := s.ClaimDueDeliveries(context.Background(), owner, until, limit)
	if err != nil {
		t.Fatalf("ClaimDueDeliveries(%s): %v", owner, err)
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

// TestClaimDueDeliveries: claims take due deliveries that nobody holds,
// the longest overdue first; an expired claim (its replica crashed) or a
// released one makes the delivery claimable again, and a delivery no longer
// pending is never claimed.
func TestClaimDueDeliveries(t *testing.T) {
	onBothBackends(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		insertDueDeliveries(t, s, 10)
		soon, past := time.Now().Add(time.Minute), time.Now().Add(-time.Second)
		a := claimDue(t, s, "a", soon, 4)
		if len(a) != 4 {
			t.Fatalf("a claimed %v; want 4 deliveries", a)
		}
		for _, id := range a {
			if id > "whd_003" {
				t.Errorf("a claimed %s among the 4 longest overdue (whd_000…whd_003)", id)
			}
		}
		if b := claimDue(t, s, "b", past, 10); len(b) != 6 {
			t.Fatalf("b claimed %v; want the other 6", b)
		}
		// b's leases have expired: c takes b's 6 over, never a's.
		if c := claimDue(t, s, "c", soon, 10); len(c) != 6 {
			t.Fatalf("c claimed %v; want b's 6, whose leases expired", c)
		}
		if d := claimDue(t, s, "d", soon, 10); len(d) != 0 {
			t.Fatalf("d claimed %v while every delivery is held; want none", d)
		}
		// a releases one (not recorded) and records another as delivered.
		err := s.Write(context.Background(), func(tx *store.Tx) error {
			d0, err := tx.GetDelivery("acct_1", false, a[0])
			if err != nil {
				return err
			}
			if err := tx.ReleaseDelivery(d0, "b"); err != nil { // not b's: no effect
				return err
			}
			if err := tx.ReleaseDelivery(d0, "a"); err != nil {
				return err
			}
			d1, err := tx.GetDelivery("acct_1", false, a[1])
			if err != nil {
				return err
			}
			d1.Status, d1.Attempts = store.DeliveryDelivered, 1
			if err := tx.UpdateDelivery(d1, 0); err != nil {
				return err
			}
			return tx.ReleaseDelivery(d1, "a")
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := claimDue(t, s, "d", soon, 10); len(d) != 1 || d[0] != a[0] {
			t.Fatalf("d claimed %v after a released %s; want just that one", d, a[0])
		}
	})
}

// TestClaimDueDeliveriesRace: replicas claiming due deliveries at the same
// moment never get the same one, and together they get all of them.
func TestClaimDueDeliveriesRace(t *testing.T) {
	onBothBackends(t, func(t *testing.T, dsn string) {
		replicas := []*store.Store{open(t, dsn)}
		if replicas[0].Shared() {
			replicas = append(replicas, open(t, dsn), open(t, dsn))
		}
		const n = 60
		insertDueDeliveries(t, replicas[0], n)
		seen := map[string]string{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for c := range 6 {
			s := replicas[c%len(replicas)]
			owner := fmt.Sprintf("owner%d", c)
			wg.Go(func() {
				for range 5 {
					for _, id := range claimDue(t, s, owner, time.Now().Add(time.Minute), 3) {
						mu.Lock()
						if prev, dup := seen[id]; dup {
							t.Errorf("%s claimed by %s and %s", id, prev, owner)
						}
						seen[id] = owner
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("%d of %d deliveries claimed; want all (6 claimers × 5 claims × 3)", len(seen), n)
		}
	})
}
