package store

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/paymentd/paymentd"
)

// CheckResult is the outcome of one invariant check.
type CheckResult struct {
	Name     string   // the invariant, in words
	Checked  int64    // how many things were looked at
	Unit     string   // what they are, e.g. "entries"
	Problems []string // empty when the invariant holds
}

// CheckReport is the outcome of Check.
type CheckReport struct {
	Path    string
	Results []CheckResult
}

// OK reports whether every invariant holds.
func (r *CheckReport) OK() bool { return r.Failed() == 0 }

// Failed counts the invariants that do not hold.
func (r *CheckReport) Failed() int {
	n := 0
	for _, c := range r.Results {
		if len(c.Problems) > 0 {
			n++
		}
	}
	return n
}

// maxShown bounds the problems printed per check.
const maxShown = 20

// WriteTo prints the report: one line per check, then up to maxShown
// problems under each failed one.
func (r *CheckReport) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "paymentd check %s\n", r.Path)
	for _, c := range r.Results {
		mark := "ok  "
		if len(c.Problems) > 0 {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s  %s (%d %s)\n", mark, c.Name, c.Checked, c.Unit)
		for i, p := range c.Problems {
			if i == maxShown {
				fmt.Fprintf(&b, "        … and %d more\n", len(c.Problems)-maxShown)
				break
			}
			fmt.Fprintf(&b, "        %s\n", p)
		}
	}
	if r.OK() {
		fmt.Fprintf(&b, "All %d checks passed.\n", len(r.Results))
	} else {
		fmt.Fprintf(&b, "%d of %d checks FAILED.\n", r.Failed(), len(r.Results))
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// Check verifies the invariants of the database at path (a SQLite file or a
// PostgreSQL DSN) on one consistent snapshot, read-only, so it can run beside a serving paymentd:
//   - the database is fully migrated and its own check passes (SQLite's
//     integrity_check; on PostgreSQL, no index is invalid);
//   - the entries of every movement (same source, same currency) sum to zero;
//   - no book of the account's own money (available, pending, reserved,
//     payouts:*) is ever negative, replaying the entries in order;
//   - every checkpoint equals the sum of the entries it covers, and every
//     balance the API reports equals the sum of its entries;
//   - a capture or cancel waiting for its provider is only on an authorized
//     payment, for at most its capturable amount;
//   - each payment's provider entries equal its captured amount, and each
//     refund's equal its amount once it succeeded;
//   - refunds never exceed captures: the refunds still counting (pending or
//     succeeded) sum to the payment's amount_refunded, at most amount_captured;
//   - each payout's entries match its status: total_amount reserved while
//     pending or processing, paid out when completed, released otherwise.
func Check(ctx context.Context, path string) (*CheckReport, error) {
	sn, err := openSnapshot(ctx, path)
	if err != nil {
		return nil, err
	}
	defer sn.close()
	c := &checker{ctx: ctx, sn: sn}
	r := &CheckReport{Path: RedactDSN(path)}
	schema := c.schema()
	r.Results = append(r.Results, schema)
	if len(schema.Problems) > 0 {
		return r, nil // the other checks need the tables
	}
	for _, check := range []func() CheckResult{
		c.integrity, c.movements, c.books, c.payments, c.refunds, c.payouts,
	} {
		res := check()
		if c.err != nil {
			return nil, c.err
		}
		r.Results = append(r.Results, res)
	}
	return r, nil
}

type checker struct {
	ctx context.Context
	sn  *snapshot
	err error // a failure to read, as opposed to a broken invariant
}

// each runs query and calls row for every result row, recording a read error.
func (c *checker) each(query string, row func(scan func(...any) error) error, args ...any) {
	if c.err != nil {
		return
	}
	rows, err := c.sn.query(c.ctx, query, args...)
	if err != nil {
		c.err = fmt.Errorf("check: %w", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			c.err = fmt.Errorf("check: %w", err)
			return
		}
	}
	if err := rows.Err(); err != nil {
		c.err = fmt.Errorf("check: %w", err)
	}
}

func (c *checker) count(query string) int64 {
	var n int64
	c.each(query, func(scan func(...any) error) error { return scan(&n) })
	return n
}

func modeName(livemode bool) string {
	if livemode {
		return "live"
	}
	return "test"
}

func (c *checker) schema() CheckResult {
	res := CheckResult{Name: "schema is fully migrated", Unit: "migrations"}
	names, err := c.sn.d.migrationNames()
	if err != nil {
		c.err = err
		return res
	}
	applied := map[string]bool{}
	var hasTable int64
	c.each(c.sn.d.tableExists(), func(scan func(...any) error) error { return scan(&hasTable) }, "schema_migrations")
	if hasTable == 1 {
		c.each(`SELECT name FROM schema_migrations`, func(scan func(...any) error) error {
			var n string
			err := scan(&n)
			applied[n] = true
			return err
		})
	}
	for _, base := range names {
		res.Checked++
		if !applied[base] {
			res.Problems = append(res.Problems, "migration "+base+" is not applied; run `paymentd migrate --db PATH` first")
		}
	}
	return res
}

func (c *checker) integrity() CheckResult {
	res := CheckResult{Name: c.sn.d.integrityName(), Checked: 1, Unit: "database"}
	c.each(c.sn.d.integrityCheck(), func(scan func(...any) error) error {
		var line string
		if err := scan(&line); err != nil {
			return err
		}
		if line != "ok" {
			res.Problems = append(res.Problems, line)
		}
		return nil
	})
	return res
}

// movements: the entries of one source in one currency sum to zero, because
// every movement is written balanced (InsertLedgerEntries) with one source.
func (c *checker) movements() CheckResult {
	res := CheckResult{Name: "ledger movements balance (entries of each source and currency sum to zero)", Unit: "sources"}
	res.Checked = c.count(`SELECT count(*) FROM (SELECT 1 FROM ledger_entries GROUP BY account_id, livemode, source_id, currency) AS sources`)
	c.each(`SELECT account_id, livemode, source_id, currency, SUM(amount), count(*) FROM ledger_entries
		GROUP BY account_id, livemode, source_id, currency HAVING SUM(amount) != 0`,
		func(scan func(...any) error) error {
			var acct, src, cur string
			var live bool
			var sum, n int64
			if err := scan(&acct, &live, &src, &cur, &sum, &n); err != nil {
				return err
			}
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: the %d %s entries of source %q sum to %d, not 0",
				acct, modeName(live), n, cur, src, sum))
			return nil
		})
	return res
}

