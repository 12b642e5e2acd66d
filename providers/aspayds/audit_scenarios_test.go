package aspayds_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
)

func TestAuditInvoiceLifecycleBooks(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	for _, amt := range []int64{1, 10, 100, 12345, 10000, 5000000, 123456789012} {
		req := auInvReq(amt)
		st, err := c.CreateInvoice(ctx, req)
		if err != nil {
			t.Fatalf("CreateInvoice(%d): %v", amt, err)
		}
		inv := f.invoices[st.Reference]
		if inv == nil {
			t.Fatalf("adapter reported invoice %q the fake does not have", st.Reference)
		}
		if inv.Amount != amt {
			t.Errorf("amount %d minor: fake books %d minor", amt, inv.Amount)
		}
		if st.Amount != amt || st.Currency != "BDT" || st.Status != "open" || st.PaymentURL == "" {
			t.Errorf("CreateInvoice state = %+v", st)
		}
		if inv.Ref != req.Reference {
			t.Logf("transaction_reference sent %q; caller's %q; paymentd id %q", inv.Ref, req.Reference, req.IdempotencyKey)
		}
		// partial receipt
		half := amt / 2
		if half > 0 {
			f.pay(inv.ID, half)
			g, err := c.GetInvoice(ctx, inv.ID)
			if err != nil {
				t.Fatalf("GetInvoice partial: %v", err)
			}
			if g.Status != "partially_paid" || g.AmountPaid != half {
				t.Errorf("partial %d of %d: adapter %s paid %d; fake books paid %d", half, amt, g.Status, g.AmountPaid, inv.Paid)
			}
		}
		f.pay(inv.ID, amt-half)
		g, err := c.GetInvoice(ctx, inv.ID)
		if err != nil {
			t.Fatalf("GetInvoice paid: %v", err)
		}
		if g.Status != "paid" || g.AmountPaid != inv.Paid {
			t.Errorf("paid: adapter %+v; fake books paid %d", g, inv.Paid)
		}
	}
}

func TestAuditInvoiceOverpaymentAndUnderpaidPaid(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	st, err := c.CreateInvoice(ctx, auInvReq(10000))
	if err != nil {
		t.Fatal(err)
	}
	f.pay(st.Reference, 15000)
	g, err := c.GetInvoice(ctx, st.Reference)
	if err != nil || g.AmountPaid != 15000 || g.Status != "paid" {
		t.Errorf("overpaid: %+v %v; fake paid 15000", g, err)
	}
	// a provider "paid" answer whose amount_paid is below the invoice amount
	st2, _ := c.CreateInvoice(ctx, auInvReq(10000))
	f.mu.Lock()
	f.invoices[st2.Reference].Paid = 5000
	f.invoices[st2.Reference].Status = "paid"
	f.mu.Unlock()
	g, err = c.GetInvoice(ctx, st2.Reference)
	t.Logf("paid with amount_paid 50.00 of 100.00: %+v err=%v", g, err)
	if err == nil && g.Status == "paid" && g.AmountPaid < 10000 {
		// harmless: paymentd moves an invoice to paid only from amount_paid receipts
		t.Logf("adapter reports status paid for an invoice paid 5000 of 10000 minor: %+v", g)
	}
}

// GET /payment/{id} answers only invoice_id, status, amount_paid, paid_at.
func TestAuditGetInvoiceDocumentedFieldsOnly(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	st, err := c.CreateInvoice(ctx, auInvReq(10000))
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.GetInvoice(ctx, st.Reference)
	if err != nil {
		t.Fatalf("GetInvoice with the documented 4-field answer: %v", err)
	}
	t.Logf("GetInvoice = %+v", g)
	if g.Status != "open" {
		t.Errorf("pending, amount_paid 0 → %q, want open", g.Status)
	}
}

