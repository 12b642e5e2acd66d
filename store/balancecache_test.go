package store

import (
	"context"
	"errors"
	"sync"
	"testing"
)

func credit(accountID string, amount int64, source string) []LedgerEntry {
	return []LedgerEntry{
		{AccountID: accountID, Currency: "USD", Book: "provider:sandbox", Amount: -amount, SourceID: source},
		{AccountID: accountID, Currency: "USD", Book: BookAvailable, Amount: amount, SourceID: source},
	}
}

// TestBookBalanceFollowsTheTransaction checks the writer's balance cache
// against the ledger through releases, rolled-back changes, lazy loads
// after commits the cache did not see, and batches shared by many changes.
func TestBookBalanceFollowsTheTransaction(t *testing.T) {
	st := openTestStore(t)
	ctx := context.Background()
	balance := func(tx *Tx) int64 {
		t.Helper()
		v, err := tx.BookBalance("acct_a", false, "USD", BookAvailable)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ledger := func() int64 {
		t.Helper()
		var v int64
		if err := st.rdb.QueryRow(`SELECT COALESCE(SUM(amount),0) FROM ledger_entries WHERE account_id='acct_a' AND book='available'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	write := func(fn func(tx *Tx) error) error { return st.Write(ctx, fn) }

	// Committed before the cache ever looked: loaded from the ledger on first use.
	if err := write(func(tx *Tx) error { return tx.InsertLedgerEntries(credit("acct_a", 100, "p1")...) }); err != nil {
		t.Fatal(err)
	}
	var seen []int64
	if err := write(func(tx *Tx) error {
		seen = append(seen, balance(tx))
		if err := tx.InsertLedgerEntries(credit("acct_a", 10, "p2")...); err != nil {
			return err
		}
		seen = append(seen, balance(tx))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen[0] != 100 || seen[1] != 110 {
		t.Fatalf("balances inside the write: %v, want [100 110]", seen)
	}

	// A change that fails after writing entries leaves no trace in the cache.
	boom := errors.New("boom")
	if err := write(func(tx *Tx) error {
		if err := tx.InsertLedgerEntries(credit("acct_a", 50, "p3")...); err != nil {
			return err
		}
		if balance(tx) != 160 {
			t.Errorf("own entries not seen")
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	var after int64
	if err := write(func(tx *Tx) error { after = balance(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if after != 110 || ledger() != 110 {
		t.Fatalf("after a rolled-back change: cache %d, ledger %d, want 110", after, ledger())
	}

	// Many concurrent changes share batches; some fail. The cache ends equal to the ledger.
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = write(func(tx *Tx) error {
				if err := tx.InsertLedgerEntries(credit("acct_a", 1, "c")...); err != nil {
					return err
				}
				if i%3 == 0 {
					return boom
				}
				return nil
			})
		}()
	}
	wg.Wait()
	if err := write(func(tx *Tx) error { after = balance(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := ledger(); after != want || want != 110+133 {
		t.Fatalf("after concurrent changes: cache %d, ledger %d, want %d", after, want, 110+133)
	}
}
