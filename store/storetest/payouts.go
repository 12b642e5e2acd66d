package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

// collect writes a captured payment of amount and the ledger entries of its
// capture (from the provider's book to available), as the service does.
func collect(tb testing.TB, s *store.Store, account, id string, amount int64) {
	tb.Helper()
	mustWrite(tb, s, func(tx *store.Tx) error {
		if err := tx.InsertPayment(capturedPayment(id, account, amount, tx.Now())); err != nil {
			return err
		}
		return tx.InsertLedgerEntries(
			store.LedgerEntry{AccountID: account, Currency: "USD", Book: "provider:sandbox", Amount: -amount, SourceID: id},
			store.LedgerEntry{AccountID: account, Currency: "USD", Book: store.BookAvailable, Amount: amount, SourceID: id})
	})
}

func testPayout(id, account, ref string, total int64, now time.Time) *store.Payout {
	return &store.Payout{ID: id, AccountID: account, TransactionReference: ref, Status: "pending", MethodID: "bkash",
		MethodType: "mobile_banking", Currency: "USD", Amount: total - 10, Fee: 10, TotalAmount: total, RecipientName: "Rahim",
		RecipientAccount: "01700000000", Provider: "sandbox", Created: now, Updated: now}
}

// PayoutWrite returns the i-th of parallel USD payouts of 100 total, made the
// way the service makes one: read available in the write, refuse with
// refusal if it is short, else insert the payout and reserve its total.
func PayoutWrite(accountID string, refusal error) func(tx *store.Tx, i int) error {
	return func(tx *store.Tx, i int) error {
		available, err := tx.BookBalance(accountID, false, "USD", store.BookAvailable)
		if err != nil {
			return err
		}
		if available < 100 {
			return refusal
		}
		p := testPayout(fmt.Sprintf("po_%02d", i), accountID, fmt.Sprintf("ref-%02d", i), 100, tx.Now())
		if err := tx.InsertPayout(p); err != nil {
			return err
		}
		return tx.InsertLedgerEntries(
			store.LedgerEntry{AccountID: accountID, Currency: "USD", Book: store.BookAvailable, Amount: -100, SourceID: p.ID},
			store.LedgerEntry{AccountID: accountID, Currency: "USD", Book: store.BookReserved, Amount: 100, SourceID: p.ID})
	}
}

// testPayoutsNeverOverdraw runs 30 parallel payouts of 100 against 1000
// available, each the way the service makes one: read available in the
// write, refuse if it is short, else insert the payout and reserve its
// total. Exactly 10 succeed, available never goes negative, and paymentd
// check passes.
func testPayoutsNeverOverdraw(t *testing.T, s *store.Store) {
	ctx := context.Background()
	collect(t, s, "acct_1", "pay_f", 1000)
	errShort := errors.New("available balance too small")
	const n = 30
	ok := ParallelWrites(t, []*store.Store{s}, n, errShort, PayoutWrite("acct_1", errShort))
	if ok != 10 {
		t.Errorf("%d of %d payouts of 100 on an available 1000 succeeded; want exactly 10", ok, n)
	}
	want := []store.BookBalance{{Currency: "USD", Book: store.BookAvailable, Amount: 1000 - int64(ok)*100},
		{Currency: "USD", Book: "provider:sandbox", Amount: -1000}, {Currency: "USD", Book: store.BookReserved, Amount: int64(ok) * 100}}
	if got, err := s.Balances(ctx, "acct_1", false); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Balances = %v, %v; want %v", got, err, want)
	}
	mustCheckClean(t, s)
}

