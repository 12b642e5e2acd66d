package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	waitQueued(t, s, n) // every write is queued behind the holder
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

// TestWriteFailedChangeForgetsItsEndpoints runs, in one batch, a change
// that creates a webhook endpoint, loads the account's endpoints (as
// writing an event does) and then fails, and after it a change that loads
// them again: the endpoint was rolled back with the first change, so the
// second must not see it (it would write deliveries to an endpoint that
// does not exist).
func TestWriteFailedChangeForgetsItsEndpoints(t *testing.T) {
	t.Parallel()
	s := openTestStore(t)
	ctx := context.Background()
	if err := s.Write(ctx, func(tx *Tx) error {
		return tx.InsertAccount(&Account{ID: "acct_1", Name: "a", Created: tx.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	running, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- s.Write(ctx, func(tx *Tx) error { close(running); <-release; return nil })
	}()
	<-running
	errBoom := errors.New("boom")
	failed, later := make(chan error, 1), make(chan error, 1)
	var seen []WebhookTarget
	go func() {
		failed <- s.Write(ctx, func(tx *Tx) error {
			if err := tx.InsertWebhookEndpoint(&WebhookEndpoint{ID: "we_1", AccountID: "acct_1", URL: "https://example.com/hook",
				Secret: "whsec_x", Created: tx.Now()}); err != nil {
				return err
			}
			if targets, err := tx.WebhookTargets("acct_1", false); err != nil || len(targets) != 1 {
				return fmt.Errorf("targets inside the change = %v, %v; want its new endpoint", targets, err)
			}
			return errBoom
		})
	}()
	waitQueued(t, s, 1)
	go func() {
		later <- s.Write(ctx, func(tx *Tx) (err error) {
			seen, err = tx.WebhookTargets("acct_1", false)
			return err
		})
	}()
	waitQueued(t, s, 2)
	close(release)
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	if err := <-failed; !errors.Is(err, errBoom) {
		t.Fatalf("the failing change returned %v; want %v", err, errBoom)
	}
	if err := <-later; err != nil {
		t.Fatal(err)
	}
	if len(seen) != 0 {
		t.Errorf("a change after the failed one saw endpoints %v; want none (the endpoint was rolled back)", seen)
	}
}

// waitQueued waits until n writes wait in the writer's queue (behind one
// that holds the writer), failing the test after 10 s.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(s.w.ops) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes queued", len(s.w.ops), n)
		}
	}
}