type bookKey struct{ currency, book string }

type checkpointRow struct {
	throughID int64
	sums      map[bookKey]int64
}

// books replays every account's entries in order (the ledger_by_owner index
// order), once: own books must never go below zero, each checkpoint must
// equal the sums at its through_id, and the balances the API reports (newest
// checkpoint plus later entries) must equal the full sums.
func (c *checker) books() CheckResult {
	res := CheckResult{Name: "books never negative; checkpoints and reported balances equal the sums of their entries", Unit: "entries"}
	type owner struct {
		account string
		live    bool
	}
	checkpoints := map[owner][]*checkpointRow{}
	c.each(`SELECT account_id, livemode, through_id, currency, book, balance FROM ledger_checkpoints
		ORDER BY account_id, livemode, through_id`, func(scan func(...any) error) error {
		var o owner
		var k bookKey
		var through, bal int64
		if err := scan(&o.account, &o.live, &through, &k.currency, &k.book, &bal); err != nil {
			return err
		}
		cps := checkpoints[o]
		if len(cps) == 0 || cps[len(cps)-1].throughID != through {
			cps = append(cps, &checkpointRow{throughID: through, sums: map[bookKey]int64{}})
			checkpoints[o] = cps
		}
		cps[len(cps)-1].sums[k] = bal
		return nil
	})
	nCheckpoints := 0
	for _, cps := range checkpoints {
		nCheckpoints += len(cps)
	}

	var cur owner
	started := false
	sums := map[bookKey]int64{}
	negative := map[bookKey]bool{}
	var pending []*checkpointRow
	compare := func(cp *checkpointRow) {
		for k, v := range cp.sums {
			if sums[k] != v {
				res.Problems = append(res.Problems, fmt.Sprintf("%s %s: checkpoint through entry %d says %s %s is %d; its entries sum to %d",
					cur.account, modeName(cur.live), cp.throughID, k.currency, k.book, v, sums[k]))
			}
		}
		for k, v := range sums {
			if _, ok := cp.sums[k]; !ok && v != 0 {
				res.Problems = append(res.Problems, fmt.Sprintf("%s %s: checkpoint through entry %d has no %s %s; its entries sum to %d",
					cur.account, modeName(cur.live), cp.throughID, k.currency, k.book, v))
			}
		}
	}
	type final struct {
		owner
		sums map[bookKey]int64
	}
	var finals []final
	finish := func() {
		if !started {
			return
		}
		for _, cp := range pending {
			compare(cp)
		}
		finals = append(finals, final{cur, sums})
		delete(checkpoints, cur)
	}
	c.each(`SELECT account_id, livemode, id, currency, book, amount FROM ledger_entries
		ORDER BY account_id, livemode, id`, func(scan func(...any) error) error {
		var o owner
		var id, amount int64
		var k bookKey
		if err := scan(&o.account, &o.live, &id, &k.currency, &k.book, &amount); err != nil {
			return err
		}
		if !started || o != cur {
			finish()
			cur, started = o, true
			sums, negative = map[bookKey]int64{}, map[bookKey]bool{}
			pending = checkpoints[o]
		}
		for len(pending) > 0 && pending[0].throughID < id {
			compare(pending[0])
			pending = pending[1:]
		}
		res.Checked++
		s, ok := paymentd.AddChecked(sums[k], amount)
		if !ok {
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: %s %s overflows int64 at entry %d", o.account, modeName(o.live), k.currency, k.book, id))
			return nil
		}
		sums[k] = s
		if s < 0 && OwnBook(k.book) && !negative[k] {
			negative[k] = true
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: %s %s goes negative (%d) at entry %d",
				o.account, modeName(o.live), k.currency, k.book, s, id))
		}
		return nil
	})
	finish()
	// Compared after the replay, so that no second query runs while its rows are open.
	for _, f := range finals {
		c.compareReported(&res, f.account, f.live, f.sums)
	}
	for o, cps := range checkpoints {
		for _, cp := range cps {
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: checkpoint through entry %d covers no entries", o.account, modeName(o.live), cp.throughID))
		}
	}
	res.Unit = fmt.Sprintf("entries, %d checkpoints", nCheckpoints)
	return res
}

