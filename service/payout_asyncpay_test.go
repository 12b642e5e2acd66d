package service

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/asyncpay"
	"github.com/paymentd/paymentd/providers/asyncpay/asyncpayfake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/store"
)

// TestAsyncpayPayoutsSentUnderPaymentdIDs: a caller's transaction_reference
// is unique only within its account and mode, and Asyncpay refuses a
// reference it has seen. So two accounts behind one Asyncpay connection may
// both use WD-SAME only because paymentd sends its own payout id as the
// reference (the caller's goes first in the description), and a payout
// whose answer was lost is read back by that id: it finds its own payout,
// never the other account's.
// asyncpayPayouts is a Service whose live NGN payouts go to an Asyncpay
// fake (one attempt per call, so that a lost answer stays lost).
type asyncpayPayouts struct {
	t    *testing.T
	fake *asyncpayfake.Server
	st   *store.Store
	svc  *Service
	srv  *PayoutsServer
}

func newAsyncpayPayouts(t *testing.T, providerTimeout time.Duration) *asyncpayPayouts {
	t.Helper()
	const key = "sk_service_asyncpay"
	fake := asyncpayfake.New(key, asyncpay.Paths{})
	t.Cleanup(fake.Close)
	f, err := routing.ParseFile([]byte(`
connections:
  - {name: asyncpay-live, provider: asyncpay, mode: live, base_url: ` + fake.URL() + `, max_attempts: 1, credentials: {secret_key: TP_ASYNCPAY_KEY}}
routes:
  - {operation: payouts, mode: live, currency: NGN, connections: [asyncpay-live]}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.New(f, routing.Options{Getenv: func(string) string { return key }})
	if err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	svc := New(Config{Store: st, Router: r, ProviderTimeout: providerTimeout})
	return &asyncpayPayouts{t: t, fake: fake, st: st, svc: svc, srv: &PayoutsServer{Service: svc}}
}

// account makes a live account with Asyncpay's ch_ngn_bank channel and
// 20,000 NGN available, and returns a context authenticated as it.
func (a *asyncpayPayouts) account() context.Context {
	a.t.Helper()
	acct := NewID(PrefixAccount)
	err := a.st.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertAccount(&store.Account{ID: acct, Name: "t", Created: tx.Now()}); err != nil {
			return err
		}
		ch := asyncpayfake.DefaultChannels[0] // ch_ngn_bank, 50 NGN fixed fee
		if err := tx.ReplacePayoutMethods(acct, true, []*store.PayoutMethod{{ID: ch.ID, Name: ch.Name, Type: ch.Type,
			Currency: ch.Currency, MinAmount: ch.Min, MaxAmount: ch.Max, FeeFixed: ch.FeeFixed}}); err != nil {
			return err
		}
		return insertMoves(tx, acct, true, "NGN", NewID(PrefixPayment),
			[]paymentd.Move{{From: paymentd.ProviderBook("asyncpay-live"), To: paymentd.BookAvailable, Amount: 20000_00}})
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return withPrincipal(context.Background(), &Principal{AccountID: acct, Livemode: true, Scopes: []string{ScopeWrite, ScopePayouts}})
}

func (a *asyncpayPayouts) create(ctx context.Context, recipient string) *pb.Payout {
	a.t.Helper()
	resp, err := a.srv.CreatePayout(ctx, &pb.CreatePayoutRequest{PayoutMethodId: "ch_ngn_bank", Amount: 5000_00, Currency: "NGN",
		RecipientName: "Ada Obi", RecipientAccount: recipient, TransactionReference: "WD-SAME", Description: "May payout"})
	if err != nil {
		a.t.Fatalf("CreatePayout: %v", err)
	}
	return resp.Payout
}

func (a *asyncpayPayouts) get(ctx context.Context, id string) *pb.Payout {
	a.t.Helper()
	resp, err := a.srv.GetPayout(ctx, &pb.GetPayoutRequest{Id: id})
	if err != nil {
		a.t.Fatalf("GetPayout %s: %v", id, err)
	}
	return resp.Payout
}

func TestAsyncpayPayoutsSentUnderPaymentdIDs(t *testing.T) {
	a := newAsyncpayPayouts(t, 0)
	fake, st := a.fake, a.st
	ctxA, ctxB := a.account(), a.account()
	pa := a.create(ctxA, "0123456789")
	if pa.Status != "pending" || pa.Provider != "asyncpay-live" {
		t.Fatalf("payout A: %v", pa)
	}
	// B's payout reaches Asyncpay, whose answer is lost.
	fake.Inject(fakekit.Fault{Kind: fakekit.ApplyThenFail, Op: "POST /v1/payouts"})
	pbo := a.create(ctxB, "0987654321")
	stored, err := st.GetPayout(context.Background(), mustPrincipal(ctxB).AccountID, true, pbo.Id)
	if err != nil {
		t.Fatal(err)
	}
	if stored.SentReference != pbo.Id {
		t.Errorf("payout B recorded as sent under %q; want its id %s, recorded before the call", stored.SentReference, pbo.Id)
	}
	if pbo.Status != "pending" || stored.ProviderRef != "" {
		t.Fatalf("payout B after a lost answer: %v (provider ref %q); want pending, provider reference unknown", pbo, stored.ProviderRef)
	}
	var sent []struct{ Reference, Description string }
	for _, req := range fake.Requests() {
		if req.Method == "POST" && req.Path == "/v1/payouts" {
			var b struct{ Reference, Description string }
			_ = json.Unmarshal(req.Body, &b)
			sent = append(sent, b)
		}
	}
	if len(sent) != 2 || sent[0].Reference != pa.Id || sent[1].Reference != pbo.Id || !strings.HasPrefix(sent[1].Description, "WD-SAME") {
		t.Errorf("Asyncpay got payouts %+v; want references %s and %s, descriptions starting with WD-SAME", sent, pa.Id, pbo.Id)
	}

	// Asyncpay completes A; B, read back by its id, is still pending there.
	if err := fake.SettlePayout(pa.Id, "completed"); err != nil {
		t.Fatal(err)
	}
	if got := a.get(ctxA, pa.Id); got.Status != "completed" {
		t.Errorf("payout A: %s; want completed", got.Status)
	}
	book, ok := fake.BookFor(pbo.Id)
	if !ok {
		t.Fatalf("Asyncpay has no payout under %s", pbo.Id)
	}
	got := a.get(ctxB, pbo.Id)
	stored, _ = st.GetPayout(context.Background(), mustPrincipal(ctxB).AccountID, true, pbo.Id)
	if got.Status != "pending" || stored.ProviderRef != book.ID {
		t.Errorf("payout B read back: %s with provider ref %q; want pending as %s, Asyncpay's payout of reference %s", got.Status, stored.ProviderRef, book.ID, pbo.Id)
	}
}

// TestAsyncpayPayoutNeverCreatedIsRejected: Asyncpay answers a payout 503
// without making it. That 503 is ambiguous (asyncpay's document does not
// say it comes before processing), so the payout stays pending with its
// reservation; once Asyncpay answers a status call that is not the first,
// long enough after the creation, that it holds no payout under paymentd's
// id, the payout is rejected and the reservation goes back to available.
func TestAsyncpayPayoutNeverCreatedIsRejected(t *testing.T) {
	a := newAsyncpayPayouts(t, 20*time.Millisecond)
	ctx := a.account()
	a.fake.Inject(fakekit.Fault{Kind: fakekit.Refuse, Op: "POST /v1/payouts", Status: 503})
	po := a.create(ctx, "0123456789")
	if po.Status != "pending" {
		t.Fatalf("payout answered 503: %v; want pending (the 503 may have come after Asyncpay made it)", po)
	}
	if _, ok := a.fake.BookFor(po.Id); ok {
		t.Fatal("the fake made the payout it refused")
	}
	available := func() (avail, reserved int64) {
		bs, err := a.st.Balances(context.Background(), mustPrincipal(ctx).AccountID, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			switch paymentd.Book(b.Book) {
			case paymentd.BookAvailable:
				avail = b.Amount
			case paymentd.BookReserved:
				reserved = b.Amount
			}
		}
		return avail, reserved
	}
	if avail, reserved := available(); avail != 20000_00-5050_00 || reserved != 5050_00 {
		t.Fatalf("while pending: available %d reserved %d; want 1495000 and 505000", avail, reserved)
	}
	cfg := ReconcileConfig{Schedule: []time.Duration{0, time.Millisecond}}.withDefaults()
	time.Sleep(60 * time.Millisecond) // past twice the provider timeout: the payout is due a status call
	reconciler{a.svc}.reconcileOnce(context.Background(), cfg)
	if got := a.get(ctx, po.Id); got.Status != "pending" {
		t.Fatalf("after one 404: %s; want still pending (one answer is not enough)", got.Status)
	}
	time.Sleep(5 * time.Millisecond)
	reconciler{a.svc}.reconcileOnce(context.Background(), cfg)
	got := a.get(ctx, po.Id)
	if got.Status != "rejected" || !strings.Contains(got.FailureMessage, "no record") {
		t.Errorf("after a second 404: %s %q; want rejected, Asyncpay having no record of it", got.Status, got.FailureMessage)
	}
	if avail, reserved := available(); avail != 20000_00 || reserved != 0 {
		t.Errorf("after the rejection: available %d reserved %d; want 2000000 and 0", avail, reserved)
	}
}

// TestSentPayoutReferenceOfOlderPayouts: a payout recorded before the
// reference it was sent under was recorded was sent, by every adapter of
// that time, under the caller's transaction reference, and is looked up so.
func TestSentPayoutReferenceOfOlderPayouts(t *testing.T) {
	if got := sentPayoutReference(&store.Payout{ID: "po_1", TransactionReference: "WD-1"}); got != "WD-1" {
		t.Errorf("older payout looked up under %q; want WD-1", got)
	}
	if got := sentPayoutReference(&store.Payout{ID: "po_1", TransactionReference: "WD-1", SentReference: "po_1"}); got != "po_1" {
		t.Errorf("payout sent under po_1 looked up under %q", got)
	}
}
