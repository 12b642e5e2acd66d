package storetest

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/paymentd/paymentd/store"
)

// testLedgerEntriesMustBalance offers unbalanced sets of entries (not zero,
// zero only across currencies, overflowing, alone): each is refused with
// ErrUnbalanced and leaves nothing; a balanced set is stored as given.
func testLedgerEntriesMustBalance(t *testing.T, s *store.Store) {
	ctx := context.Background()
	entry := func(currency, book string, amount int64, source string) store.LedgerEntry {
		return store.LedgerEntry{AccountID: "acct_1", Currency: currency, Book: book, Amount: amount, SourceID: source}
	}
	for _, tc := range []struct {
		name    string
		entries []store.LedgerEntry
	}{
		{"does not sum to zero", []store.LedgerEntry{entry("USD", "provider:sandbox", -100, "pay_1"), entry("USD", "available", 99, "pay_1")}},
		{"sums to zero only across currencies", []store.LedgerEntry{entry("USD", "provider:sandbox", -100, "pay_1"), entry("EUR", "available", 100, "pay_1")}},
		{"overflows", []store.LedgerEntry{entry("USD", "available", math.MaxInt64, "pay_1"), entry("USD", "available", 1, "pay_1"),
			entry("USD", "provider:sandbox", math.MinInt64, "pay_1")}},
		{"one entry", []store.LedgerEntry{entry("USD", "available", 100, "pay_1")}},
	} {
		err := s.Write(ctx, func(tx *store.Tx) error { return tx.InsertLedgerEntries(tc.entries...) })
		if !errors.Is(err, store.ErrUnbalanced) {
			t.Errorf("%s: InsertLedgerEntries = %v; want ErrUnbalanced", tc.name, err)
		}
	}
	if got, err := s.LedgerEntriesFor(ctx, "pay_1"); err != nil || len(got) != 0 {
		t.Errorf("refused entries were written: %v, %v", got, err)
	}

	balanced := []store.LedgerEntry{entry("USD", "provider:sandbox", -1000, "pay_2"), entry("USD", "available", 1000, "pay_2"),
		entry("EUR", "provider:sandbox", -5, "pay_2"), entry("EUR", "available", 5, "pay_2")}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.InsertLedgerEntries(balanced...) })
	got, err := s.LedgerEntriesFor(ctx, "pay_2")
	if err != nil || !slices.Equal(got, balanced) {
		t.Errorf("LedgerEntriesFor(pay_2) = %v, %v; want %v", got, err, balanced)
	}
}
