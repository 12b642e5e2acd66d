package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/store"
)

// reconcileCmd is `paymentd reconcile --config paymentd.yaml --db PATH`: it
// compares what paymentd recorded about every object at a provider
// connection with what the provider says now, for the providers that can
// read or list their objects, prints every difference and exits non-zero
// when there is any. It only reads, on both sides, so it can run beside a
// serving paymentd.
func reconcileCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reconcile", stderr)
	db := fs.String("db", "paymentd.db", dbUsage)
	config := fs.String("config", "", "provider configuration file (paymentd.yaml), as given to serve")
	timeout := fs.Duration("provider-timeout", 20*time.Second, "deadline of each read from a provider")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *config == "" {
		return errors.New("reconcile needs --config: the paymentd.yaml whose connections the objects were made through")
	}
	router, err := routing.Load(*config, routing.Options{Getenv: getenv, Timeout: *timeout,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := requireDB(*db); err != nil {
		return err
	}
	records, err := store.ProviderRecords(ctx, *db, "sandbox")
	if err != nil {
		return err
	}
	rep := reconcileRecords(ctx, router, records, *timeout)
	if _, err := io.WriteString(stdout, rep.String(store.RedactDSN(*db))); err != nil {
		return err
	}
	if n := len(rep.Differences) + len(rep.Unreadable); n > 0 {
		return fmt.Errorf("reconcile: %d difference(s) and %d object(s) that could not be read; each is listed above",
			len(rep.Differences), len(rep.Unreadable))
	}
	return nil
}

// reconcileReport is what reconcileRecords found.
type reconcileReport struct {
	Checked     int
	Agreed      int
	Differences []string // paymentd and the provider disagree
	Unsettled   []string // paymentd has not settled the object yet (not a difference)
	Unreadable  []string // the provider could not be asked
	Unchecked   map[string]int
}

func (r *reconcileReport) String(db string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "paymentd reconcile %s\n", db)
	for _, d := range r.Differences {
		fmt.Fprintf(&b, "DIFF     %s\n", d)
	}
	for _, d := range r.Unreadable {
		fmt.Fprintf(&b, "UNREAD   %s\n", d)
	}
	for _, d := range r.Unsettled {
		fmt.Fprintf(&b, "UNSETTLED %s\n", d)
	}
	keys := make([]string, 0, len(r.Unchecked))
	for k := range r.Unchecked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "skipped  %d %s: the provider has no way to read them\n", r.Unchecked[k], k)
	}
	fmt.Fprintf(&b, "%d object(s) compared with their provider: %d agree, %d differ, %d unreadable, %d not settled by paymentd yet.\n",
		r.Checked, r.Agreed, len(r.Differences), len(r.Unreadable), len(r.Unsettled))
	return b.String()
}

// reconcileRecords asks each record's connection about it.
func reconcileRecords(ctx context.Context, router *routing.Router, records []store.ProviderRecord, timeout time.Duration) *reconcileReport {
	rep := &reconcileReport{Unchecked: map[string]int{}}
	byConn := map[string][]store.ProviderRecord{}
	var conns []string
	for _, r := range records {
		if byConn[r.Provider] == nil {
			conns = append(conns, r.Provider)
		}
		byConn[r.Provider] = append(byConn[r.Provider], r)
	}
	for _, name := range conns {
		recs := byConn[name]
		conn, ok := router.Connection(name)
		if !ok {
			rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("%d object(s) of connection %s: the configuration has no such connection",
				len(recs), name))
			continue
		}
		rc := &connReconciler{ctx: ctx, conn: conn, rep: rep, timeout: timeout}
		rc.run(recs)
	}
	if router != nil {
		// Providers that list their payments: money taken for a payment
		// paymentd has no record of is a difference too.
		known := map[string]bool{}
		for _, r := range records {
			if r.Kind == "payment" {
				known[r.Provider+"\x00"+r.ID] = true
				if r.ProviderRef != "" {
					known[r.Provider+"\x00"+r.ProviderRef] = true
				}
			}
		}
		for _, conn := range router.Connections() {
			l, ok := conn.Client.(providers.PaymentLister)
			if !ok {
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, 10*timeout)
			err := l.ListPayments(lctx, func(p providers.ListedPayment) error {
				if known[conn.Name+"\x00"+p.Reference] || (p.PaymentdID != "" && known[conn.Name+"\x00"+p.PaymentdID]) {
					return nil
				}
				if p.Status == "captured" || p.Status == "authorized" {
					rep.Differences = append(rep.Differences, fmt.Sprintf(
						"payment %s at %s (%s %d%s, paymentd id %q): paymentd has no record of it", p.Reference, conn.Name,
						p.Status, p.Amount, strings.TrimRight(" "+p.Currency, " "), p.PaymentdID))
				}
				return nil
			})
			cancel()
			if err != nil {
				rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("the payment list of %s: %v", conn.Name, err))
			}
		}
	}
	return rep
}

