package service

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aspayds"
	"github.com/paymentd/paymentd/providers/aspayds/aspaydsfake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/store"
)

const (
	tpAspaydsKey    = "pk_service_test"
	tpAspaydsSecret = "sk_service_test"
)

// aspaydsPayouts is a Service whose live BDT payouts go to an aspayds fake
// (one attempt per call, so that a lost answer stays lost), with its store.
type aspaydsPayouts struct {
	t     *testing.T
	fake  *aspaydsfake.Server
	st    *store.Store
	svc   *Service
	srv   *PayoutsServer
	ctxOf map[string]context.Context // by account id
}

func newAspaydsPayouts(t *testing.T) *aspaydsPayouts {
	t.Helper()
	fake := aspaydsfake.New(tpAspaydsKey, tpAspaydsSecret)
	t.Cleanup(fake.Close)
	f, err := routing.ParseFile([]byte(`
connections:
  - name: aspayds-live
    provider: aspayds
    mode: live
    base_url: ` + fake.URL() + `
    max_attempts: 1
    credentials: {api_key: TP_ASPAYDS_KEY, api_secret: TP_ASPAYDS_SECRET}
    options: {currency: BDT}
routes:
  - {operation: payouts, mode: live, currency: BDT, connections: [aspayds-live]}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.New(f, routing.Options{Getenv: func(name string) string {
		return map[string]string{"TP_ASPAYDS_KEY": tpAspaydsKey, "TP_ASPAYDS_SECRET": tpAspaydsSecret}[name]
	}})
	if err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	svc := New(Config{Store: st, Router: r})
	return &aspaydsPayouts{t: t, fake: fake, st: st, svc: svc, srv: &PayoutsServer{Service: svc}, ctxOf: map[string]context.Context{}}
}

// account makes a live account with aspayds' bKash method (id 1, as in
// GET /payout/methods; fee rule feeBps) and available BDT collected through
// aspayds, and returns a context authenticated as it.
func (a *aspaydsPayouts) account(available, feeBps int64) context.Context {
	a.t.Helper()
	acct := NewID(PrefixAccount)
	err := a.st.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertAccount(&store.Account{ID: acct, Name: "t", Created: tx.Now()}); err != nil {
			return err
		}
		if err := tx.ReplacePayoutMethods(acct, true, []*store.PayoutMethod{{ID: "1", Name: "bKash", Type: MethodMobileBanking,
			Currency: "BDT", MinAmount: 100_00, MaxAmount: 50000_00, FeeBasisPoints: feeBps}}); err != nil {
			return err
		}
		return insertMoves(tx, acct, true, "BDT", NewID(PrefixInvoice),
			[]paymentd.Move{{From: paymentd.ProviderBook("aspayds-live"), To: paymentd.BookAvailable, Amount: available}})
	})
	if err != nil {
		a.t.Fatal(err)
	}
	ctx := withPrincipal(context.Background(), &Principal{AccountID: acct, Livemode: true, Scopes: []string{ScopeWrite, ScopePayouts}})
	a.ctxOf[acct] = ctx
	return ctx
}

func (a *aspaydsPayouts) create(ctx context.Context, amount int64, reference, recipient string) *pb.Payout {
	a.t.Helper()
	resp, err := a.srv.CreatePayout(ctx, &pb.CreatePayoutRequest{PayoutMethodId: "1", Amount: amount, Currency: "BDT",
		RecipientName: "John Doe", RecipientAccount: recipient, TransactionReference: reference})
	if err != nil {
		a.t.Fatalf("CreatePayout %s: %v", reference, err)
	}
	return resp.Payout
}

func (a *aspaydsPayouts) get(ctx context.Context, id string) *pb.Payout {
	a.t.Helper()
	resp, err := a.srv.GetPayout(ctx, &pb.GetPayoutRequest{Id: id})
	if err != nil {
		a.t.Fatalf("GetPayout %s: %v", id, err)
	}
	return resp.Payout
}

// books returns the account's available, reserved and paid-out BDT.
func (a *aspaydsPayouts) books(ctx context.Context) (available, reserved, paidOut int64) {
	a.t.Helper()
	pr := mustPrincipal(ctx)
	bs, err := a.st.Balances(context.Background(), pr.AccountID, true)
	if err != nil {
		a.t.Fatal(err)
	}
	for _, b := range bs {
		switch paymentd.Book(b.Book) {
		case paymentd.BookAvailable:
			available = b.Amount
		case paymentd.BookReserved:
			reserved = b.Amount
		case paymentd.PayoutsBook("aspayds-live"):
			paidOut = b.Amount
		}
	}
	return
}

// sentReferences lists the transaction_reference of every payout request
// the fake received.
func (a *aspaydsPayouts) sentReferences() []string {
	var out []string
	for _, r := range a.fake.Requests() {
		if r.Method == "POST" && r.Path == "/payout/request" {
			var b struct {
				Ref string `json:"transaction_reference"`
			}
			_ = json.Unmarshal(r.Body, &b)
			out = append(out, b.Ref)
		}
	}
	return out
}

// TestPayoutReadBackAfterLostCreateFindsOurs: aspayds' transaction_reference
// is paymentd's payout id, so a payout whose create went unanswered is read
// back by that id and found exactly: never another payout at the same
// aspayds store that carries the caller's transaction reference (another
// paymentd account's, unique only per account, or anyone else's). With the
// caller's reference the read-back below would find the completed payout
// WD-SAME and complete ours, which aspayds has not sent.
func TestPayoutReadBackAfterLostCreateFindsOurs(t *testing.T) {
	a := newAspaydsPayouts(t)
	ctxA, ctxB := a.account(2000_00, 0), a.account(2000_00, 0)
	// Someone else's payout at the same aspayds store, under the reference
	// our callers use, already completed.
	other, err := a.svc.cfg.Router.Route(routing.Payouts, true, "BDT")[0].Client.(*aspayds.Client).CreatePayout(context.Background(),
		providers.PayoutRequest{IdempotencyKey: "WD-SAME", Reference: "elsewhere", MethodID: "1", Amount: 700_00, Currency: "BDT",
			RecipientName: "Someone Else", RecipientAccount: "01999999999"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.fake.SettlePayout(other.Reference, "completed"); err != nil {
		t.Fatal(err)
	}

	// Account A's payout WD-SAME is answered.
	pa := a.create(ctxA, 500_00, "WD-SAME", "01711111111")
	if pa.Status != "pending" || pa.Provider != "aspayds-live" {
		t.Fatalf("payout A: %v", pa)
	}
	// Account B's payout WD-SAME reaches aspayds, whose answer is lost.
	a.fake.Inject(fakekit.Fault{Kind: fakekit.ApplyThenFail, Op: "POST /payout/request"})
	pb := a.create(ctxB, 700_00, "WD-SAME", "01722222222")
	stored, err := a.st.GetPayout(context.Background(), mustPrincipal(ctxB).AccountID, true, pb.Id)
	if err != nil {
		t.Fatal(err)
	}
	if pb.Status != "pending" || stored.ProviderRef != "" {
		t.Fatalf("payout B after a lost answer: %v (provider ref %q); want pending with no provider reference yet", pb, stored.ProviderRef)
	}
	if refs := a.sentReferences(); len(refs) != 3 || refs[1] != pa.Id || refs[2] != pb.Id {
		t.Errorf("transaction_references sent %v; want WD-SAME (the other payout), %s, %s: paymentd's payout ids", refs, pa.Id, pb.Id)
	}

	// aspayds completes A; B is still pending there.
	if err := a.fake.SettlePayout(pa.Id, "completed"); err != nil {
		t.Fatal(err)
	}
	if got := a.get(ctxA, pa.Id); got.Status != "completed" {
		t.Errorf("payout A read back: %s; want completed", got.Status)
	}
	got := a.get(ctxB, pb.Id)
	stored, _ = a.st.GetPayout(context.Background(), mustPrincipal(ctxB).AccountID, true, pb.Id)
	bookB, ok := a.fake.BookFor(pb.Id)
	if !ok {
		t.Fatalf("the fake has no payout under %s", pb.Id)
	}
	if got.Status != "pending" || stored.ProviderRef != bookB.ID {
		t.Errorf("payout B read back after the lost answer: %s with provider ref %q; want pending as %s (aspayds' payout of transaction_reference %s), not %s or %s",
			got.Status, stored.ProviderRef, bookB.ID, pb.Id, other.Reference, pa.Id)
	}
	if avail, reserved, paid := a.books(ctxB); avail != 1300_00 || reserved != 700_00 || paid != 0 {
		t.Errorf("B's books: available %d reserved %d paid out %d; want 130000, 70000, 0 (nothing sent yet)", avail, reserved, paid)
	}

	// aspayds completes B: paymentd's books equal aspayds'.
	if err := a.fake.SettlePayout(pb.Id, "completed"); err != nil {
		t.Fatal(err)
	}
	if got := a.get(ctxB, pb.Id); got.Status != "completed" {
		t.Errorf("payout B after aspayds completed it: %s", got.Status)
	}
	for ctx, id := range map[context.Context]string{ctxA: pa.Id, ctxB: pb.Id} {
		book, _ := a.fake.BookFor(id)
		if _, reserved, paid := a.books(ctx); reserved != 0 || paid != book.PaidOut {
			t.Errorf("payout %s: paymentd paid out %d (reserved %d); aspayds sent %d", id, paid, reserved, book.PaidOut)
		}
	}
	if n := len(a.sentReferences()); n != 3 {
		t.Errorf("%d payout requests reached aspayds; want 3 (no payout sent twice)", n)
	}
}
