package storetest

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/paymentd/paymentd/store"
)

// move writes one balanced movement of amount from book "from" to book "to".
func move(tb testing.TB, s *store.Store, account string, live bool, currency, from, to string, amount int64, src string) {
	tb.Helper()
	mustWrite(tb, s, func(tx *store.Tx) error {
		return tx.InsertLedgerEntries(
			store.LedgerEntry{AccountID: account, Livemode: live, Currency: currency, Book: from, Amount: -amount, SourceID: src},
			store.LedgerEntry{AccountID: account, Livemode: live, Currency: currency, Book: to, Amount: amount, SourceID: src},
		)
	})
}

func txBookBalance(tb testing.TB, s *store.Store, account string, live bool, currency, book string) int64 {
	tb.Helper()
	var n int64
	mustWrite(tb, s, func(tx *store.Tx) error {
		var err error
		n, err = tx.BookBalance(account, live, currency, book)
		return err
	})
	return n
}

// checkReport runs paymentd check on the store's database.
func checkReport(tb testing.TB, s *store.Store) (*store.CheckReport, string) {
	tb.Helper()
	r, err := store.Check(context.Background(), s.Path())
	if err != nil {
		tb.Fatalf("Check: %v", err)
	}
	var out bytes.Buffer
	r.WriteTo(&out)
	return r, out.String()
}

// mustCheckClean fails the test unless paymentd check passes.
func mustCheckClean(tb testing.TB, s *store.Store) {
	tb.Helper()
	if r, out := checkReport(tb, s); !r.OK() {
		tb.Errorf("paymentd check failed after the flow:\n%s", out)
	}
}

// testBalancesAcrossCheckpoints checks that a balance is the same whether it
// is summed from every entry or from a checkpoint plus the entries after it,
// for the read path, the in-write path and paymentd check.
func testBalancesAcrossCheckpoints(t *testing.T, s *store.Store) {
	ctx := context.Background()
	mustWrite(t, s, func(tx *store.Tx) error {
		return tx.InsertAccount(&store.Account{ID: "acct_a", Name: "a", Created: tx.Now()})
	})
	const provider = "provider:sandbox"
	for i := range 25 {
		move(t, s, "acct_a", false, "USD", provider, store.BookAvailable, 100, fmt.Sprintf("pay_%d", i))
	}
	move(t, s, "acct_a", false, "BDT", provider, store.BookAvailable, 7, "pay_bdt")
	move(t, s, "acct_a", true, "USD", provider, store.BookAvailable, 1, "pay_live") // another mode: never mixed in

	want := []store.BookBalance{
		{Currency: "BDT", Book: store.BookAvailable, Amount: 7}, {Currency: "BDT", Book: provider, Amount: -7},
		{Currency: "USD", Book: store.BookAvailable, Amount: 2500}, {Currency: "USD", Book: provider, Amount: -2500},
	}
	balances := func() []store.BookBalance {
		t.Helper()
		got, err := s.Balances(ctx, "acct_a", false)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := balances(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Balances before any checkpoint = %v; want %v", got, want)
	}
	if n, err := s.CheckpointLedger(ctx, 100); err != nil || n != 0 {
		t.Fatalf("CheckpointLedger(100) = %d, %v; want 0 checkpoints (only 52 entries)", n, err)
	}
	if n, err := s.CheckpointLedger(ctx, 10); err != nil || n != 1 {
		t.Fatalf("CheckpointLedger(10) = %d, %v; want 1 (test mode only: live has 2 entries)", n, err)
	}
	if got := balances(); !reflect.DeepEqual(got, want) {
		t.Errorf("Balances from the checkpoint = %v; want %v", got, want)
	}

	// Entries after the checkpoint are added to it.
	move(t, s, "acct_a", false, "USD", provider, store.BookAvailable, 40, "pay_late")
	move(t, s, "acct_a", false, "USD", store.BookAvailable, store.BookReserved, 1000, "po_1")
	want = []store.BookBalance{
		{Currency: "BDT", Book: store.BookAvailable, Amount: 7}, {Currency: "BDT", Book: provider, Amount: -7},
		{Currency: "USD", Book: store.BookAvailable, Amount: 1540}, {Currency: "USD", Book: provider, Amount: -2540},
		{Currency: "USD", Book: store.BookReserved, Amount: 1000},
	}
	if got := balances(); !reflect.DeepEqual(got, want) {
		t.Errorf("Balances after more entries = %v; want %v", got, want)
	}
	if got := txBookBalance(t, s, "acct_a", false, "USD", store.BookAvailable); got != 1540 {
		t.Errorf("Tx.BookBalance(USD available) = %d; want 1540", got)
	}
	if got := txBookBalance(t, s, "acct_a", false, "USD", store.BookReserved); got != 1000 {
		t.Errorf("Tx.BookBalance(USD reserved) = %d; want 1000 (a book the checkpoint does not have)", got)
	}
	if got := txBookBalance(t, s, "acct_a", true, "USD", store.BookAvailable); got != 1 {
		t.Errorf("Tx.BookBalance(live USD available) = %d; want 1", got)
	}

	// A second checkpoint builds on the first.
	for i := range 10 {
		move(t, s, "acct_a", false, "USD", provider, store.BookAvailable, 1, fmt.Sprintf("pay_x%d", i))
	}
	if n, err := s.CheckpointLedger(ctx, 10); err != nil || n != 1 {
		t.Fatalf("second CheckpointLedger(10) = %d, %v; want 1", n, err)
	}
	want[2].Amount, want[3].Amount = 1550, -2550
	if got := balances(); !reflect.DeepEqual(got, want) {
		t.Errorf("Balances from the second checkpoint = %v; want %v", got, want)
	}
	r, out := checkReport(t, s)
	if !r.OK() {
		t.Fatalf("check failed on a consistent ledger:\n%s", out)
	}
	if !strings.Contains(out, "2 checkpoints") {
		t.Errorf("check report does not count the 2 checkpoints:\n%s", out)
	}
}
