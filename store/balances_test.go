package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// collectEntries writes one balanced movement: amount from provider:sandbox to available.
func collectEntries(tb testing.TB, s *Store, acct string, live bool, currency string, amount int64, src string) {
	tb.Helper()
	mustWrite(tb, s, func(tx *Tx) error {
		return tx.InsertLedgerEntries(
			LedgerEntry{AccountID: acct, Livemode: live, Currency: currency, Book: "provider:sandbox", Amount: -amount, SourceID: src},
			LedgerEntry{AccountID: acct, Livemode: live, Currency: currency, Book: BookAvailable, Amount: amount, SourceID: src},
		)
	})
}

func txBookBalance(tb testing.TB, s *Store, acct string, live bool, currency, book string) int64 {
	tb.Helper()
	var n int64
	mustWrite(tb, s, func(tx *Tx) error {
		var err error
		n, err = tx.BookBalance(acct, live, currency, book)
		return err
	})
	return n
}

func mustCheck(tb testing.TB, s *Store) *CheckReport {
	tb.Helper()
	r, err := Check(context.Background(), s.Path())
	if err != nil {
		tb.Fatalf("Check: %v", err)
	}
	return r
}

// TestBalancesAcrossCheckpoints checks that a balance is the same whether it
// is summed from every entry or from a checkpoint plus the entries after it,
// for the read path, the in-write path and `paymentd check`.
func TestBalancesAcrossCheckpoints(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	mustWrite(t, s, func(tx *Tx) error {
		return tx.InsertAccount(&Account{ID: "acct_a", Name: "a", Created: tx.Now()})
	})
	for i := range 25 {
		collectEntries(t, s, "acct_a", false, "USD", 100, fmt.Sprintf("pay_%d", i))
	}
	collectEntries(t, s, "acct_a", false, "BDT", 7, "pay_bdt")
	collectEntries(t, s, "acct_a", true, "USD", 1, "pay_live") // another mode: never mixed in

	want := []BookBalance{
		{"BDT", BookAvailable, 7}, {"BDT", "provider:sandbox", -7},
		{"USD", BookAvailable, 2500}, {"USD", "provider:sandbox", -2500},
	}
	balances := func() []BookBalance {
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
	var rows int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM ledger_checkpoints WHERE account_id='acct_a' AND livemode=0`).Scan(&rows); err != nil || rows != 4 {
		t.Fatalf("checkpoint rows = %d, %v; want 4 (two books in two currencies)", rows, err)
	}
	if got := balances(); !reflect.DeepEqual(got, want) {
		t.Errorf("Balances from the checkpoint = %v; want %v", got, want)
	}

	// Entries after the checkpoint are added to it.
	collectEntries(t, s, "acct_a", false, "USD", 40, "pay_late")
	mustWrite(t, s, func(tx *Tx) error {
		return tx.InsertLedgerEntries(
			LedgerEntry{AccountID: "acct_a", Currency: "USD", Book: BookAvailable, Amount: -1000, SourceID: "po_1"},
			LedgerEntry{AccountID: "acct_a", Currency: "USD", Book: BookReserved, Amount: 1000, SourceID: "po_1"},
		)
	})
	want = []BookBalance{
		{"BDT", BookAvailable, 7}, {"BDT", "provider:sandbox", -7},
		{"USD", BookAvailable, 1540}, {"USD", "provider:sandbox", -2540}, {"USD", BookReserved, 1000},
	}
	if got := balances(); !reflect.DeepEqual(got, want) {
		t.Errorf("Balances after more entries = %v; want %v", got, want)
	}
	if got := txBookBalance(t, s, "acct_a", false, "USD", BookAvailable); got != 1540 {
		t.Errorf("Tx.BookBalance(USD available) = %d; want 1540", got)
	}
	if got := txBookBalance(t, s, "acct_a", false, "USD", BookReserved); got != 1000 {
		t.Errorf("Tx.BookBalance(USD reserved) = %d; want 1000 (a book the checkpoint does not have)", got)
	}
	if got := txBookBalance(t, s, "acct_a", true, "USD", BookAvailable); got != 1 {
		t.Errorf("Tx.BookBalance(live USD available) = %d; want 1", got)
	}

	// A second checkpoint builds on the first.
	for i := range 10 {
		collectEntries(t, s, "acct_a", false, "USD", 1, fmt.Sprintf("pay_x%d", i))
	}
	if n, err := s.CheckpointLedger(ctx, 10); err != nil || n != 1 {
		t.Fatalf("second CheckpointLedger(10) = %d, %v; want 1", n, err)
	}
	want[2].Amount, want[3].Amount = 1550, -2550
	if got := balances(); !reflect.DeepEqual(got, want) {
		t.Errorf("Balances from the second checkpoint = %v; want %v", got, want)
	}

	r := mustCheck(t, s)
	var out bytes.Buffer
	r.WriteTo(&out)
	if !r.OK() {
		t.Fatalf("check failed on a consistent ledger:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "2 checkpoints") {
		t.Errorf("check report does not count the 2 checkpoints:\n%s", out.String())
	}

	// A checkpoint that disagrees with its entries, written behind the
	// store's back, is reported.
	db, err := sql.Open("sqlite", "file:"+s.Path()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE ledger_checkpoints SET balance = balance + 5 WHERE book = 'available' AND currency = 'BDT'`); err != nil {
		t.Fatal(err)
	}
	r = mustCheck(t, s)
	out.Reset()
	r.WriteTo(&out)
	if r.OK() || !strings.Contains(out.String(), "says BDT available is 12; its entries sum to 7") {
		t.Errorf("check after corrupting a checkpoint: want a FAIL naming the BDT available checkpoint:\n%s", out.String())
	}
}

// TestCheckFindsBrokenInvariants corrupts a ledger in each way check looks
// for and reads the report.
func TestCheckFindsBrokenInvariants(t *testing.T) {
	s := openTestStore(t)
	collectEntries(t, s, "acct_a", false, "USD", 500, "pay_1")
	if r := mustCheck(t, s); !r.OK() {
		var out bytes.Buffer
		r.WriteTo(&out)
		t.Fatalf("check failed on a consistent ledger:\n%s", out.String())
	}
	db, err := sql.Open("sqlite", "file:"+s.Path()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UnixMicro()
	for _, q := range []string{
		// An unbalanced entry.
		`INSERT INTO ledger_entries (account_id, livemode, currency, book, amount, source_id, created) VALUES ('acct_a', 0, 'USD', 'available', 300, 'forged', ` + fmt.Sprint(now) + `)`,
		// A balanced movement that overdraws available.
		`INSERT INTO ledger_entries (account_id, livemode, currency, book, amount, source_id, created) VALUES ('acct_a', 0, 'USD', 'available', -2000, 'po_x', ` + fmt.Sprint(now) + `)`,
		`INSERT INTO ledger_entries (account_id, livemode, currency, book, amount, source_id, created) VALUES ('acct_a', 0, 'USD', 'reserved', 2000, 'po_x', ` + fmt.Sprint(now) + `)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	r := mustCheck(t, s)
	var out bytes.Buffer
	r.WriteTo(&out)
	report := out.String()
	for _, want := range []string{
		`FAIL  ledger movements balance`,
		`the 1 USD entries of source "forged" sum to 300, not 0`,
		`FAIL  books never negative`,
		`USD available goes negative (-1200) at entry`,
		`checks FAILED`,
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if r.OK() || r.Failed() != 2 {
		t.Errorf("Failed() = %d; want 2 failed checks", r.Failed())
	}
}
