package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/paymentd/paymentd/store"
	"github.com/paymentd/paymentd/store/storetest"
)

// Benchmarks of the PostgreSQL write and read paths (they skip without
// PAYMENTD_TEST_POSTGRES):
//
//	PAYMENTD_TEST_POSTGRES=postgres://… go test -run '^$' -bench Postgres ./store/

func openPostgresBench(b *testing.B, writers int) *store.Store {
	b.Helper()
	st, err := store.Open(context.Background(), storetest.PostgresDSN(b), store.Options{Writers: writers})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkPostgresWritePaymentParallel writes what CreatePayment writes
// from many concurrent callers, with 1 to 8 group-commit loops: each loop's
// commit waits for the server's WAL flush, and more loops overlap them.
func BenchmarkPostgresWritePaymentParallel(b *testing.B) {
	for _, writers := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			writePaymentsParallel(b, openPostgresBench(b, writers))
		})
	}
}

// BenchmarkPostgresGetPayment reads random payments from a table of 10 000
// (no payment cache on PostgreSQL: every read is a query).
func BenchmarkPostgresGetPayment(b *testing.B) {
	st := openPostgresBench(b, 0)
	ids := seed(b, st, 10_000)
	ctx := context.Background()
	var i atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[int(i.Add(7919))%len(ids)]
			if _, err := st.GetPayment(ctx, "acct_bench", false, id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
