package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for a raw look at the tables
	"github.com/paymentd/paymentd/store"
	"github.com/paymentd/paymentd/store/storetest"
)

// TestMigrationDirsMatch keeps the two dialects' migrations in step: every
// migration exists in both directories under the same name.
func TestMigrationDirsMatch(t *testing.T) {
	names := func(dir string) []string {
		paths, err := filepath.Glob(filepath.Join(dir, "*.sql"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	sqlite, pg := names("migrations"), names(filepath.Join("migrations", "postgres"))
	if len(sqlite) == 0 || !slices.Equal(sqlite, pg) {
		t.Errorf("migrations/ holds %v, migrations/postgres/ holds %v; every migration needs both dialects under one name", sqlite, pg)
	}
	if _, err := os.Stat(filepath.Join("migrations", "postgres")); errors.Is(err, fs.ErrNotExist) {
		t.Error("migrations/postgres is missing")
	}
}

// TestPostgresConcurrentOpens starts three stores on one fresh database at
// the same moment, as replicas starting together do: the migrations are
// applied once (under the migration lock) and every store opens.
func TestPostgresConcurrentOpens(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	const n = 3
	stores := make([]*store.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = store.Open(context.Background(), dsn, store.Options{})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	pending, err := stores[0].PendingMigrations(context.Background())
	if err != nil || len(pending) != 0 {
		t.Errorf("PendingMigrations = %v, %v; want none", pending, err)
	}
	if b := stores[0].Backend(); b != "postgres" || !stores[0].Shared() {
		t.Errorf("Backend() = %q, Shared() = %v; want postgres, true", b, stores[0].Shared())
	}
	applied, err := store.Migrate(context.Background(), dsn)
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate on a migrated database applied %v, %v; want nothing", applied, err)
	}
}

// twoStores opens two stores on one fresh PostgreSQL database, as two
// replicas, with an account holding a payment of which 1000 USD is
// captured (and so 1000 available).
func twoStores(t *testing.T) (a, b *store.Store) {
	dsn := storetest.PostgresDSN(t)
	a, b = open(t, dsn), open(t, dsn)
	err := a.Write(context.Background(), func(tx *store.Tx) error {
		now := tx.Now()
		if err := tx.InsertAccount(&store.Account{ID: "acct_1", Name: "one", Created: now}); err != nil {
			return err
		}
		if err := tx.InsertPayment(&store.Payment{ID: "pay_1", AccountID: "acct_1", Status: "succeeded", Amount: 1000,
			Currency: "USD", AmountCaptured: 1000, CaptureMethod: "automatic", PaymentMethod: "card", Provider: "sandbox",
			Created: now, Updated: now}); err != nil {
			return err
		}
		return tx.InsertLedgerEntries(
			store.LedgerEntry{AccountID: "acct_1", Currency: "USD", Book: "provider:sandbox", Amount: -1000, SourceID: "pay_1"},
			store.LedgerEntry{AccountID: "acct_1", Currency: "USD", Book: store.BookAvailable, Amount: 1000, SourceID: "pay_1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestPostgresRefundGuardAcrossReplicas: 20 refunds of 100 at once through
// two stores on a captured 1000 — the payment row read FOR UPDATE lets
// exactly 10 through, and check agrees.
func TestPostgresRefundGuardAcrossReplicas(t *testing.T) {
	a, b := twoStores(t)
	errTooMuch := errors.New("refund exceeds the captured amount left")
	ok := storetest.ParallelWrites(t, []*store.Store{a, b}, 20, errTooMuch, storetest.RefundWrite("acct_1", "pay_1", errTooMuch))
	if ok != 10 {
		t.Errorf("%d of 20 refunds of 100 on a captured 1000 succeeded across two replicas; want exactly 10", ok)
	}
	p, err := b.GetPayment(context.Background(), "acct_1", false, "pay_1")
	if err != nil || p.AmountRefunded != 1000 {
		t.Errorf("payment after the refunds: %+v, %v; want amount_refunded 1000", p, err)
	}
	mustCheck(t, a)
}

// TestPostgresPayoutGuardAcrossReplicas: 30 payouts of 100 at once through
// two stores on an available 1000 — BookBalance's lock on the account's
// balance row lets exactly 10 through, and available never goes negative.
func TestPostgresPayoutGuardAcrossReplicas(t *testing.T) {
	a, b := twoStores(t)
	errFunds := errors.New("insufficient available balance")
	ok := storetest.ParallelWrites(t, []*store.Store{a, b}, 30, errFunds, storetest.PayoutWrite("acct_1", errFunds))
	if ok != 10 {
		t.Errorf("%d of 30 debits of 100 on an available 1000 succeeded across two replicas; want exactly 10", ok)
	}
	bals, err := b.Balances(context.Background(), "acct_1", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, bal := range bals {
		if bal.Book == store.BookAvailable && bal.Amount != 0 {
			t.Errorf("available after the debits = %d; want 0", bal.Amount)
		}
	}
	mustCheck(t, a)
}

// TestPostgresDeadlockRetried makes two replicas' changes lock two balance
// rows in opposite orders while both hold their first: PostgreSQL breaks
// the deadlock by failing one, which the writer runs again in a batch of
// its own, so both callers see success.
func TestPostgresDeadlockRetried(t *testing.T) {
	a, b := twoStores(t)
	var runs atomic.Int32
	var both sync.WaitGroup
	both.Add(2)
	lockBoth := func(first, second string) func(*store.Tx) error {
		var once sync.Once
		return func(tx *store.Tx) error {
			runs.Add(1)
			if _, err := tx.BookBalance("acct_1", false, first, store.BookAvailable); err != nil {
				return err
			}
			once.Do(func() {
				both.Done()
				waitTimeout(&both, 5*time.Second)
			})
			_, err := tx.BookBalance("acct_1", false, second, store.BookAvailable)
			return err
		}
	}
	errs := make(chan error, 2)
	go func() { errs <- a.Write(context.Background(), lockBoth("USD", "EUR")) }()
	go func() { errs <- b.Write(context.Background(), lockBoth("EUR", "USD")) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Write: %v; want the deadlock retried away", err)
		}
	}
	if n := runs.Load(); n < 3 {
		t.Errorf("the changes ran %d times; want at least 3 (one run undone by the deadlock)", n)
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// TestPostgresCheckpointHorizon checkpoints while two replicas keep
// appending: every balance stays the sum of its entries (check), so no
// checkpoint skipped an entry that committed after a higher id.
func TestPostgresCheckpointHorizon(t *testing.T) {
	a, b := twoStores(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w, s := range []*store.Store{a, b, a, b} {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				src := fmt.Sprintf("mv_%d_%d", w, i)
				if err := s.Write(ctx, func(tx *store.Tx) error {
					return tx.InsertLedgerEntries(
						store.LedgerEntry{AccountID: "acct_1", Currency: "USD", Book: "provider:sandbox", Amount: -1, SourceID: src},
						store.LedgerEntry{AccountID: "acct_1", Currency: "USD", Book: store.BookAvailable, Amount: 1, SourceID: src})
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	written := 0
	for range 10 {
		n, err := a.CheckpointLedger(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		written += n
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if written == 0 {
		t.Error("no checkpoint was written")
	}
	mustCheck(t, b)
}

func mustCheck(t *testing.T, s *store.Store) {
	t.Helper()
	rep, err := store.Check(context.Background(), s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		var b []byte
		for _, r := range rep.Results {
			b = fmt.Appendf(b, "%s: %v\n", r.Name, r.Problems)
		}
		t.Errorf("check failed:\n%s", b)
	}
}

// TestPostgresLongGuardCheckpoints: a balance guard that has to sum more
// than a couple of thousand entries past the newest checkpoint makes the
// store write one by itself, so the next guards of the account (which
// hold its balance lock while they sum) read few entries.
func TestPostgresLongGuardCheckpoints(t *testing.T) {
	a, _ := twoStores(t)
	ctx := context.Background()
	const n = 2100
	err := a.Write(ctx, func(tx *store.Tx) error {
		for i := range n {
			src := fmt.Sprintf("pay_bulk_%d", i)
			if err := tx.InsertLedgerEntries(
				store.LedgerEntry{AccountID: "acct_1", Currency: "USD", Book: "provider:sandbox", Amount: -1, SourceID: src},
				store.LedgerEntry{AccountID: "acct_1", Currency: "USD", Book: store.BookAvailable, Amount: 1, SourceID: src}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("pgx", a.Path()) // the test server has no password, so Path (redacted) still connects
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	checkpoints := func() (k int) {
		if err := raw.QueryRow(`SELECT count(*) FROM ledger_checkpoints`).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := checkpoints(); k != 0 {
		t.Fatalf("%d checkpoints before the guard; want none", k)
	}
	var avail int64
	if err := a.Write(ctx, func(tx *store.Tx) (err error) {
		avail, err = tx.BookBalance("acct_1", false, "USD", store.BookAvailable)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if avail != 1000+n {
		t.Errorf("available = %d; want %d", avail, 1000+n)
	}
	for deadline := time.Now().Add(10 * time.Second); checkpoints() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint 10 s after a guard summed %d entries past the newest one", n+1)
		}
	}
	mustCheck(t, a)
}

// TestPostgresWriterReconnects ends every session of the database (what a
// server restart or failover does to a replica's connections): the next
// writes succeed at once on new connections (the writer loops reconnect
// when BEGIN fails), and no read fails: a read that meets a connection the
// server ended runs again on another (pgread.go).
func TestPostgresWriterReconnects(t *testing.T) {
	a, _ := twoStores(t)
	ctx := context.Background()
	// Several reads at once, twice, so the read pool keeps several
	// connections that all die below.
	concurrentReads := func() (failed int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 16 {
			wg.Go(func() {
				_, err := a.GetPayment(ctx, "acct_1", false, "pay_1")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					t.Log(err)
				}
			})
		}
		wg.Wait()
		return failed
	}
	concurrentReads()
	concurrentReads()
	raw, err := sql.Open("pgx", a.Path()) // the test server has no password, so Path (redacted) still connects
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var ended int
	if err := raw.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'paymentd'`).Scan(&ended); err != nil {
		t.Fatal(err)
	}
	// Of store a's sessions (4 writer loops, the pool's readers) and store b's.
	if ended < 6 {
		t.Fatalf("ended %d sessions; want the writer loops' and several pooled readers'", ended)
	}
	time.Sleep(100 * time.Millisecond) // the sessions' ends reach their clients
	if failed := concurrentReads(); failed > 0 {
		t.Errorf("%d of 16 reads failed after the server ended the sessions; want none", failed)
	}
	for i := range 8 { // more writes than writer loops: every loop reconnects
		err := a.Write(ctx, func(tx *store.Tx) error {
			return tx.InsertAccount(&store.Account{ID: fmt.Sprintf("acct_after_%d", i), Name: "after", Created: tx.Now()})
		})
		if err != nil {
			t.Fatalf("write %d after the server ended the sessions: %v", i, err)
		}
	}
	if failed := concurrentReads(); failed > 0 {
		t.Errorf("%d of 16 reads failed once the pool had reconnected", failed)
	}
	if err := a.ProbeWrite(ctx); err != nil {
		t.Errorf("ProbeWrite after reconnecting: %v", err)
	}
}

// TestPostgresPrimaryKeyLookupsPlanOnTheKey prepares, for every table of a
// freshly migrated database whose tables have no statistics yet, a lookup
// by its whole primary key, and checks that the generic plan PostgreSQL
// keeps for a prepared statement reads a unique index (the key, or one on
// a part of it) rather than a secondary index that would bound only the
// account and then read every row of it (migration 0052).
func TestPostgresPrimaryKeyLookupsPlanOnTheKey(t *testing.T) {
	a, _ := twoStores(t)
	ctx := context.Background()
	raw, err := sql.Open("pgx", a.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT c.relname,
			array_to_string(ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o)
				JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n ORDER BY k.o), ','),
			array_to_string(ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o)
				JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n ORDER BY k.o), ',')
		FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
		WHERE x.indisprimary AND c.relnamespace = 'public'::regnamespace ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type table struct{ name, cols, types string }
	var tables []table
	for rows.Next() {
		var tb table
		if err := rows.Scan(&tb.name, &tb.cols, &tb.types); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, tb)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if len(tables) < 20 {
		t.Fatalf("found %d tables with a primary key; want every table of the schema", len(tables))
	}
	uniqueIndex := regexp.MustCompile(`Index (?:Only )?Scan using (\S+) on `)
	for _, tb := range tables {
		var conds, nulls []string
		for i, c := range strings.Split(tb.cols, ",") {
			conds = append(conds, fmt.Sprintf("%s = $%d", c, i+1))
			nulls = append(nulls, "NULL")
		}
		stmt := "pk_" + tb.name
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PREPARE %s (%s) AS SELECT * FROM %s WHERE %s`,
			stmt, tb.types, tb.name, strings.Join(conds, " AND "))); err != nil {
			t.Fatal(err)
		}
		var plan string
		if err := conn.QueryRowContext(ctx, fmt.Sprintf(`EXPLAIN EXECUTE %s (%s)`, stmt, strings.Join(nulls, ","))).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		m := uniqueIndex.FindStringSubmatch(plan)
		if m == nil {
			t.Errorf("%s: a lookup by primary key (%s) plans as %q; want an index scan", tb.name, tb.cols, plan)
			continue
		}
		var unique bool
		if err := conn.QueryRowContext(ctx, `SELECT indisunique FROM pg_index WHERE indexrelid = $1::regclass`, m[1]).Scan(&unique); err != nil {
			t.Fatal(err)
		}
		if !unique {
			t.Errorf("%s: a lookup by primary key (%s) plans on the secondary index %s: %s", tb.name, tb.cols, m[1], plan)
		}
	}
}
