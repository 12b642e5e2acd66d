package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
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

func mustCheck(tb testing.TB, s *Store) *CheckReport {
	tb.Helper()
	r, err := Check(context.Background(), s.Path())
	if err != nil {
		tb.Fatalf("Check: %v", err)
	}
	return r
}

// TestCheckFindsCorruptCheckpoint writes a checkpoint that disagrees with
// its entries behind the store's back (raw SQLite) and reads the report;
// that check passes on a consistent ledger is storetest's
// BalancesAcrossCheckpoints, on both backends.
func TestCheckFindsCorruptCheckpoint(t *testing.T) {
	s := openTestStore(t)
	mustWrite(t, s, func(tx *Tx) error { return tx.InsertAccount(&Account{ID: "acct_a", Created: tx.Now()}) })
	for i := range 12 {
		collectEntries(t, s, "acct_a", false, "BDT", 1, fmt.Sprintf("pay_%d", i))
	}
	if n, err := s.CheckpointLedger(context.Background(), 10); err != nil || n != 1 {
		t.Fatalf("CheckpointLedger(10) = %d, %v; want 1", n, err)
	}
	var rows int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM ledger_checkpoints WHERE account_id='acct_a' AND livemode=0`).Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("checkpoint rows = %d, %v; want 2 (two books)", rows, err)
	}
	db, err := sql.Open("sqlite", "file:"+s.Path()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE ledger_checkpoints SET balance = balance + 5 WHERE book = 'available' AND currency = 'BDT'`); err != nil {
		t.Fatal(err)
	}
	r := mustCheck(t, s)
	var out bytes.Buffer
	r.WriteTo(&out)
	if r.OK() || !strings.Contains(out.String(), "says BDT available is 17; its entries sum to 12") {
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
