package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/paymentd/paymentd/store"
	"github.com/paymentd/paymentd/store/storetest"
)

// fixtureTable is one table's rows in copyFixture: sql is run rows times,
// with the arguments args(i) for i = 0…rows-1.
type fixtureTable struct {
	table string
	rows  int
	sql   string
	args  func(i int) []any
}

// copyFixture writes rows into every table of a migrated SQLite database,
// parents before children, with the values that a copy gets wrong first:
// NULLs, text outside ASCII, bytes that are not UTF-8 (key hashes, request
// hashes), integers beyond float64's 2^53, negative amounts, SQL keywords
// as column names. TestCopyDatabaseCopiesEveryTable fails for a table that
// has no entry here, so a new table is copied by a test before it is copied
// for an operator.
var copyFixture = []fixtureTable{
	{"accounts", 2, `INSERT INTO accounts (id, name, created, display_name, logo_url, accent_color, support_email, support_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			if i == 1 {
				return []any{"acct_2", "Zweite GmbH", 1700000000000001, nil, nil, nil, nil, nil}
			}
			return []any{"acct_1", "Zoë's ✓ shop", 1700000000000000, "Zoë", "https://cdn.example.com/logo.png", "#12ab34", "help@example.com", "https://example.com/help"}
		}},
	{"api_keys", 2, `INSERT INTO api_keys (id, account_id, hash, hint, livemode, scopes, created, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			return []any{fmt.Sprintf("key_%d", i), "acct_1", []byte{0x00, 0xff, byte(i), 0x80, 0x7f}, "ab12", i, "read,write", 1700000000000000, []any{nil, int64(1700000000000009)}[i]}
		}},
	{"payments", 3, `INSERT INTO payments (id, account_id, livemode, status, amount, currency, amount_capturable, amount_captured, amount_refunded,
		capture_method, payment_method, provider, provider_ref, description, metadata, customer_name, customer_email, customer_id, agent_id,
		failure_code, failure_message, created, updated, pending_op, pending_amount, pending_key, pending_since)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			if i == 2 {
				return []any{"pay_3", "acct_1", 0, "requires_capture", 5000, "JPY", 5000, 0, 0, "manual", "pm_card_visa", "aslan", "asl_9",
					nil, nil, nil, nil, nil, nil, nil, nil, 1700000000000300, 1700000000000301, "capture", 5000, "idem-c", 1700000000000302}
			}
			return []any{fmt.Sprintf("pay_%d", i+1), "acct_1", i, "succeeded", int64(9007199254740993), "USD", 0, int64(9007199254740993), 300, "automatic",
				"pm_card_visa", "sandbox", nil, "Ünïcode – “quoted” 'single' \\ back", `{"order":"42","k":"v"}`, "Zoë", "z@example.com", "cus_1", "agent_7",
				nil, nil, 1700000000000100 + i, 1700000000000200 + i, nil, nil, nil, nil}
		}},
	{"refunds", 2, `INSERT INTO refunds (id, account_id, livemode, payment_id, amount, currency, status, reason, metadata, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			return []any{fmt.Sprintf("re_%d", i), "acct_1", 0, "pay_1", 150, "USD", []string{"succeeded", "pending"}[i], []any{nil, "requested_by_customer"}[i], nil, 1700000000000400 + i}
		}},
	{"ledger_entries", 45, `INSERT INTO ledger_entries (id, account_id, livemode, currency, book, amount, source_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			amount := int64(1000 + i)
			if i%2 == 1 {
				amount = -amount
			}
			return []any{int64(i*3 + 1), "acct_1", i % 2, "USD", []string{"available", "provider:sandbox"}[i%2], amount, fmt.Sprintf("pay_%d", i/2), 1700000000000500 + i}
		}},
	{"ledger_checkpoints", 1, `INSERT INTO ledger_checkpoints (account_id, livemode, through_id, currency, book, balance, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		func(int) []any {
			return []any{"acct_1", 0, 43, "USD", "available", int64(-9007199254740993), 1700000000000600}
		}},
	{"events", 2, `INSERT INTO events (id, account_id, livemode, type, object_id, data, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			return []any{fmt.Sprintf("evt_%d", i), "acct_1", 0, "payment.succeeded", "pay_1", []byte{0x0a, 0x05, 'p', 'a', 'y', '_', '1', 0x00, 0xfe, byte(i)}, 1700000000000700 + i}
		}},
	{"idempotency_keys", 2, `INSERT INTO idempotency_keys (account_id, livemode, method, key, request_hash, code, response, created, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			return []any{"acct_1", 0, "CreatePayment", fmt.Sprintf("idem-%d ünï", i), []byte{0xde, 0xad, 0xbe, 0xef, byte(i)}, i * 6, []byte{}, 1700000000000800, []any{"evt_0", nil}[i]}
		}},
	{"invoices", 1, `INSERT INTO invoices (id, account_id, livemode, status, amount, currency, network, amount_paid, transaction_reference, callback_url,
		payment_url, description, metadata, customer_name, customer_email, customer_id, provider, provider_ref, deposit_address,
		confirmations_required, payment_id, expires_at, paid_at, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(int) []any {
			return []any{"inv_1", "acct_1", 0, "partially_paid", 2500000, "USDT", "tron", 1000000, "order-42", "https://shop.example.com/cb",
				"http://127.0.0.1:8080/pay/inv_1", "Bestellung Nr. 42", nil, nil, nil, nil, "sandbox", nil, "TXyz", 19, nil, 1700000001000000, nil,
				1700000000000900, 1700000000000901}
		}},
	{"invoice_receipts", 1, `INSERT INTO invoice_receipts (account_id, livemode, invoice_id, txn_id, amount, confirmations, counted, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(int) []any {
			return []any{"acct_1", 0, "inv_1", "0xabc", 1000000, 20, 1, 1700000000001000, 1700000000001001}
		}},
	{"invoice_attempts", 1, `INSERT INTO invoice_attempts (account_id, livemode, transaction_reference, invoice_id, provider, request_hash, invoice, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		func(int) []any {
			return []any{"acct_1", 0, "order-43", "inv_2", "aspayds", []byte{0x01, 0x00, 0x02}, `{"id":"inv_2","amount":100}`, 1700000000001100}
		}},
	{"payout_methods", 1, `INSERT INTO payout_methods (account_id, livemode, id, position, name, type, currency, network, min_amount, max_amount,
		fee_fixed, fee_basis_points, account_format, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(int) []any {
			return []any{"acct_1", 0, "bkash", 0, "bKash", "mobile_banking", "BDT", nil, 5000, 2500000, 1000, 150, `^01\d{9}$`, 1700000000001200}
		}},
	{"payouts", 1, `INSERT INTO payouts (id, account_id, livemode, transaction_reference, status, method_id, method_type, network, currency, amount, fee,
		total_amount, recipient_name, recipient_account, description, callback_url, metadata, provider, provider_ref, failure_code, failure_message,
		created, updated, processed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(int) []any {
			return []any{"po_1", "acct_1", 0, "payout-1", "rejected", "bkash", "mobile_banking", nil, "BDT", 10000, 1150, 11150, "রহিম", "01712345678",
				nil, nil, nil, "sandbox", "sbx_1", "account_closed", "The recipient's account is closed.", 1700000000001300, 1700000000001301, 1700000000001302}
		}},
	{"webhook_endpoints", 1, `INSERT INTO webhook_endpoints (id, account_id, livemode, url, event_types, description, secret, previous_secret, previous_expires, created, deleted)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(int) []any {
			return []any{"we_1", "acct_1", 0, "https://hooks.example.com/in", "payment.*,refund.succeeded", nil, "whsec_new", "whsec_old", 1700000000001401, 1700000000001400, nil}
		}},
	{"webhook_secrets", 1, `INSERT INTO webhook_secrets (account_id, livemode, secret, previous_secret, previous_expires, created) VALUES (?, ?, ?, ?, ?, ?)`,
		func(int) []any { return []any{"acct_1", 0, "whsec_acct", nil, nil, 1700000000001500} }},
	{"webhook_deliveries", 2, `INSERT INTO webhook_deliveries (id, account_id, livemode, event_id, endpoint_id, url, status, attempts, next_attempt, retry_from,
		last_attempt, last_code, last_error, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			if i == 1 {
				return []any{"whd_2", "acct_1", 0, "evt_0", nil, "https://shop.example.com/cb", "pending", 0, 1700000000001610, 1700000000001600, nil, nil, nil, 1700000000001600}
			}
			return []any{"whd_1", "acct_1", 0, "evt_0", "we_1", "https://hooks.example.com/in", "delivered", 2, nil, 1700000000001600, 1700000000001605, 200, nil, 1700000000001600}
		}},
	{"webhook_attempts", 2, `INSERT INTO webhook_attempts (account_id, livemode, event_id, delivery_id, n, url, attempted, http_status, latency_us, error, response)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		func(i int) []any {
			return []any{"acct_1", 0, "evt_0", "whd_1", i + 1, "https://hooks.example.com/in", 1700000000001601 + i, []any{nil, 200}[i], 1234, []any{"connection refused", nil}[i], []any{nil, "ok"}[i]}
		}},
	{"provider_events", 1, `INSERT INTO provider_events (provider, event_id, type, object_id, outcome, received) VALUES (?, ?, ?, ?, ?, ?)`,
		func(int) []any { return []any{"aspayds", "evt_up_1", "invoice.paid", nil, "applied", 1700000000001700} }},
	{"reconcile_checks", 1, `INSERT INTO reconcile_checks (object_id, account_id, livemode, attempts, next_check, last_error) VALUES (?, ?, ?, ?, ?, ?)`,
		func(int) []any { return []any{"pay_3", "acct_1", 0, 3, 1700000000001800, "aslan: timeout after 5s"} }},
	{"balance_locks", 1, `INSERT INTO balance_locks (account_id, livemode, currency) VALUES (?, ?, ?)`,
		func(int) []any { return []any{"acct_1", 0, "USD"} }},
	{"operator_items", 1, `INSERT INTO operator_items (id, account_id, livemode, object_id, kind, message, created, resolved) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		func(int) []any {
			return []any{"opi_1", "acct_1", 0, "re_1", "refund_pending", "The provider has no refund status call: ask it, then resolve.", 1700000000001900, nil}
		}},
	// A single SQLite process keeps its leases in memory, so a real source
	// has none; a copied one would only have expired.
	{"leases", 1, `INSERT INTO leases (account_id, livemode, name, owner, expires) VALUES (?, ?, ?, ?, ?)`,
		func(int) []any { return []any{"acct_1", 0, "reconcile/pay_1", "replica_1", 1700000000002000} }},
}

// fillCopySource makes a migrated SQLite database holding copyFixture.
func fillCopySource(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "source.db")
	if _, err := store.Migrate(ctx, path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range copyFixture {
		for i := range f.rows {
			if _, err := db.ExecContext(ctx, f.sql, f.args(i)...); err != nil {
				t.Fatalf("fixture for %s, row %d: %v", f.table, i, err)
			}
		}
	}
	return path
}

func openTarget(t *testing.T, target string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", target
	if strings.HasPrefix(target, "postgres") {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// tableRows reads every row of table with the columns in the given order,
// each value rendered with its kind (so that bytes copied as text, or an
// integer copied as a float, differ), sorted, so that two databases with
// different collations compare equal when they hold the same rows.
func tableRows(t *testing.T, db *sql.DB, table string, cols []string) []string {
	t.Helper()
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = `"` + c + `"`
	}
	rows, err := db.Query(`SELECT ` + strings.Join(quoted, ", ") + ` FROM "` + table + `"`)
	if err != nil {
		t.Fatalf("reading %s: %v", table, err)
	}
	defer rows.Close()
	var out []string
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				fmt.Fprintf(&b, "%s=NULL ", cols[i])
			case []byte:
				fmt.Fprintf(&b, "%s=bytes:%x ", cols[i], x)
			default:
				fmt.Fprintf(&b, "%s=%T:%v ", cols[i], x, x)
			}
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func columnsOf(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	return cols
}

// TestCopyDatabaseCopiesEveryTable copies a database with rows in every
// table (small batches, so that full batches and a last short one are both
// written) into a fresh SQLite file and, when PAYMENTD_TEST_POSTGRES is
// set, a fresh PostgreSQL database: every row arrives with every value and
// its kind unchanged, the counts are reported, and a second copy into the
// same target is refused without touching it.
func TestCopyDatabaseCopiesEveryTable(t *testing.T) {
	src := fillCopySource(t)
	srcDB := openTarget(t, src)

	// Every table of the schema has fixture rows: a table without them
	// would be copied by migrate-store without ever having been tested.
	var tables []string
	rows, err := srcDB.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name != 'schema_migrations' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, n := range tables {
		if !slices.ContainsFunc(copyFixture, func(f fixtureTable) bool { return f.table == n }) {
			t.Errorf("table %s has no rows in copyFixture (store/copy_test.go): add some, so that migrate-store's copy of it is tested", n)
		}
	}

	for _, tc := range []struct {
		name   string
		target func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "target.db") }},
		{"postgres", func(t *testing.T) string {
			return storetest.PostgresDSN(t)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			target := tc.target(t)
			var progressed int64
			report, err := store.CopyDatabase(ctx, src, target, store.CopyOptions{BatchRows: 7,
				Progress: func(string, int64, int64) { progressed++ }})
			if err != nil {
				t.Fatalf("CopyDatabase: %v", err)
			}
			if progressed == 0 {
				t.Error("Progress was never called")
			}
			dst := openTarget(t, target)
			var total int64
			for _, n := range tables {
				cols := columnsOf(t, srcDB, n)
				want, got := tableRows(t, srcDB, n, cols), tableRows(t, dst, n, cols)
				if !slices.Equal(got, want) {
					t.Errorf("table %s in the target:\n  %s\nwant (the source):\n  %s", n, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
				i := slices.IndexFunc(report.Tables, func(c store.CopiedTable) bool { return c.Name == n })
				if i < 0 {
					t.Errorf("the report does not name table %s", n)
					continue
				}
				if c := report.Tables[i]; c.Source != int64(len(want)) || c.Copied != c.Source || c.Target != c.Source {
					t.Errorf("report for %s = %+v; want %d rows everywhere", n, c, len(want))
				}
				total += int64(len(want))
			}
			if report.Rows() != total || len(report.Mismatches()) != 0 {
				t.Errorf("report: %d rows, mismatches %v; want %d rows, none", report.Rows(), report.Mismatches(), total)
			}

			// The next ledger entry gets an id after the copied ones (on
			// PostgreSQL the identity's sequence was moved past them).
			var next int64
			q := `INSERT INTO ledger_entries (account_id, livemode, currency, book, amount, source_id, created) VALUES ('acct_1', 0, 'USD', 'available', 1, 'x', 1) RETURNING id`
			if err := dst.QueryRow(q).Scan(&next); err != nil {
				t.Fatalf("a new ledger entry after the copy: %v", err)
			}
			if next <= 133 {
				t.Errorf("a new ledger entry got id %d; want one after the copied ids (up to 133)", next)
			}

			_, err = store.CopyDatabase(ctx, src, target, store.CopyOptions{})
			if !errors.Is(err, store.ErrTargetNotEmpty) || !strings.Contains(err.Error(), "payments") {
				t.Errorf("second CopyDatabase = %v; want ErrTargetNotEmpty naming the tables that hold rows", err)
			}
			if got := tableRows(t, dst, "payments", columnsOf(t, srcDB, "payments")); len(got) != 3 {
				t.Errorf("after the refused copy the target has %d payments; want the 3 of the first copy", len(got))
			}
		})
	}
}

// TestCopyDatabaseRefusesSchemasThatDiffer: a table only the target has
// (which nothing would fill), a table only the source has (whose rows would
// be lost), and a source that misses a migration are refused before a row
// is written, each with a message saying what to do.
func TestCopyDatabaseRefusesSchemasThatDiffer(t *testing.T) {
	ctx := context.Background()
	exec := func(t *testing.T, path, q string) {
		t.Helper()
		db := openTarget(t, path)
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	t.Run("table only in the target", func(t *testing.T) {
		src := fillCopySource(t)
		target := filepath.Join(t.TempDir(), "target.db")
		if _, err := store.Migrate(ctx, target); err != nil {
			t.Fatal(err)
		}
		exec(t, target, `CREATE TABLE fleet_leases (id TEXT PRIMARY KEY)`)
		_, err := store.CopyDatabase(ctx, src, target, store.CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), "fleet_leases") || !strings.Contains(err.Error(), "copyTargetOnly") {
			t.Errorf("CopyDatabase = %v; want an error naming fleet_leases and copyTargetOnly", err)
		}
		if n := len(tableRows(t, openTarget(t, target), "payments", []string{"id"})); n != 0 {
			t.Errorf("the refused copy wrote %d payments", n)
		}
	})
	t.Run("table only in the source", func(t *testing.T) {
		src := fillCopySource(t)
		exec(t, src, `CREATE TABLE notes (id TEXT PRIMARY KEY)`)
		_, err := store.CopyDatabase(ctx, src, filepath.Join(t.TempDir(), "target.db"), store.CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), "notes") {
			t.Errorf("CopyDatabase = %v; want an error naming table notes", err)
		}
	})
	t.Run("source not migrated", func(t *testing.T) {
		src := fillCopySource(t)
		exec(t, src, `DELETE FROM schema_migrations WHERE name = '0050_account_brand.sql'`)
		_, err := store.CopyDatabase(ctx, src, filepath.Join(t.TempDir(), "target.db"), store.CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), "paymentd migrate --db") {
			t.Errorf("CopyDatabase = %v; want an error saying to run paymentd migrate", err)
		}
	})
	t.Run("no source", func(t *testing.T) {
		_, err := store.CopyDatabase(ctx, filepath.Join(t.TempDir(), "missing.db"), filepath.Join(t.TempDir(), "target.db"), store.CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), "no SQLite database") {
			t.Errorf("CopyDatabase = %v; want an error saying there is no source database", err)
		}
	})
}