type connReconciler struct {
	ctx     context.Context
	conn    *routing.Connection
	rep     *reconcileReport
	timeout time.Duration
}

func (c *connReconciler) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.timeout)
}

func (c *connReconciler) describe(r store.ProviderRecord) string {
	ref := r.ProviderRef
	if ref == "" {
		ref = "no provider id"
	}
	return fmt.Sprintf("%s %s at %s (%s)", r.Kind, r.ID, c.conn.Name, ref)
}

func (c *connReconciler) diff(r store.ProviderRecord, format string, args ...any) {
	c.rep.Differences = append(c.rep.Differences, c.describe(r)+": "+fmt.Sprintf(format, args...))
}

func (c *connReconciler) unreadable(r store.ProviderRecord, err error) {
	c.rep.Unreadable = append(c.rep.Unreadable, c.describe(r)+": "+err.Error())
}

func (c *connReconciler) run(recs []store.ProviderRecord) {
	var invoices, payouts []store.ProviderRecord
	for _, r := range recs {
		switch r.Kind {
		case "payment":
			c.payment(r)
		case "refund":
			// No provider paymentd connects to can read a refund back
			// (aikdata, Asyncpay and Aslan answer refunds but document no
			// read), so refunds are settled by the provider's answer alone.
			c.rep.Unchecked["refunds at "+c.conn.Name]++
		case "invoice":
			invoices = append(invoices, r)
		case "payout":
			payouts = append(payouts, r)
		}
	}
	c.invoices(invoices)
	c.payouts(payouts)
}

// notFound reports a provider error that says the object does not exist.
func notFound(err error) bool {
	var pe *providers.Error
	if errors.As(err, &pe) && (pe.Code == "resource_missing" || pe.Code == "provider_payment_not_found") {
		return true
	}
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "not found")
}

