package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

// Benchmarks of the store's write and read paths, for benchstat:
//
//	go test -run '^$' -bench . -count 6 ./store/ | tee new.txt && benchstat old.txt new.txt

func openBench(b *testing.B) *store.Store {
	b.Helper()
	st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

var benchSeq atomic.Int64

// benchID makes ids that sort by creation like the service's, without importing it.
func benchID(prefix string) string {
	return fmt.Sprintf("%s%013d%013d", prefix, time.Now().UnixMilli(), benchSeq.Add(1))
}

// writePayment writes what CreatePayment writes: the payment, two ledger
// entries, an event and an idempotency record.
func writePayment(tx *store.Tx, id string) error {
	now := tx.Now()
	p := &store.Payment{ID: id, AccountID: "acct_bench", Status: "succeeded", Amount: 2000, Currency: "USD",
		AmountCaptured: 2000, CaptureMethod: "automatic", PaymentMethod: "pm_card_visa", Provider: "sandbox",
		ProviderRef: "sb_" + id, Description: "bench", Created: now, Updated: now}
	if err := tx.InsertPayment(p); err != nil {
		return err
	}
	if err := tx.InsertLedgerEntries(
		store.LedgerEntry{AccountID: p.AccountID, Currency: "USD", Book: "provider:sandbox", Amount: -2000, SourceID: id},
		store.LedgerEntry{AccountID: p.AccountID, Currency: "USD", Book: "available", Amount: 2000, SourceID: id},
	); err != nil {
		return err
	}
	if err := tx.InsertEvent(&store.Event{ID: benchID("evt_"), AccountID: p.AccountID, Type: "payment.succeeded",
		ObjectID: id, Data: make([]byte, 120), Created: now}); err != nil {
		return err
	}
	return tx.PutIdempotency(&store.IdempotencyRecord{AccountID: p.AccountID, Method: "CreatePayment", Key: "k-" + id,
		RequestHash: make([]byte, 32), Response: make([]byte, 150), Created: now})
}

// cpuTime is the process's CPU time so far (user and system), which on a
// machine shared with other work tells a change's cost better than the
// wall-clock ns/op does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU µs per op since since (cpuTime).
func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// BenchmarkWritePaymentSerial is one payment per commit, one caller at a
// time: the fsync-bound floor that group commit improves on.
func BenchmarkWritePaymentSerial(b *testing.B) {
	st := openBench(b)
	ctx := context.Background()
	for b.Loop() {
		id := benchID("pay_")
		if err := st.Write(ctx, func(tx *store.Tx) error { return writePayment(tx, id) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWritePaymentParallel has many concurrent callers, so their
// changes share commits (group commit).
func BenchmarkWritePaymentParallel(b *testing.B) {
	writePaymentsParallel(b, openBench(b))
}

// writePaymentsParallel writes payments from 25×GOMAXPROCS concurrent
// callers and reports the mean group-commit size.
func writePaymentsParallel(b *testing.B, st *store.Store) {
	ctx := context.Background()
	b.SetParallelism(25) // × GOMAXPROCS callers
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := benchID("pay_")
			if err := st.Write(ctx, func(tx *store.Tx) error { return writePayment(tx, id) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportCPU(b, cpu0)
	batches, ops := st.WriterStats()
	if batches > 0 {
		b.ReportMetric(float64(ops)/float64(batches), "changes/commit")
	}
}

func seed(b *testing.B, st *store.Store, n int) []string {
	b.Helper()
	ids := make([]string, 0, n)
	for len(ids) < n {
		err := st.Write(context.Background(), func(tx *store.Tx) error {
			for range min(1000, n-len(ids)) {
				id := benchID("pay_")
				if err := writePayment(tx, id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// BenchmarkGetPayment reads random payments from a table of 10 000.
func BenchmarkGetPayment(b *testing.B) {
	st := openBench(b)
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

// BenchmarkListPaymentsFirstPage reads the newest 20 of 10 000 payments.
func BenchmarkListPaymentsFirstPage(b *testing.B) {
	st := openBench(b)
	seed(b, st, 10_000)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ps, err := st.ListPayments(ctx, store.PageFilter{AccountID: "acct_bench", Limit: 21})
			if err != nil || len(ps) != 21 {
				b.Errorf("list: %d payments, %v", len(ps), err)
				return
			}
		}
	})
}

// BenchmarkGetPaymentReopened reads payments that were written before the
// store was opened, so none of them is among the recently written ones:
// with the cache off every read is a SQLite point read; with it on, the
// first read of each keeps it in memory.
func BenchmarkGetPaymentReopened(b *testing.B) {
	for _, c := range []struct {
		name  string
		cache int
	}{{"cache=off", -1}, {"cache=on", 0}} {
		b.Run(c.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench.db")
			st, err := store.Open(context.Background(), path, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			ids := seed(b, st, 5_000)
			st.Close()
			if st, err = store.Open(context.Background(), path, store.Options{PaymentCache: c.cache}); err != nil {
				b.Fatal(err)
			}
			defer st.Close()
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
		})
	}
}
