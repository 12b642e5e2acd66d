package service

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/asyncpay"
	"github.com/paymentd/paymentd/providers/asyncpay/asyncpayfake"
	"github.com/paymentd/paymentd/providers/sandbox"
	"github.com/paymentd/paymentd/store"
)

// pendingProvider is a provider that still reports every payment pending,
// and counts the status calls.
type pendingProvider struct {
	sandbox.Provider
	calls atomic.Int32
}

func (*pendingProvider) Name() string { return "pending" }

func (p *pendingProvider) GetPayment(_ context.Context, ref string) (providers.PaymentState, error) {
	p.calls.Add(1)
	return providers.PaymentState{Reference: ref, Status: "pending"}, nil
}

func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "paymentd.db"), store.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// seedUnsettled writes an account, a payment in status and, if refund is
// set, a pending refund of 400 reserved on it.
func seedUnsettled(t *testing.T, st *store.Store, provider, status string, refund bool) (*store.Payment, *store.Refund) {
	t.Helper()
	acct := NewID(PrefixAccount)
	p := &store.Payment{ID: NewID(PrefixPayment), AccountID: acct, Amount: 1000, Currency: "USD", Status: status,
		CaptureMethod: "automatic", PaymentMethod: "pm_card_visa", Provider: provider}
	var r *store.Refund
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertAccount(&store.Account{ID: acct, Name: "t", Created: tx.Now()}); err != nil {
			return err
		}
		p.Created, p.Updated = tx.Now().Add(-time.Hour), tx.Now().Add(-time.Hour)
		if refund {
			p.ProviderRef, p.AmountCaptured, p.AmountRefunded = "sb_"+p.ID, 1000, 400
		}
		if err := tx.InsertPayment(p); err != nil {
			return err
		}
		if refund {
			r = &store.Refund{ID: NewID(PrefixRefund), AccountID: acct, PaymentID: p.ID, Amount: 400, Currency: "USD",
				Status: string(paymentd.RefundPending), Created: tx.Now().Add(-time.Hour)}
			return tx.InsertRefund(r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

func eventTypesOf(t *testing.T, st *store.Store, p *store.Payment, objectID string) []string {
	t.Helper()
	evs, err := st.EventsFor(context.Background(), p.AccountID, p.Livemode, objectID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// TestReconcilePendingRefund: a refund the provider left unanswered is
// settled from the provider's answer, with its ledger entries and event.
func TestReconcilePendingRefund(t *testing.T) {
	st := openTestStore(t)
	s := New(Config{Store: st})
	p, r := seedUnsettled(t, st, "sandbox", string(paymentd.PaymentSucceeded), true)
	reconciler{s}.reconcileOnce(context.Background(), ReconcileConfig{Schedule: []time.Duration{time.Minute}}.withDefaults())

	got, err := st.GetRefund(context.Background(), r.AccountID, false, r.ID)
	if err != nil || paymentd.RefundStatus(got.Status) != paymentd.RefundSucceeded {
		t.Fatalf("refund after reconciling: %v, %v; want succeeded", got, err)
	}
	if types := eventTypesOf(t, st, p, r.ID); len(types) != 1 || types[0] != "refund.succeeded" {
		t.Errorf("refund events %v; want [refund.succeeded]", types)
	}
	entries, err := st.LedgerEntriesFor(context.Background(), r.ID)
	if err != nil || len(entries) != 2 {
		t.Fatalf("ledger entries %v, %v; want 2", entries, err)
	}
	for _, e := range entries {
		if (e.Book == store.BookAvailable && e.Amount != -400) || (e.Book == string(paymentd.ProviderBook("sandbox")) && e.Amount != 400) {
			t.Errorf("ledger entry %+v; want 400 moved from available back to the provider", e)
		}
	}
	pay, _ := st.GetPayment(context.Background(), p.AccountID, false, p.ID)
	if pay.AmountRefunded != 400 {
		t.Errorf("payment amount_refunded %d; want 400 (kept reserved, now refunded)", pay.AmountRefunded)
	}
}

// TestReconcileSchedule: a provider that still says pending is asked again
// only when the schedule says, and the schedule survives in the database.
func TestReconcileSchedule(t *testing.T) {
	st := openTestStore(t)
	prov := &pendingProvider{}
	s := New(Config{Store: st, TestProvider: prov})
	p, _ := seedUnsettled(t, st, "pending", string(paymentd.PaymentUnknown), false)
	cfg := ReconcileConfig{Schedule: []time.Duration{time.Minute, time.Hour}}.withDefaults()
	ctx := context.Background()

	reconciler{s}.reconcileOnce(ctx, cfg)
	if n := prov.calls.Load(); n != 1 {
		t.Fatalf("status calls after the first pass: %d; want 1 (the payment has been unknown for an hour)", n)
	}
	reconciler{s}.reconcileOnce(ctx, cfg)
	if n := prov.calls.Load(); n != 1 {
		t.Errorf("status calls after a second pass at once: %d; want still 1 (next call due in an hour)", n)
	}
	due, states, err := st.UnsettledPayments(ctx, time.Now(), time.Now().Add(2*time.Hour), 10)
	if err != nil || len(due) != 1 || states[0].Attempts != 1 {
		t.Fatalf("schedule: %v %v %v; want one payment asked once", due, states, err)
	}
	if d := time.Until(states[0].NextCheck); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("next check in %s; want an hour", d)
	}
	if got, _ := st.GetPayment(ctx, p.AccountID, false, p.ID); paymentd.PaymentStatus(got.Status) != paymentd.PaymentUnknown {
		t.Errorf("payment status %s; want still unknown", got.Status)
	}

	// A fresh service on the same database keeps the schedule.
	s2 := New(Config{Store: st, TestProvider: prov})
	reconciler{s2}.reconcileOnce(ctx, cfg)
	if n := prov.calls.Load(); n != 1 {
		t.Errorf("status calls by a new service: %d; want still 1", n)
	}
}

// TestSettleNeverMovesBackwards applies every provider answer to payments
// in every status: only unknown and processing payments change.
func TestSettleNeverMovesBackwards(t *testing.T) {
	st := openTestStore(t)
	for _, from := range paymentd.Strings(paymentd.PaymentLifecycle.Statuses) {
		for _, answer := range []string{"captured", "failed", "authorized", "pending"} {
			p, _ := seedUnsettled(t, st, "sandbox", from, false)
			pr := &Principal{AccountID: p.AccountID}
			err := st.Write(context.Background(), func(tx *store.Tx) error {
				return settlePaymentTx(tx, pr, p.ID, providers.PaymentState{Status: answer})
			})
			got, _ := st.GetPayment(context.Background(), p.AccountID, false, p.ID)
			unsettled := slices.Contains(paymentd.Strings(paymentd.UnsettledPayments), from)
			switch {
			case answer == "pending":
				if err != errNotSettled || got.Status != from {
					t.Errorf("%s + %s: %v, status %s; want not settled", from, answer, err, got.Status)
				}
			case !unsettled:
				if err != errAlreadySettled || got.Status != from {
					t.Errorf("%s + %s: %v, status %s; want unchanged", from, answer, err, got.Status)
				}
			default:
				want := map[string]paymentd.PaymentStatus{"captured": paymentd.PaymentSucceeded, "failed": paymentd.PaymentFailed, "authorized": paymentd.PaymentRequiresCapture}[answer]
				if err != nil || paymentd.PaymentStatus(got.Status) != want {
					t.Errorf("%s + %s: %v, status %s; want %s", from, answer, err, got.Status, want)
				}
			}
		}
	}
}

// TestReconcileAbsentPaymentFails: a payment whose creation at Asyncpay went
// unanswered, and which Asyncpay then says it does not hold (404 to GET
// /v1/payments/{paymentd id}) to a status call after the first, long after the creation,
// was never created: it fails, with nothing in the ledger. One Asyncpay does
// hold is settled from it; a young one, or one Asyncpay has answered about
// before (a provider reference), is never failed for a 404.
func TestReconcileAbsentPaymentFails(t *testing.T) {
	const key = "sk_reconcile_absent"
	fake := asyncpayfake.New(key, asyncpay.Paths{})
	t.Cleanup(fake.Close)
	client, err := asyncpay.New(asyncpay.Options{BaseURL: fake.URL(), SecretKey: key, HTTP: providers.HTTPOptions{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	s := New(Config{Store: st, TestProvider: client, ProviderTimeout: time.Second})
	absent, _ := seedUnsettled(t, st, client.Name(), string(paymentd.PaymentUnknown), false)
	held, _ := seedUnsettled(t, st, client.Name(), string(paymentd.PaymentUnknown), false)
	if _, err := client.Authorize(context.Background(), providers.PaymentRequest{IdempotencyKey: held.ID, Amount: held.Amount,
		Currency: held.Currency, Capture: true}); err != nil {
		t.Fatal(err)
	}
	answered, _ := seedUnsettled(t, st, client.Name(), string(paymentd.PaymentUnknown), false)
	young := &store.Payment{ID: NewID(PrefixPayment), AccountID: absent.AccountID, Amount: 1000, Currency: "USD",
		Status: string(paymentd.PaymentUnknown), CaptureMethod: "automatic", PaymentMethod: "pm_card_visa", Provider: client.Name()}
	err = st.Write(context.Background(), func(tx *store.Tx) error {
		young.Created, young.Updated = tx.Now(), tx.Now()
		if err := tx.InsertPayment(young); err != nil {
			return err
		}
		answered.ProviderRef = "pmt_that_vanished"
		return tx.UpdatePayment(answered)
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ReconcileConfig{Schedule: []time.Duration{0, time.Millisecond}}.withDefaults()
	status := func(p *store.Payment) *store.Payment {
		got, err := st.GetPayment(context.Background(), p.AccountID, false, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	reconciler{s}.reconcileOnce(context.Background(), cfg)
	if got := status(absent); got.Status != string(paymentd.PaymentUnknown) {
		t.Fatalf("after one 404: %s; want still unknown (one answer is not enough)", got.Status)
	}
	if got := status(held); got.Status != string(paymentd.PaymentSucceeded) || got.ProviderRef == "" {
		t.Errorf("the payment Asyncpay holds: %s (ref %q); want succeeded from Asyncpay's answer", got.Status, got.ProviderRef)
	}
	time.Sleep(5 * time.Millisecond)
	reconciler{s}.reconcileOnce(context.Background(), cfg)
	got := status(absent)
	if got.Status != string(paymentd.PaymentFailed) || !strings.Contains(got.FailureMessage, "no record") {
		t.Errorf("after a second 404 an hour after creation: %s %q; want failed, the provider having no record", got.Status, got.FailureMessage)
	}
	if entries, err := st.LedgerEntriesFor(context.Background(), absent.ID); err != nil || len(entries) != 0 {
		t.Errorf("ledger entries of the absent payment: %v, %v; want none", entries, err)
	}
	for name, p := range map[string]*store.Payment{"young": young, "answered before": answered} {
		if got := status(p); got.Status != string(paymentd.PaymentUnknown) {
			t.Errorf("%s payment after two 404s: %s; want still unknown", name, got.Status)
		}
	}
}