func (c *connReconciler) payment(r store.ProviderRecord) {
	g, ok := c.conn.Client.(providers.PaymentStatusGetter)
	if !ok {
		c.rep.Unchecked["payments at "+c.conn.Name]++
		return
	}
	c.rep.Checked++
	ref := r.ProviderRef
	if ref == "" {
		ref = r.ID
	}
	ctx, cancel := c.call()
	st, err := g.GetPayment(ctx, ref)
	cancel()
	unsettled := r.Status == "unknown" || r.Status == "processing"
	switch {
	case err != nil && notFound(err):
		if unsettled {
			c.rep.Unsettled = append(c.rep.Unsettled, c.describe(r)+": "+r.Status+" in paymentd; the provider has no such payment")
			return
		}
		if r.Captured > 0 || r.Status == "requires_capture" {
			c.diff(r, "paymentd says %s with %d %s captured; the provider has no such payment", r.Status, r.Captured, r.Currency)
			return
		}
		c.rep.Agreed++
		return
	case err != nil:
		c.unreadable(r, err)
		return
	}
	if st.Currency != "" && !strings.EqualFold(st.Currency, r.Currency) {
		c.diff(r, "paymentd says %s; the provider says %s", r.Currency, st.Currency)
		return
	}
	switch {
	case unsettled:
		c.rep.Unsettled = append(c.rep.Unsettled, fmt.Sprintf("%s: %s in paymentd; the provider says %s %d %s",
			c.describe(r), r.Status, st.Status, st.Amount, st.Currency))
		return
	case st.Status == "captured" && r.Captured == 0:
		c.diff(r, "paymentd says %s with nothing captured; the provider captured %d %s", r.Status, st.Amount, r.Currency)
	case st.Status == "captured" && st.Amount != r.Captured:
		c.diff(r, "paymentd captured %d %s; the provider captured %d", r.Captured, r.Currency, st.Amount)
	case st.Status == "authorized" && r.Status != "requires_capture" && r.Status != "canceled":
		c.diff(r, "paymentd says %s; the provider holds an authorization of %d %s", r.Status, st.Amount, r.Currency)
	case (st.Status == "failed" || st.Status == "pending") && r.Captured > 0:
		c.diff(r, "paymentd captured %d %s; the provider says %s", r.Captured, r.Currency, st.Status)
	case st.Status != "captured" && st.Status != "authorized" && st.Status != "failed" && st.Status != "pending":
		c.diff(r, "the provider reports status %q, which paymentd cannot compare", st.Status)
	default:
		c.rep.Agreed++
	}
}

// providerRead is a provider's answer about one object.
type providerRead[S any] struct {
	st    S
	found bool
	err   error
}

// readAtProvider asks the provider about every record's object: in batches of
// 100 where batch is set, then one by one with get for what no batch
// answered. A record the provider cannot be asked about has no entry
// (nil), so that the caller counts it as unchecked.
func readAtProvider[S any](c *connReconciler, recs []store.ProviderRecord,
	batch func(context.Context, []string) ([]S, error), refOf func(S) string,
	get func(context.Context, string) (S, error)) []*providerRead[S] {
	byRef := map[string]providerRead[S]{}
	if batch != nil {
		var ids []string
		for _, r := range recs {
			if r.ProviderRef != "" {
				ids = append(ids, r.ProviderRef)
			}
		}
		for len(ids) > 0 {
			n := min(len(ids), 100)
			ctx, cancel := c.call()
			found, err := batch(ctx, ids[:n])
			cancel()
			for _, id := range ids[:n] {
				byRef[id] = providerRead[S]{err: err}
			}
			for _, st := range found {
				byRef[refOf(st)] = providerRead[S]{st: st, found: true}
			}
			ids = ids[n:]
		}
	}
	out := make([]*providerRead[S], len(recs))
	for i, r := range recs {
		ref := r.ProviderRef
		if ref == "" {
			ref = r.Reference
		}
		rd, ok := byRef[ref]
		if !ok {
			if get == nil {
				continue
			}
			ctx, cancel := c.call()
			st, err := get(ctx, ref)
			cancel()
			rd = providerRead[S]{st: st, found: err == nil, err: err}
			if notFound(err) {
				rd.err = nil
			}
		}
		out[i] = &rd
	}
	return out
}