func TestAuditAmountForms(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	st, _ := c.CreateInvoice(ctx, auInvReq(10000))
	for _, form := range []string{"100", "100.0", "100.00", "1e2", "1.0E+2", "100.000", `"100.00"`} {
		f.getRaw = func(inv *auInvoice) string {
			return `{"invoice_id":"` + inv.ID + `","status":"paid","amount_paid":` + form + `,"paid_at":"2023-12-29T14:30:00Z"}`
		}
		g, err := c.GetInvoice(ctx, st.Reference)
		if err != nil || g.AmountPaid != 10000 {
			t.Errorf("amount_paid %s: got %d err=%v", form, g.AmountPaid, err)
		}
	}
	for _, form := range []string{"100.005", "-1", "-0.01", `"-1"`, "1e400", "1e-3", "null", `""`, `"abc"`} {
		f.getRaw = func(inv *auInvoice) string {
			return `{"invoice_id":"` + inv.ID + `","status":"paid","amount_paid":` + form + `,"paid_at":"2023-12-29T14:30:00Z"}`
		}
		g, err := c.GetInvoice(ctx, st.Reference)
		t.Logf("amount_paid %s: %+v err=%v (%s)", form, g, err, kind(err))
		if err == nil && g.Status == "paid" {
			t.Errorf("amount_paid %s accepted as paid with %d", form, g.AmountPaid)
		}
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Code != "provider_malformed_answer" || pe.Kind == providers.InvalidRequest {
			t.Errorf("amount_paid %s: err=%v; want provider_malformed_answer, left for the reconciler to ask again", form, err)
		}
	}
}

func TestAuditInvoiceRefusedBeforeCall(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	cases := map[string]func(*providers.InvoiceRequest){
		"currency USD":     func(r *providers.InvoiceRequest) { r.Currency = "USD" },
		"network tron":     func(r *providers.InvoiceRequest) { r.Network = "tron"; r.Currency = "USDT" },
		"bdt network":      func(r *providers.InvoiceRequest) { r.Network = "tron" },
		"ref 21 chars":     func(r *providers.InvoiceRequest) { r.Reference = strings.Repeat("R", 21) },
		"ref 20 runes utf": func(r *providers.InvoiceRequest) { r.Reference = strings.Repeat("é", 11) },
		"no name":          func(r *providers.InvoiceRequest) { r.CustomerName = "" },
		"name 256":         func(r *providers.InvoiceRequest) { r.CustomerName = strings.Repeat("n", 256) },
		"zero amount":      func(r *providers.InvoiceRequest) { r.Amount = 0 },
		"negative":         func(r *providers.InvoiceRequest) { r.Amount = -100 },
		"no callback":      func(r *providers.InvoiceRequest) { r.CallbackURL = "" },
		"no reference":     func(r *providers.InvoiceRequest) { r.Reference = "" },
	}
	for name, mod := range cases {
		req := auInvReq(10000)
		mod(&req)
		n := f.ncalls()
		st, err := c.CreateInvoice(ctx, req)
		called := f.ncalls() - n
		t.Logf("%s: err=%v kind=%s calls=%d st=%+v", name, err, kind(err), called, st.Reference)
		if err == nil && called > 0 {
			f.mu.Lock()
			inv := f.invoices[st.Reference]
			f.mu.Unlock()
			if inv != nil {
				t.Logf("  %s: created at fake with ref %q", name, inv.Ref)
			}
		}
		if err != nil && called > 0 {
			t.Errorf("%s: refused only after a call reached aspayds (%v)", name, err)
		}
		if want, refuse := refusedParam[name]; refuse {
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Kind != providers.InvalidRequest || pe.Param != want {
				t.Errorf("%s: err=%v; want an InvalidRequest naming %s, before any call", name, err, want)
			}
		}
	}
}

// refusedParam: the cases of TestAuditInvoiceRefusedBeforeCall aspayds
// cannot take, and the parameter each refusal names.
var refusedParam = map[string]string{
	"currency USD": "currency", "network tron": "currency", "bdt network": "network",
	"ref 21 chars": "transaction_reference", "no name": "customer.name", "name 256": "customer.name",
	"zero amount": "amount", "negative": "amount", "no callback": "callback_url", "no reference": "transaction_reference",
}

