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
	return a.accountWith(available, "1", feeBps)
}

// accountWith is account with the aspayds method id: the fake's 1 (bKash)
// charges no fee, its 2 (Nagad) 1 % of the amount.
func (a *aspaydsPayouts) accountWith(available int64, method string, feeBps int64) context.Context {
	a.t.Helper()
	acct := NewID(PrefixAccount)
	err := a.st.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertAccount(&store.Account{ID: acct, Name: "t", Created: tx.Now()}); err != nil {
			return err
		}
		if err := tx.ReplacePayoutMethods(acct, true, []*store.PayoutMethod{{ID: method, Name: "wallet " + method, Type: MethodMobileBanking,
			Currency: "BDT", MinAmount: 100_00, MaxAmount: 25000_00, FeeBasisPoints: feeBps}}); err != nil {
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
	return a.createWith(ctx, "1", amount, reference, recipient)
}

func (a *aspaydsPayouts) createWith(ctx context.Context, method string, amount int64, reference, recipient string) *pb.Payout {
	a.t.Helper()
	resp, err := a.srv.CreatePayout(ctx, &pb.CreatePayoutRequest{PayoutMethodId: method, Amount: amount, Currency: "BDT",
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

// aspaydsFee is the fee aspayds' books hold for the payout paymentd sent as
// id, read from the fake through the adapter (GET /payout/{id}).
func (a *aspaydsPayouts) aspaydsFee(id string) (fee, total int64) {
	a.t.Helper()
	st, err := a.svc.cfg.Router.Route(routing.Payouts, true, "BDT")[0].Client.(*aspayds.Client).GetPayout(context.Background(), id)
	if err != nil {
		a.t.Fatalf("aspayds' payout %s: %v", id, err)
	}
	return st.Fee, st.TotalAmount
}

func (a *aspaydsPayouts) operatorItems(objectID string) []string {
	a.t.Helper()
	items, err := a.st.OperatorItems(context.Background(), true)
	if err != nil {
		a.t.Fatal(err)
	}
	var kinds []string
	for _, it := range items {
		if it.ObjectID == objectID {
			kinds = append(kinds, it.Kind)
		}
	}
	return kinds
}

// TestPayoutProviderFeeIsRecorded: aspayds' payout fee is not in its payout
// methods, so paymentd reserves amount + the configured method's fee rule
// at creation and then records the fee and total_amount aspayds answers,
// reserving the difference from available (or releasing it), so that what
// paymentd debits is what aspayds takes: amount + its fee. A higher fee the
// available balance cannot cover moves nothing (no balance goes negative)
// and becomes an operator item. A fee first learned from a read-back (the
// create's answer lost) is recorded the same way.
func TestPayoutProviderFeeIsRecorded(t *testing.T) {
	a := newAspaydsPayouts(t)
	for _, tc := range []struct {
		name               string
		available, feeBps  int64 // the account's balance, the configured method's fee rule
		lose               bool  // the create's answer is lost
		wantFee, wantTotal int64
		wantItem           string
	}{
		{name: "configured without a fee", available: 2000_00, feeBps: 0, wantFee: 10_00, wantTotal: 1010_00},
		{name: "configured above aspayds' fee", available: 2000_00, feeBps: 250, wantFee: 10_00, wantTotal: 1010_00},
		{name: "answer lost, fee read back", available: 2000_00, feeBps: 0, lose: true, wantFee: 10_00, wantTotal: 1010_00},
		{name: "fee not covered", available: 1005_00, feeBps: 0, wantFee: 0, wantTotal: 1000_00, wantItem: "payout_provider_fee_not_covered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.t = t
			ctx := a.accountWith(tc.available, "2", tc.feeBps)
			if tc.lose {
				a.fake.Inject(fakekit.Fault{Kind: fakekit.ApplyThenFail, Op: "POST /payout/request"})
			}
			p := a.createWith(ctx, "2", 1000_00, "FEE-1", "01733333333")
			reservedAtCreation := 1000_00 + (1000_00*tc.feeBps+9999)/10000
			if tc.lose {
				if p.TotalAmount != reservedAtCreation {
					t.Errorf("after a lost answer: total_amount %d; want the reservation %d", p.TotalAmount, reservedAtCreation)
				}
				p = a.get(ctx, p.Id) // asks aspayds: GET /payout/{our id} carries the fee
			}
			fee, total := a.aspaydsFee(p.Id)
			if fee != 10_00 || total != 1010_00 {
				t.Fatalf("aspayds charged fee %d, total %d; the test expects its 1 %% fee", fee, total)
			}
			if p.Fee != tc.wantFee || p.TotalAmount != tc.wantTotal {
				t.Errorf("payout %s: fee %d total_amount %d; want %d and %d (aspayds: fee %d, total %d)", p.Id, p.Fee, p.TotalAmount, tc.wantFee, tc.wantTotal, fee, total)
			}
			stored, _ := a.st.GetPayout(context.Background(), mustPrincipal(ctx).AccountID, true, p.Id)
			if stored.Fee != tc.wantFee || stored.TotalAmount != tc.wantTotal {
				t.Errorf("stored payout: fee %d total_amount %d; want %d and %d", stored.Fee, stored.TotalAmount, tc.wantFee, tc.wantTotal)
			}
			avail, reserved, _ := a.books(ctx)
			if reserved != tc.wantTotal || avail != tc.available-tc.wantTotal || avail < 0 {
				t.Errorf("books after the answer: available %d reserved %d; want %d and %d", avail, reserved, tc.available-tc.wantTotal, tc.wantTotal)
			}
			if items := a.operatorItems(p.Id); (tc.wantItem == "" && len(items) != 0) || (tc.wantItem != "" && (len(items) != 1 || items[0] != tc.wantItem)) {
				t.Errorf("operator items %v; want %q", items, tc.wantItem)
			}
			// aspayds sends it: paymentd has debited what aspayds took, or
			// (not covered) the shortfall is the operator item's.
			if err := a.fake.SettlePayout(p.Id, "completed"); err != nil {
				t.Fatal(err)
			}
			if got := a.get(ctx, p.Id); got.Status != "completed" {
				t.Fatalf("after aspayds completed it: %s", got.Status)
			}
			avail, reserved, paid := a.books(ctx)
			if reserved != 0 || paid != tc.wantTotal || avail != tc.available-tc.wantTotal {
				t.Errorf("books after completion: available %d reserved %d paid out %d; want %d, 0, %d",
					avail, reserved, paid, tc.available-tc.wantTotal, tc.wantTotal)
			}
			if tc.wantItem == "" && paid != total {
				t.Errorf("paymentd paid out %d; aspayds took %d (amount + fee)", paid, total)
			}
		})
	}
}