func (c *connReconciler) invoices(recs []store.ProviderRecord) {
	if len(recs) == 0 {
		return
	}
	var batch func(context.Context, []string) ([]providers.InvoiceState, error)
	if b, ok := c.conn.Client.(providers.InvoiceBatchGetter); ok {
		batch = func(ctx context.Context, ids []string) ([]providers.InvoiceState, error) {
			found, _, err := b.BatchInvoices(ctx, ids)
			return found, err
		}
	}
	var get func(context.Context, string) (providers.InvoiceState, error)
	if g, ok := c.conn.Client.(providers.Invoices); ok {
		get = g.GetInvoice
	}
	reads := readAtProvider(c, recs, batch, func(st providers.InvoiceState) string { return st.Reference }, get)
	for i, r := range recs {
		rd := reads[i]
		if rd == nil {
			c.rep.Unchecked["invoices at "+c.conn.Name]++
			continue
		}
		c.rep.Checked++
		switch {
		case rd.err != nil:
			c.unreadable(r, rd.err)
		case !rd.found && r.Paid > 0:
			c.diff(r, "paymentd says %s with %d %s paid; the provider has no such invoice", r.Status, r.Paid, r.Currency)
		case !rd.found && r.ProviderRef != "":
			c.diff(r, "paymentd says %s; the provider has no such invoice", r.Status)
		case !rd.found:
			c.rep.Agreed++ // never created at the provider
		case rd.st.AmountPaid != r.Paid:
			c.diff(r, "paymentd says %s with %d %s paid; the provider says %s with %d %s paid (minor units)", r.Status, r.Paid, r.Currency,
				rd.st.Status, rd.st.AmountPaid, r.Currency)
		case rd.st.Status == "paid" && r.Status != "paid":
			c.diff(r, "paymentd says %s; the provider says paid", r.Status)
		default:
			c.rep.Agreed++
		}
	}
}

func (c *connReconciler) payouts(recs []store.ProviderRecord) {
	if len(recs) == 0 {
		return
	}
	var batch func(context.Context, []string) ([]providers.PayoutState, error)
	if b, ok := c.conn.Client.(providers.PayoutBatchGetter); ok {
		batch = func(ctx context.Context, ids []string) ([]providers.PayoutState, error) {
			found, _, err := b.BatchPayouts(ctx, ids)
			return found, err
		}
	}
	var get func(context.Context, string) (providers.PayoutState, error)
	if g, ok := c.conn.Client.(providers.Payouts); ok {
		get = g.GetPayout
	}
	// A payout the provider never answered is asked for by the reference
	// it was sent under: aspayds' is paymentd's payout id, not the caller's
	// transaction reference (unique only per account and mode).
	if pr, ok := c.conn.Client.(interface{ PayoutReference(id, ref string) string }); ok {
		asked := make([]store.ProviderRecord, len(recs))
		for i, r := range recs {
			r.Reference = pr.PayoutReference(r.ID, r.Reference)
			asked[i] = r
		}
		recs = asked
	}
	reads := readAtProvider(c, recs, batch, func(st providers.PayoutState) string { return st.Reference }, get)
	for i, r := range recs {
		rd := reads[i]
		if rd == nil {
			c.rep.Unchecked["payouts at "+c.conn.Name]++
			continue
		}
		c.rep.Checked++
		moving := r.Status == "pending" || r.Status == "processing"
		switch {
		case rd.err != nil:
			c.unreadable(r, rd.err)
		case !rd.found && (r.Status == "completed" || (moving && r.ProviderRef != "")):
			c.diff(r, "paymentd says %s; the provider has no such payout", r.Status)
		case !rd.found:
			c.rep.Agreed++
		case rd.st.Amount != 0 && rd.st.Amount != r.Amount:
			c.diff(r, "paymentd pays out %d %s; the provider says %d", r.Amount, r.Currency, rd.st.Amount)
		case rd.st.Status == "completed" && r.Status != "completed":
			c.diff(r, "paymentd says %s; the provider completed the payout", r.Status)
		case r.Status == "completed" && rd.st.Status != "completed":
			c.diff(r, "paymentd says completed; the provider says %s", rd.st.Status)
		case moving && rd.st.Status != "pending" && rd.st.Status != "processing":
			c.rep.Unsettled = append(c.rep.Unsettled, fmt.Sprintf("%s: %s in paymentd; the provider says %s", c.describe(r), r.Status, rd.st.Status))
		case !moving && (rd.st.Status == "pending" || rd.st.Status == "processing"):
			c.diff(r, "paymentd says %s; the provider may still pay it out (%s)", r.Status, rd.st.Status)
		default:
			c.rep.Agreed++
		}
	}
}