func TestAuditInvoiceCreateAmbiguous(t *testing.T) {
	for _, flt := range []string{"500-after", "hang-after"} {
		t.Run(flt, func(t *testing.T) {
			f := newAuFake(t)
			c := newAuClient(t, f, nil)
			f.fault("/payment/create", flt)
			ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
			defer cancel()
			req := auInvReq(10000)
			_, err := c.CreateInvoice(ctx, req)
			f.mu.Lock() // a hanging handler may still be running
			n := len(f.invoices)
			f.mu.Unlock()
			t.Logf("%s: err=%v kind=%s; fake has %d invoices; create calls %d", flt, err, kind(err), n, f.callsTo("/payment/create"))
			if n == 1 && providers.KindOf(err) != providers.Unknown && err != nil {
				t.Errorf("invoice exists at aspayds but adapter said %s", kind(err))
			}
			if n > 1 {
				t.Errorf("duplicate invoices at aspayds: %d", n)
			}
			// FindInvoice must find it
			st, found, err := c.FindInvoice(context.Background(), req)
			f.mu.Lock()
			known := f.invoices[st.Reference] != nil
			f.mu.Unlock()
			if err != nil || !found || !known {
				t.Errorf("FindInvoice after lost create: %+v found=%v err=%v", st, found, err)
			}
		})
	}
}

// {id} can be the invoice_number OR transaction_reference: a caller's
// transaction_reference equal to another invoice's invoice_id reads that
// other invoice.
func TestAuditReferenceCollidesWithInvoiceID(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	a, err := c.CreateInvoice(ctx, auInvReq(10000))
	if err != nil {
		t.Fatal(err)
	}
	f.pay(a.Reference, 10000) // A is paid
	req := auInvReq(10000)
	req.Reference = a.Reference // the caller's reference is A's invoice id (20 chars, fits)
	// the create answer is lost
	f.fault("/payment/create", "500-after")
	_, err = c.CreateInvoice(ctx, req)
	t.Logf("create B: %v (%s)", err, kind(err))
	st, found, err := c.FindInvoice(ctx, req)
	t.Logf("FindInvoice(B) = %+v found=%v err=%v", st, found, err)
	if err == nil && found && st.Reference == a.Reference {
		t.Errorf("FindInvoice for B answered invoice A (%s, status %s, paid %d): B would be taken for paid; fake: B is %+v",
			st.Reference, st.Status, st.AmountPaid, *f.invByRef[req.Reference])
	}
	_, err = c.CreateInvoice(ctx, func() providers.InvoiceRequest { r := auInvReq(100); r.Reference = "ATINV17038392000001"; return r }())
	t.Logf("create with a reference shaped like an invoice id: %v", err)
}