// testPayoutReads covers the payout reads and writes: a reference unique per
// account and mode, lookups by id or reference (one and in a batch), pages,
// the status update and the due query of the payout processor.
func testPayoutReads(t *testing.T, s *store.Store) {
	ctx := context.Background()
	var a, b *store.Payout
	mustWrite(t, s, func(tx *store.Tx) error {
		a, b = testPayout("po_a", "acct_1", "ref-a", 500, tx.Now()), testPayout("po_b", "acct_1", "ref-b", 700, tx.Now())
		a.Metadata, a.Network, a.Description, a.CallbackURL = map[string]string{"k": "v"}, "", "rent", "https://shop.example/cb"
		a.SentReference = "po_a" // the reference a provider was sent; b has none (a payout older than the column)
		for _, p := range []*store.Payout{a, b, testPayout("po_c", "acct_2", "ref-a", 50, tx.Now())} {
			if err := tx.InsertPayout(p); err != nil {
				return err
			}
		}
		return nil
	})
	err := s.Write(ctx, func(tx *store.Tx) error { return tx.InsertPayout(testPayout("po_d", "acct_1", "ref-a", 50, tx.Now())) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second payout with ref-a in acct_1 = %v; want ErrConflict", err)
	}
	for _, key := range []string{"po_a", "ref-a"} {
		if got, err := s.GetPayout(ctx, "acct_1", false, key); err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("GetPayout(%s):\n got  %+v, %v\n want %+v", key, got, err, a)
		}
	}
	if _, err := s.GetPayout(ctx, "acct_1", true, "po_a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPayout in the other mode = %v; want ErrNotFound", err)
	}
	batch, err := s.BatchGetPayouts(ctx, "acct_1", false, []string{"po_a", "ref-a", "ref-b", "po_c", "nope"})
	var ids []string
	for _, p := range batch {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"po_a", "po_b"}) {
		t.Errorf("BatchGetPayouts = %v, %v; want po_a and po_b once each", ids, err)
	}
	list, err := s.ListPayouts(ctx, store.PageFilter{AccountID: "acct_1", Limit: 10})
	if err != nil || len(list) != 2 || list[0].ID != "po_b" {
		t.Errorf("ListPayouts = %v, %v; want po_b, po_a", list, err)
	}
	// A provider's webhook names the payout by what it was sent: its
	// transaction reference, or paymentd's id (what aspayds is sent); a
	// reference two accounts share names neither.
	for ref, want := range map[string]string{"po_a": "po_a", "ref-b": "po_b", "po_c": "po_c"} {
		if got, err := s.ProviderPayout(ctx, "sandbox", "", ref); err != nil || got.ID != want {
			t.Errorf("ProviderPayout(%s) = %v, %v; want %s", ref, got, err, want)
		}
	}
	if got, err := s.ProviderPayout(ctx, "sandbox", "", "ref-a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ProviderPayout(ref-a), a reference of two accounts = %v, %v; want ErrNotFound", got, err)
	}
	if due, err := s.DuePayouts(ctx, "sandbox", time.Now().Add(time.Second), time.Now(), 10); err != nil || len(due) != 3 {
		t.Errorf("DuePayouts = %d payouts, %v; want the 3 pending ones", len(due), err)
	}
	mustWrite(t, s, func(tx *store.Tx) error {
		got, err := tx.GetPayout("acct_1", false, "po_a")
		if err != nil {
			return err
		}
		got.Status, got.ProviderRef, got.Updated, got.Processed = "completed", "sb_po_a", tx.Now(), tx.Now()
		// a provider's own fee, known from its answer
		got.Fee, got.TotalAmount = got.Fee+75, got.TotalAmount+75
		a = got
		return tx.UpdatePayout(got)
	})
	if got, err := s.GetPayout(ctx, "acct_1", false, "po_a"); err != nil || !reflect.DeepEqual(got, a) {
		t.Errorf("GetPayout after UpdatePayout:\n got  %+v, %v\n want %+v", got, err, a)
	}
	if due, err := s.DuePayouts(ctx, "sandbox", time.Now().Add(time.Second), time.Now().Add(time.Second), 10); err != nil || len(due) != 2 {
		t.Errorf("DuePayouts after po_a completed = %d payouts, %v; want 2", len(due), err)
	}
	ghost := *a
	ghost.ID = "po_zz"
	if err := s.Write(ctx, func(tx *store.Tx) error { return tx.UpdatePayout(&ghost) }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdatePayout of an unknown payout = %v; want ErrNotFound", err)
	}
}
