package service

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

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
func TestAsyncpayPayoutsSentUnderPaymentdIDs(t *testing.T) {
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
	srv := &PayoutsServer{Service: New(Config{Store: st, Router: r})}
	account := func() context.Context {
		acct := NewID(PrefixAccount)
		err := st.Write(context.Background(), func(tx *store.Tx) error {
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
			t.Fatal(err)
		}
		return withPrincipal(context.Background(), &Principal{AccountID: acct, Livemode: true, Scopes: []string{ScopeWrite, ScopePayouts}})
	}
	create := func(ctx context.Context, recipient string) *pb.Payout {
		t.Helper()
		resp, err := srv.CreatePayout(ctx, &pb.CreatePayoutRequest{PayoutMethodId: "ch_ngn_bank", Amount: 5000_00, Currency: "NGN",
			RecipientName: "Ada Obi", RecipientAccount: recipient, TransactionReference: "WD-SAME", Description: "May payout"})
		if err != nil {
			t.Fatalf("CreatePayout: %v", err)
		}
		return resp.Payout
	}
	get := func(ctx context.Context, id string) *pb.Payout {
		t.Helper()
		resp, err := srv.GetPayout(ctx, &pb.GetPayoutRequest{Id: id})
		if err != nil {
			t.Fatalf("GetPayout %s: %v", id, err)
		}
		return resp.Payout
	}
	ctxA, ctxB := account(), account()
	pa := create(ctxA, "0123456789")
	if pa.Status != "pending" || pa.Provider != "asyncpay-live" {
		t.Fatalf("payout A: %v", pa)
	}
	// B's payout reaches Asyncpay, whose answer is lost.
	fake.Inject(fakekit.Fault{Kind: fakekit.ApplyThenFail, Op: "POST /v1/payouts"})
	pbo := create(ctxB, "0987654321")
	stored, err := st.GetPayout(context.Background(), mustPrincipal(ctxB).AccountID, true, pbo.Id)
	if err != nil {
		t.Fatal(err)
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
	if got := get(ctxA, pa.Id); got.Status != "completed" {
		t.Errorf("payout A: %s; want completed", got.Status)
	}
	book, ok := fake.BookFor(pbo.Id)
	if !ok {
		t.Fatalf("Asyncpay has no payout under %s", pbo.Id)
	}
	got := get(ctxB, pbo.Id)
	stored, _ = st.GetPayout(context.Background(), mustPrincipal(ctxB).AccountID, true, pbo.Id)
	if got.Status != "pending" || stored.ProviderRef != book.ID {
		t.Errorf("payout B read back: %s with provider ref %q; want pending as %s, Asyncpay's payout of reference %s", got.Status, stored.ProviderRef, book.ID, pbo.Id)
	}
}
