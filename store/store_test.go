package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTestStore opens a store on a new database file in tb.TempDir() and
// closes it when the test ends.
func openTestStore(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), "paymentd.db"), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustWrite(tb testing.TB, s *Store, fn func(*Tx) error) {
	tb.Helper()
	if err := s.Write(context.Background(), fn); err != nil {
		tb.Fatalf("Write: %v", err)
	}
}

func accountIDs(tb testing.TB, s *Store) []string {
	tb.Helper()
	accts, err := s.Accounts(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]string, len(accts))
	for i, a := range accts {
		ids[i] = a.ID
	}
	return ids
}

func TestMigrationsAppliedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paymentd.db")
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v, %v", files, err)
	}

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, func(tx *Tx) error { return tx.InsertAccount(&Account{ID: "acct_1", Name: "kept", Created: tx.Now()}) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // reopening applies nothing again
		s, err = Open(ctx, path, Options{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if got := accountIDs(t, s); !slices.Equal(got, []string{"acct_1"}) {
			t.Errorf("accounts after reopen: %v; want [acct_1]", got)
		}
		rows, err := s.rdb.QueryContext(ctx, `SELECT name, count(*) FROM schema_migrations GROUP BY name ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for rows.Next() {
			var name string
			var n int
			if err := rows.Scan(&name, &n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("schema_migrations has %d rows for %s; want 1", n, name)
			}
			names = append(names, "migrations/"+name)
		}
		rows.Close()
		if !slices.Equal(names, files) {
			t.Errorf("schema_migrations records %v; want one row per file %v", names, files)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	applied, err := Migrate(ctx, path)
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate on a migrated database applied %v, %v; want nothing", applied, err)
	}
	applied, err = Migrate(ctx, filepath.Join(t.TempDir(), "new.db"))
	if err != nil || len(applied) != len(files) {
		t.Errorf("Migrate on a new database applied %v, %v; want all of %v", applied, err, files)
	}
}

// TestWriteGroupCommitIsolatesFailures queues many writes behind one that
// holds the writer, so that they run in one transaction, and makes some of
// them fail after writing: a returned error, a constraint violation, a
// panic. The others must commit; the failed ones must leave nothing.
func TestWriteGroupCommitIsolatesFailures(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	ctx := context.Background()
	const n = 120

	running, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- s.Write(ctx, func(tx *Tx) error {
			close(running)
			<-release
			return tx.InsertAccount(&Account{ID: "acct_holder", Name: "holder", Created: tx.Now()})
		})
	}()

	<-running
	errBoom := errors.New("boom")
	errs := make([]error, n)
	batchTimes := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Write(ctx, func(tx *Tx) error {
				batchTimes[i] = tx.Now()
				id := fmt.Sprintf("acct_%03d", i)
				if err := tx.InsertAccount(&Account{ID: id, Name: "a", Created: tx.Now()}); err != nil {
					return err
				}
				if err := tx.InsertAccount(&Account{ID: id + "_b", Name: "b", Created: tx.Now()}); err != nil {
					return err
				}
				switch i % 4 {
				case 1:
					return fmt.Errorf("op %d: %w", i, errBoom)
				case 2:
					return tx.InsertAccount(&Account{ID: "acct_holder", Name: "duplicate", Created: tx.Now()})
				case 3:
					if i == 3 {
						panic("op 3 panics")
					}
				}
				return nil
			})
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.w.ops) < n { // every write is queued behind the holder
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes queued", len(s.w.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-holder; err != nil {
		t.Fatalf("holder: %v", err)
	}

	var want []string
	for i, err := range errs {
		id := fmt.Sprintf("acct_%03d", i)
		switch {
		case i == 3:
			if err == nil || !strings.Contains(err.Error(), "panic") {
				t.Errorf("op 3 panicked, Write returned %v; want a panic error", err)
			}
		case i%4 == 1:
			if !errors.Is(err, errBoom) {
				t.Errorf("op %d: Write returned %v; want its own error", i, err)
			}
		case i%4 == 2:
			if err == nil {
				t.Errorf("op %d inserted a duplicate account id; want an error", i)
			}
		default:
			if err != nil {
				t.Errorf("op %d: %v", i, err)
			}
			want = append(want, id, id+"_b")
		}
	}
	want = append(want, "acct_holder")
	slices.Sort(want)
	got := accountIDs(t, s)
	var extra, missing []string
	for _, id := range got {
		if !slices.Contains(want, id) {
			extra = append(extra, id)
		}
	}
	for _, id := range want {
		if !slices.Contains(got, id) {
			missing = append(missing, id)
		}
	}
	if len(extra)+len(missing) > 0 {
		t.Errorf("failed writes left %d accounts %v; successful writes lost %d %v", len(extra), extra, len(missing), missing)
	}
	for i, bt := range batchTimes {
		if !bt.Equal(batchTimes[0]) {
			t.Fatalf("op %d ran in a batch at %v, op 0 at %v; want all %d in one transaction", i, bt, batchTimes[0], n)
		}
	}

	// A batch in which everything fails is rolled back, and the writer goes on.
	if err := s.Write(ctx, func(tx *Tx) error {
		if err := tx.InsertAccount(&Account{ID: "acct_rolled_back", Created: tx.Now()}); err != nil {
			return err
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("Write = %v; want errBoom", err)
	}
	mustWrite(t, s, func(tx *Tx) error { return tx.InsertAccount(&Account{ID: "acct_zzz", Created: tx.Now()}) })
	got = accountIDs(t, s)
	if slices.Contains(got, "acct_rolled_back") || !slices.Contains(got, "acct_zzz") {
		t.Errorf("accounts %v; want acct_zzz and not acct_rolled_back", got)
	}
}

func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "paymentd.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v; want ErrClosed", err)
	}
}

func TestLedgerEntriesMustBalance(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	ctx := context.Background()
	entry := func(currency, book string, amount int64, source string) LedgerEntry {
		return LedgerEntry{AccountID: "acct_1", Currency: currency, Book: book, Amount: amount, SourceID: source}
	}
	for _, tc := range []struct {
		name    string
		entries []LedgerEntry
	}{
		{"does not sum to zero", []LedgerEntry{entry("USD", "provider:sandbox", -100, "pay_1"), entry("USD", "available", 99, "pay_1")}},
		{"sums to zero only across currencies", []LedgerEntry{entry("USD", "provider:sandbox", -100, "pay_1"), entry("EUR", "available", 100, "pay_1")}},
		{"overflows", []LedgerEntry{entry("USD", "available", math.MaxInt64, "pay_1"), entry("USD", "available", 1, "pay_1"),
			entry("USD", "provider:sandbox", math.MinInt64, "pay_1")}},
		{"one entry", []LedgerEntry{entry("USD", "available", 100, "pay_1")}},
	} {
		err := s.Write(ctx, func(tx *Tx) error { return tx.InsertLedgerEntries(tc.entries...) })
		if !errors.Is(err, ErrUnbalanced) {
			t.Errorf("%s: InsertLedgerEntries = %v; want ErrUnbalanced", tc.name, err)
		}
	}
	if got, err := s.LedgerEntriesFor(ctx, "pay_1"); err != nil || len(got) != 0 {
		t.Errorf("refused entries were written: %v, %v", got, err)
	}

	balanced := []LedgerEntry{entry("USD", "provider:sandbox", -1000, "pay_2"), entry("USD", "available", 1000, "pay_2"),
		entry("EUR", "provider:sandbox", -5, "pay_2"), entry("EUR", "available", 5, "pay_2")}
	mustWrite(t, s, func(tx *Tx) error { return tx.InsertLedgerEntries(balanced...) })
	got, err := s.LedgerEntriesFor(ctx, "pay_2")
	if err != nil || !slices.Equal(got, balanced) {
		t.Errorf("LedgerEntriesFor(pay_2) = %v, %v; want %v", got, err, balanced)
	}
}

func TestPutIdempotencyTwiceConflicts(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	ctx := context.Background()
	rec := func(method, key, response string) *IdempotencyRecord {
		return &IdempotencyRecord{AccountID: "acct_1", Method: method, Key: key, RequestHash: []byte("hash-" + response),
			Response: []byte(response)}
	}
	mustWrite(t, s, func(tx *Tx) error { return tx.PutIdempotency(rec("CreatePayment", "k1", "first")) })
	err := s.Write(ctx, func(tx *Tx) error { return tx.PutIdempotency(rec("CreatePayment", "k1", "second")) })
	if !errors.Is(err, ErrConflict) {
		t.Errorf("second PutIdempotency = %v; want ErrConflict", err)
	}
	err = s.Write(ctx, func(tx *Tx) error {
		if err := tx.PutIdempotency(rec("CreatePayment", "k2", "first")); err != nil {
			return err
		}
		return tx.PutIdempotency(rec("CreatePayment", "k2", "second"))
	})
	if !errors.Is(err, ErrConflict) {
		t.Errorf("PutIdempotency twice in one write = %v; want ErrConflict", err)
	}
	if _, err := s.GetIdempotency(ctx, "acct_1", false, "CreatePayment", "k2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the write that conflicted left its first record: %v; want ErrNotFound", err)
	}
	// The key is scoped by method and mode.
	mustWrite(t, s, func(tx *Tx) error { return tx.PutIdempotency(rec("CreateRefund", "k1", "refund")) })
	live := rec("CreatePayment", "k1", "live")
	live.Livemode = true
	mustWrite(t, s, func(tx *Tx) error { return tx.PutIdempotency(live) })

	got, err := s.GetIdempotency(ctx, "acct_1", false, "CreatePayment", "k1")
	if err != nil || string(got.Response) != "first" || string(got.RequestHash) != "hash-first" || got.Code != 0 {
		t.Errorf("GetIdempotency = %+v, %v; want the first record", got, err)
	}
}

func TestListPaymentsKeysetPagesNewestFirst(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	ctx := context.Background()
	const n = 25
	payment := func(account string, live bool, i int) *Payment {
		status := "succeeded"
		if i%3 == 0 {
			status = "failed"
		}
		return &Payment{ID: fmt.Sprintf("pay_%026d", i), AccountID: account, Livemode: live, Status: status,
			Amount: 1000, Currency: "USD", AmountCaptured: 1000, CaptureMethod: "automatic",
			PaymentMethod: "pm_card_visa", Provider: "sandbox"}
	}
	var newestFirst, failed []string
	mustWrite(t, s, func(tx *Tx) error {
		for i := range n {
			for _, p := range []*Payment{payment("acct_a", false, i), payment("acct_a", true, i+100), payment("acct_b", false, i+200)} {
				p.Created, p.Updated = tx.Now(), tx.Now()
				if err := tx.InsertPayment(p); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for i := n - 1; i >= 0; i-- {
		id := fmt.Sprintf("pay_%026d", i)
		newestFirst = append(newestFirst, id)
		if i%3 == 0 {
			failed = append(failed, id)
		}
	}

	// pages walks the pages of f, passing the last id of each as the next Before.
	pages := func(f PageFilter) (ids []string, sizes []int) {
		t.Helper()
		for {
			ps, err := s.ListPayments(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) == 0 {
				return ids, sizes
			}
			sizes = append(sizes, len(ps))
			for _, p := range ps {
				if p.AccountID != "acct_a" || p.Livemode {
					t.Fatalf("payment %s of %s (live %v) listed for acct_a test mode", p.ID, p.AccountID, p.Livemode)
				}
				ids = append(ids, p.ID)
			}
			f.Before = ps[len(ps)-1].ID
		}
	}
	ids, sizes := pages(PageFilter{AccountID: "acct_a", Limit: 10})
	if !slices.Equal(ids, newestFirst) || !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("pages of 10: sizes %v ids %v; want sizes [10 10 5] and ids %v", sizes, ids, newestFirst)
	}
	ids, _ = pages(PageFilter{AccountID: "acct_a", Status: "failed", Limit: 4})
	if !slices.Equal(ids, failed) {
		t.Errorf("failed payments: %v; want %v", ids, failed)
	}
	ids, _ = pages(PageFilter{AccountID: "acct_a", AtOrAfter: newestFirst[14], Before: newestFirst[4], Limit: 3})
	if !slices.Equal(ids, newestFirst[5:15]) {
		t.Errorf("ids in [%s, %s): %v; want %v", newestFirst[14], newestFirst[4], ids, newestFirst[5:15])
	}
	if ps, err := s.ListPayments(ctx, PageFilter{AccountID: "acct_c", Limit: 10}); err != nil || len(ps) != 0 {
		t.Errorf("an account without payments lists %d, %v", len(ps), err)
	}
	p, err := s.GetPayment(ctx, "acct_a", false, newestFirst[0])
	if err != nil || p.Amount != 1000 || p.Status != "succeeded" && p.Status != "failed" {
		t.Errorf("GetPayment = %+v, %v", p, err)
	}
	if _, err := s.GetPayment(ctx, "acct_b", false, newestFirst[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPayment of another account's id = %v; want ErrNotFound", err)
	}
}
