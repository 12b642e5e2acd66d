package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/paymentd/paymentd/store"
)

// test is one behaviour every backend must show. It gets a store on a fresh
// database of its own.
type test struct {
	name string
	run  func(t *testing.T, s *store.Store)
}

// tests lists the suite; each file of the package adds the tests of one part
// of the store.
var tests = []test{
	{"PaymentRoundTrip", testPaymentRoundTrip},
	{"PaymentsKeysetPagesNewestFirst", testPaymentsKeysetPages},
	{"RefundsNeverExceedCaptured", testRefundsNeverExceedCaptured},
	{"RefundReadsAndStatus", testRefundReadsAndStatus},
	{"Invoices", testInvoices},
	{"PayoutsNeverOverdraw", testPayoutsNeverOverdraw},
	{"PayoutReads", testPayoutReads},
	{"LedgerEntriesMustBalance", testLedgerEntriesMustBalance},
	{"BalancesAcrossCheckpoints", testBalancesAcrossCheckpoints},
	{"Events", testEvents},
	{"Deliveries", testDeliveries},
	{"IdempotencyTwiceConflicts", testIdempotencyTwiceConflicts},
	{"IdempotencyReplaceAndExpire", testIdempotencyReplaceAndExpire},
	{"WebhookEndpoints", testWebhookEndpoints},
	{"WebhookSecrets", testWebhookSecrets},
	{"AccountsAndKeys", testAccountsAndKeys},
	{"OperatorItems", testOperatorItems},
	{"StatusSets", testStatusSets},
	{"ReconcileSchedule", testReconcileSchedule},
	{"ProviderRecords", testProviderRecords},
}

// Run runs every test of the suite as a parallel subtest, each on the store
// that open returns for it. open must give each call a fresh, empty, migrated
// database and close the store at t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) *store.Store) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

func mustWrite(tb testing.TB, s *store.Store, fn func(*store.Tx) error) {
	tb.Helper()
	if err := s.Write(context.Background(), fn); err != nil {
		tb.Fatalf("Write: %v", err)
	}
}

// ParallelWrites runs n writes at once, write(tx, i) in the i-th, as n
// callers spread over stores would (the i-th on stores[i%len(stores)]: two
// stores on one database are two replicas), and returns how many
// succeeded. A write may fail only with refusal, the guard's own error; any
// other error fails the test.
func ParallelWrites(t *testing.T, stores []*store.Store, n int, refusal error, write func(tx *store.Tx, i int) error) int {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Half of them the way the service sends guarded debits
			// (WriteDebit: on PostgreSQL, one loop's shared transactions),
			// half through any loop, which must hold the guard as well.
			s, fn := stores[i%len(stores)], func(tx *store.Tx) error { return write(tx, i) }
			if i%2 == 0 {
				errs[i] = s.WriteDebit(context.Background(), fn)
			} else {
				errs[i] = s.Write(context.Background(), fn)
			}
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, refusal):
			t.Errorf("write %d of %d: %v; want success or %v", i, n, err, refusal)
		}
	}
	return ok
}