func TestAuditInvoiceBatch(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	a, _ := c.CreateInvoice(ctx, auInvReq(10000))
	breq := auInvReq(50000)
	b, _ := c.CreateInvoice(ctx, breq)
	f.pay(a.Reference, 10000)
	f.pay(b.Reference, 100)
	found, nf, err := c.BatchInvoices(ctx, []string{a.Reference, breq.Reference, "NOPE"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("batch found=%+v nf=%v", found, nf)
	if len(found) != 2 || len(nf) != 1 || nf[0] != "NOPE" {
		t.Fatalf("batch: found %d notFound %v", len(found), nf)
	}
	for _, g := range found {
		inv := f.invoices[g.Reference]
		if inv == nil || g.Amount != inv.Amount || g.AmountPaid != inv.Paid {
			t.Errorf("batch %+v vs books %+v", g, inv)
		}
	}
}

func TestAuditPayoutMethods(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ms, err := c.PayoutMethods(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		fm := f.methods[i]
		if m.MinAmount != fm.Min || m.MaxAmount != fm.Max || m.Currency != "BDT" || m.ID != "1" && m.ID != "2" {
			t.Errorf("method %+v vs fake %+v", m, fm)
		}
		t.Logf("method %+v", m)
	}
}

func TestAuditPayoutBooks(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	var wantAmt, wantFee int64
	for i, tc := range []struct {
		method string
		amount int64
		final  string
	}{{"1", 50000, "completed"}, {"2", 12345, "completed"}, {"1", 10000, "rejected"}, {"1", 5000000, "cancelled"}, {"2", 5001, "processing"}} {
		req := auPoReq(tc.amount)
		req.MethodID = tc.method
		st, err := c.CreatePayout(ctx, req)
		if err != nil {
			t.Fatalf("%d CreatePayout: %v", i, err)
		}
		p := f.payouts[st.Reference]
		if p == nil {
			t.Fatalf("adapter reference %q not at fake", st.Reference)
		}
		if st.Status != "pending" || st.Amount != p.Amount || st.Fee != p.Fee || st.TotalAmount != p.Amount+p.Fee {
			t.Errorf("%d create: adapter %+v; fake amount %d fee %d total %d", i, st, p.Amount, p.Fee, p.Amount+p.Fee)
		}
		f.setPayout(p.ID, tc.final)
		// read back by the transaction_reference paymentd sent: its payout id
		g, err := c.GetPayout(ctx, req.IdempotencyKey)
		if p.Ref != req.IdempotencyKey {
			t.Errorf("%d: transaction_reference sent %q; want paymentd's payout id %q", i, p.Ref, req.IdempotencyKey)
		}
		if err != nil || g.Status != tc.final || g.Amount != p.Amount || g.Fee != p.Fee || g.TotalAmount != p.Amount+p.Fee {
			t.Errorf("%d get: %+v err=%v; fake %+v", i, g, err, *p)
		}
		if tc.final == "completed" {
			wantAmt += st.Amount
			wantFee += st.Fee
		}
	}
	amt, fee := f.sent()
	if amt != wantAmt || fee != wantFee {
		t.Errorf("books: fake sent %d + fee %d; adapter reported %d + %d", amt, fee, wantAmt, wantFee)
	}
	found, nf, err := c.BatchPayouts(ctx, []string{"ATPAY17038392000001", "nope"})
	t.Logf("batch payouts %+v %v %v", found, nf, err)
}

func TestAuditPayoutLimitsAndRefusals(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	cases := map[string]func(*providers.PayoutRequest){
		"below min": func(r *providers.PayoutRequest) { r.Amount = 9999 },
		"above max": func(r *providers.PayoutRequest) { r.Amount = 5000001 },
		"USD":       func(r *providers.PayoutRequest) { r.Currency = "USD" },
		// the transaction_reference sent is paymentd's payout id
		"ref 51":     func(r *providers.PayoutRequest) { r.IdempotencyKey = "po_" + strings.Repeat("r", 48) },
		"no ref":     func(r *providers.PayoutRequest) { r.IdempotencyKey = "" },
		"bad method": func(r *providers.PayoutRequest) { r.MethodID = "x" },
		"no acct":    func(r *providers.PayoutRequest) { r.RecipientAccount = "" },
	}
	for name, mod := range cases {
		req := auPoReq(50000)
		mod(&req)
		n := f.ncalls()
		st, err := c.CreatePayout(ctx, req)
		t.Logf("%s: err=%v kind=%s calls=%d st=%+v", name, err, kind(err), f.ncalls()-n, st)
		if err == nil {
			t.Errorf("%s: accepted (%+v)", name, st)
		} else if k := providers.KindOf(err); k == providers.Unknown {
			t.Errorf("%s: a documented refusal reported as Unknown", name)
		}
	}
}

func TestAuditPayoutAmbiguous(t *testing.T) {
	for _, flt := range []string{"500-after", "hang-after", "500-before"} {
		t.Run(flt, func(t *testing.T) {
			f := newAuFake(t)
			c := newAuClient(t, f, nil)
			f.fault("/payout/request", flt)
			ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
			defer cancel()
			req := auPoReq(50000)
			st, err := c.CreatePayout(ctx, req)
			f.mu.Lock() // a hanging handler may still be running
			n, known := len(f.payouts), f.payouts[st.Reference] != nil
			f.mu.Unlock()
			t.Logf("%s: st=%+v err=%v kind=%s; fake payouts %d; calls %d", flt, st, err, kind(err), n, f.callsTo("/payout/request"))
			if err != nil && providers.KindOf(err) != providers.Unknown {
				t.Errorf("%s: payout may exist at aspayds but adapter said %s", flt, kind(err))
			}
			if n > 1 {
				t.Errorf("duplicate payouts")
			}
			if err == nil && !known {
				t.Errorf("reference not at fake")
			}
		})
	}
}

func TestAuditWebhooks(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	now := time.Now()
	st, _ := c.CreateInvoice(ctx, auInvReq(10000))
	inv := f.invoices[st.Reference]
	data := `{"invoice_id":"` + inv.ID + `","transaction_reference":"` + inv.Ref + `","status":"completed","amount":100.00,"amount_paid":100.00,"currency":"BDT","customer_name":"John Doe","paid_at":"2026-02-09T21:30:00.000Z"}`
	h, b := auWebhook("payment.completed", now, data)
	ev, err := c.ParseWebhook(h, b, now)
	if err != nil {
		t.Fatalf("documented webhook refused: %v", err)
	}
	t.Logf("event %+v", ev)
	if ev.Reference != inv.ID || ev.ObjectKind != "invoice" {
		t.Errorf("event %+v", ev)
	}
	// forged: invoice is unpaid at the fake; confirmation must say so
	cev, err := c.ConfirmWebhook(ctx, ev)
	t.Logf("confirmed %+v err=%v", cev, err)
	if err != nil || cev.Status == "paid" || cev.Status == "completed" {
		t.Errorf("forged payment.completed for an unpaid invoice confirmed as %q (fake: %s, paid %d)", cev.Status, inv.Status, inv.Paid)
	}
	// replayed with an old timestamp
	h, b = auWebhook("payment.completed", now.Add(-time.Hour), data)
	if _, err := c.ParseWebhook(h, b, now); !errors.Is(err, providers.ErrWebhookSignature) {
		t.Errorf("hour-old webhook: %v", err)
	}
	// header event disagrees with body
	h, b = auWebhook("payment.completed", now, data)
	h.Set("X-Webhook-Event", "payout.completed")
	if _, err := c.ParseWebhook(h, b, now); err == nil {
		t.Errorf("header/body event mismatch accepted")
	}
	// header timestamp fresh, body timestamp old (altered)
	h, b = auWebhook("payment.completed", now.Add(-time.Hour), data)
	h.Set("X-Webhook-Timestamp", strconv64(now.Unix()))
	_, err = c.ParseWebhook(h, b, now)
	t.Logf("fresh header ts, hour-old body timestamp: %v", err)
	// payout webhook
	req := auPoReq(50000)
	ps, _ := c.CreatePayout(ctx, req)
	for _, ev := range []string{"payout.completed", "payout.processing", "payout.rejected", "payout.cancelled"} {
		st := strings.TrimPrefix(ev, "payout.")
		h, b := auWebhook(ev, now, `{"payout_id":"`+ps.Reference+`","transaction_reference":"`+req.Reference+`","status":"`+st+`","amount":500.00,"fee":0.00,"recipient_name":"John Doe","recipient_account":"01712345678","processed_at":"2026-02-09T21:30:00.000Z"}`)
		e, err := c.ParseWebhook(h, b, now)
		if err != nil || e.ObjectKind != "payout" || e.Reference != ps.Reference || e.Status != st {
			t.Errorf("%s: %+v %v", ev, e, err)
		}
		ce, err := c.ConfirmWebhook(ctx, e)
		if err != nil || ce.Status != "pending" {
			t.Errorf("%s confirm: %+v %v (fake: pending)", ev, ce, err)
		}
	}
	// milliseconds in X-Webhook-Timestamp?
	h, b = auWebhook("payment.completed", now, data)
	h.Set("X-Webhook-Timestamp", strconv64(now.UnixMilli()))
	_, err = c.ParseWebhook(h, b, now)
	t.Logf("ms timestamp header: %v", err)
	// no header at all
	h, b = auWebhook("payment.completed", now, data)
	h.Del("X-Webhook-Timestamp")
	if _, err := c.ParseWebhook(h, b, now); err == nil {
		t.Errorf("webhook without X-Webhook-Timestamp accepted")
	}
}

func strconv64(v int64) string { return strconv.FormatInt(v, 10) }

func TestAuditPathEscaping(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	req := auInvReq(10000)
	req.Reference = "A/B?x=1#f"
	st, err := c.CreateInvoice(ctx, req)
	if err != nil {
		t.Logf("create with odd ref: %v", err)
		return
	}
	g, err := c.GetInvoice(ctx, req.Reference)
	if err != nil || g.Reference != st.Reference {
		t.Errorf("GetInvoice(%q) = %+v %v", req.Reference, g, err)
	}
}

// Two paymentd accounts share one aspayds store (routes are per operation,
// mode and currency, not per account) and transaction references are
// unique only per account: the same caller reference can reach aspayds twice.
func TestAuditPayoutRecoverFindsAnotherPayout(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	x := auPoReq(50000)
	x.RecipientAccount = "01700000001"
	px, err := c.CreatePayout(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	// account Y, same reference and amount, another recipient; its first
	// attempt is lost before aspayds processed it, the retry is refused as a
	// duplicate reference.
	y := auPoReq(50000)
	y.Reference, y.RecipientAccount = x.Reference, "01799999999"
	f.fault("/payout/request", "500-before")
	py, err := c.CreatePayout(ctx, y)
	t.Logf("Y: %+v err=%v (%s); fake payouts %d", py, err, kind(err), len(f.payouts))
	if err == nil && py.Reference == px.Reference {
		t.Errorf("payout to %s reported created as %s, which is the payout to %s (fake: %+v); nothing was sent to %s",
			y.RecipientAccount, py.Reference, f.payouts[px.Reference].Account, *f.payouts[px.Reference], y.RecipientAccount)
	}
	// the same with a caller reference that is another payout's payout_id
	z := auPoReq(50000)
	z.Reference, z.RecipientAccount = px.Reference, "01788888888"
	f.fault("/payout/request", "500-after")
	pz, err := c.CreatePayout(ctx, z)
	t.Logf("Z: %+v err=%v (%s)", pz, err, kind(err))
	if err == nil && pz.Reference == px.Reference {
		t.Errorf("payout Z (reference %s) reported as payout %s of another recipient", z.Reference, pz.Reference)
	}
	// GetPayout by a reference that is another payout's id
	g, err := c.GetPayout(ctx, z.Reference)
	t.Logf("GetPayout(%s) = %+v %v; fake has Z as %+v", z.Reference, g, err, f.poByRef[z.Reference])
}

func TestAuditInvoiceFindSameReferenceOtherAccount(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	x := auInvReq(10000)
	ix, _ := c.CreateInvoice(ctx, x)
	f.pay(ix.Reference, 10000)
	y := auInvReq(25000)
	y.Reference = x.Reference
	f.fault("/payment/create", "500-before")
	_, err := c.CreateInvoice(ctx, y)
	t.Logf("Y create: %v (%s)", err, kind(err))
	st, found, err := c.FindInvoice(ctx, y)
	t.Logf("FindInvoice(Y) = %+v found=%v err=%v; fake invoices %d", st, found, err, len(f.invoices))
	if err == nil && found && st.Reference == ix.Reference && st.Amount == 0 {
		t.Errorf("FindInvoice(Y, 250.00) answered X's invoice %s (100.00, paid) with Amount 0, so paymentd cannot see the mismatch", st.Reference)
	}
}

// The document's methods carry no fee; the fee (and total_amount) is known
// only from the payout answer. The adapter must not invent a fee rule for
// the methods (the document gives none, so any rule would be a guess that
// paymentd reserves by), and must report the answer's fee and total_amount
// as aspayds' books have them, on creation and on every read; paymentd
// records them and debits the total (service: TestPayoutProviderFeeIsRecorded).
func TestAuditPayoutFeeNotInMethods(t *testing.T) {
	f := newAuFake(t)
	c := newAuClient(t, f, nil)
	ctx := context.Background()
	ms, err := c.PayoutMethods(ctx)
	if err != nil || len(ms) != len(f.methods) {
		t.Fatalf("PayoutMethods: %+v, %v", ms, err)
	}
	for _, m := range ms {
		if m.FeeFixed != 0 || m.FeeBasisPoints != 0 {
			t.Errorf("method %s reports a fee rule (fixed %d, %d bps) the document does not give", m.ID, m.FeeFixed, m.FeeBasisPoints)
		}
	}
	for _, method := range []string{"1", "2"} {
		req := auPoReq(50000)
		req.MethodID = method
		st, err := c.CreatePayout(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		p := f.payouts[st.Reference]
		if p == nil || p.Fee == 0 {
			t.Fatalf("method %s: the fake charged no fee (%+v); the test needs one", method, p)
		}
		if st.Fee != p.Fee || st.TotalAmount != p.Amount+p.Fee {
			t.Errorf("method %s: adapter reports fee %d, total_amount %d; aspayds charged fee %d, total_amount %d",
				method, st.Fee, st.TotalAmount, p.Fee, p.Amount+p.Fee)
		}
		g, err := c.GetPayout(ctx, st.Reference)
		if err != nil || g.Fee != p.Fee || g.TotalAmount != p.Amount+p.Fee {
			t.Errorf("method %s: GetPayout reports %+v, %v; aspayds charged fee %d", method, g, err, p.Fee)
		}
	}
}