// compareReported checks what Balances reports for one account and mode
// against the sums of all its entries.
func (c *checker) compareReported(res *CheckResult, account string, live bool, sums map[bookKey]int64) {
	reported := map[bookKey]int64{}
	c.each(balancesQuery, func(scan func(...any) error) error {
		var k bookKey
		var v int64
		if err := scan(&k.currency, &k.book, &v); err != nil {
			return err
		}
		reported[k] = v
		return nil
	}, account, boolInt(live))
	for k, v := range sums {
		if reported[k] != v {
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: the reported %s %s balance is %d; its entries sum to %d",
				account, modeName(live), k.currency, k.book, reported[k], v))
		}
	}
	for k, v := range reported {
		if _, ok := sums[k]; !ok && v != 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: the reported %s %s balance is %d but it has no entries",
				account, modeName(live), k.currency, k.book, v))
		}
	}
}

// payments: a payment's provider entries move exactly what it captured.
func (c *checker) payments() CheckResult {
	res := CheckResult{Name: "payments: provider entries equal amount_captured; pending captures and cancels only on authorized payments", Unit: "payments"}
	res.Checked = c.count(`SELECT count(*) FROM payments`)
	c.each(`SELECT p.account_id, p.livemode, p.id, p.amount_captured, COALESCE(-e.moved, 0) FROM payments p
		LEFT JOIN (SELECT source_id, SUM(amount) AS moved FROM ledger_entries WHERE book LIKE 'provider:%' GROUP BY source_id) e
		ON e.source_id = p.id WHERE COALESCE(-e.moved, 0) != p.amount_captured`, func(scan func(...any) error) error {
		var acct, id string
		var live bool
		var captured, moved int64
		if err := scan(&acct, &live, &id, &captured, &moved); err != nil {
			return err
		}
		res.Problems = append(res.Problems, fmt.Sprintf("%s %s: payment %s captured %d but its ledger entries collected %d",
			acct, modeName(live), id, captured, moved))
		return nil
	})
	// A capture or cancel waiting for its provider's answer is only ever on
	// an authorized payment, and a pending capture is of what is capturable.
	c.each(`SELECT account_id, livemode, id, status, pending_op, COALESCE(pending_amount, 0), amount_capturable FROM payments
		INDEXED BY payments_pending_op WHERE pending_op IS NOT NULL AND (status != 'requires_capture'
		OR pending_op NOT IN ('capture', 'cancel') OR (pending_op = 'capture' AND (pending_amount <= 0 OR pending_amount > amount_capturable)))`,
		func(scan func(...any) error) error {
			var acct, id, status, op string
			var live bool
			var amount, capturable int64
			if err := scan(&acct, &live, &id, &status, &op, &amount, &capturable); err != nil {
				return err
			}
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: payment %s is %s with a pending %s of %d (capturable %d)",
				acct, modeName(live), id, status, op, amount, capturable))
			return nil
		})
	return res
}

// refunds: refunds never exceed captures, and a succeeded refund's entries
// return exactly its amount to the provider.
func (c *checker) refunds() CheckResult {
	res := CheckResult{Name: "refunds: never above captures; succeeded refunds' entries equal their amounts", Unit: "refunds"}
	res.Checked = c.count(`SELECT count(*) FROM refunds`)
	c.each(`SELECT p.account_id, p.livemode, p.id, p.amount_captured, p.amount_refunded, COALESCE(r.counted, 0) FROM payments p
		LEFT JOIN (SELECT account_id, livemode, payment_id, SUM(amount) AS counted FROM refunds
			WHERE `+countedRefund+` GROUP BY account_id, livemode, payment_id) r
		ON r.account_id = p.account_id AND r.livemode = p.livemode AND r.payment_id = p.id
		WHERE p.amount_refunded > p.amount_captured OR COALESCE(r.counted, 0) != p.amount_refunded`,
		func(scan func(...any) error) error {
			var acct, id string
			var live bool
			var captured, refunded, counted int64
			if err := scan(&acct, &live, &id, &captured, &refunded, &counted); err != nil {
				return err
			}
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: payment %s captured %d, amount_refunded %d, pending and succeeded refunds sum to %d",
				acct, modeName(live), id, captured, refunded, counted))
			return nil
		})
	c.each(`SELECT r.account_id, r.livemode, r.id, r.status, r.amount, COALESCE(e.moved, 0) FROM refunds r
		LEFT JOIN (SELECT source_id, SUM(amount) AS moved FROM ledger_entries WHERE book LIKE 'provider:%' GROUP BY source_id) e
		ON e.source_id = r.id
		WHERE COALESCE(e.moved, 0) != CASE r.status WHEN 'succeeded' THEN r.amount ELSE 0 END`,
		func(scan func(...any) error) error {
			var acct, id, status string
			var live bool
			var amount, moved int64
			if err := scan(&acct, &live, &id, &status, &amount, &moved); err != nil {
				return err
			}
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: refund %s (%s, amount %d) returned %d to the provider in the ledger",
				acct, modeName(live), id, status, amount, moved))
			return nil
		})
	return res
}

// payouts: each payout's entries match its status.
func (c *checker) payouts() CheckResult {
	res := CheckResult{Name: "payouts: ledger entries match status (reserved, paid out or released)", Unit: "payouts"}
	res.Checked = c.count(`SELECT count(*) FROM payouts`)
	c.each(`SELECT p.account_id, p.livemode, p.id, p.status, p.currency, p.total_amount,
			COALESCE(SUM(CASE WHEN e.book = 'available' THEN e.amount END), 0),
			COALESCE(SUM(CASE WHEN e.book = 'reserved' THEN e.amount END), 0),
			COALESCE(SUM(CASE WHEN e.book = 'payouts:' || p.provider THEN e.amount END), 0),
			COALESCE(SUM(CASE WHEN e.book NOT IN ('available', 'reserved', 'payouts:' || p.provider) OR e.currency != p.currency THEN 1 END), 0)
		FROM payouts p LEFT JOIN (SELECT source_id, book, currency, amount FROM ledger_entries WHERE source_id LIKE 'po\_%' ESCAPE '\') e
		ON e.source_id = p.id
		GROUP BY p.account_id, p.livemode, p.id`, func(scan func(...any) error) error {
		var acct, id, status, cur string
		var live bool
		var total, avail, reserved, paid, stray int64
		if err := scan(&acct, &live, &id, &status, &cur, &total, &avail, &reserved, &paid, &stray); err != nil {
			return err
		}
		var want [3]int64 // available, reserved, paid out
		switch status {
		case "pending", "processing":
			want = [3]int64{-total, total, 0}
		case "completed":
			want = [3]int64{-total, 0, total}
		case "rejected", "cancelled":
			want = [3]int64{0, 0, 0}
		default:
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: payout %s has unknown status %q", acct, modeName(live), id, status))
			return nil
		}
		if got := [3]int64{avail, reserved, paid}; got != want || stray != 0 {
			res.Problems = append(res.Problems, fmt.Sprintf(
				"%s %s: payout %s (%s, total_amount %d %s) moved available %d, reserved %d, paid out %d (%d stray entries); want %d, %d, %d",
				acct, modeName(live), id, status, total, cur, avail, reserved, paid, stray, want[0], want[1], want[2]))
		}
		return nil
	})
	return res
}
