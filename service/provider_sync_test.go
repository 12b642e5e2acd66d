package service

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/store"
)

// TestWebhookOutcome names what a provider event did from whether the
// provider's answer changed the object and confirmed the webhook's claim.
func TestWebhookOutcome(t *testing.T) {
	for _, tc := range []struct {
		changed, confirmed bool
		want               string
	}{{true, true, webhookApplied}, {true, false, webhookApplied}, {false, true, webhookIgnored}, {false, false, webhookUnconfirmed}} {
		if got := webhookOutcome(tc.changed, tc.confirmed); got != tc.want {
			t.Errorf("webhookOutcome(changed %v, confirmed %v) = %s; want %s", tc.changed, tc.confirmed, got, tc.want)
		}
	}
}

// TestApplyInvoiceStateCountsEachTotalOnce: a provider that reports only a
// total paid (aspayds) is recorded as the increase over what the invoice
// holds when the write runs, so two askers that read the invoice before
// either wrote (a webhook and the reconciler, say) never count money twice,
// and the same answer again changes nothing.
func TestApplyInvoiceStateCountsEachTotalOnce(t *testing.T) {
	st := openTestStore(t)
	ctx := context.Background()
	inv := &store.Invoice{ID: NewID(PrefixInvoice), AccountID: NewID(PrefixAccount), Livemode: true, Status: string(paymentd.InvoiceOpen),
		Amount: 10000, Currency: "BDT", TransactionReference: "REF1", CallbackURL: "https://shop.example/cb",
		PaymentURL: "https://aspayds.example/methods/ATINV1", Provider: "aspayds-live", ProviderRef: "ATINV1"}
	err := st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.InsertAccount(&store.Account{ID: inv.AccountID, Name: "t", Created: tx.Now()}); err != nil {
			return err
		}
		inv.Created, inv.Updated, inv.ExpiresAt = tx.Now(), tx.Now(), tx.Now().Add(time.Hour)
		return tx.InsertInvoice(inv)
	})
	if err != nil {
		t.Fatal(err)
	}
	stale := *inv // what both askers read before writing
	var changes []bool
	for _, paid := range []int64{4000, 10000, 10000, 4000} {
		err := st.Write(ctx, func(tx *store.Tx) error {
			_, changed, err := applyInvoiceStateTx(tx, &stale, providers.InvoiceState{Reference: "ATINV1", Status: "partially_paid", AmountPaid: paid})
			changes = append(changes, changed)
			return err
		})
		if err != nil {
			t.Fatalf("applying amount_paid %d: %v", paid, err)
		}
	}
	if !slices.Equal(changes, []bool{true, true, false, false}) {
		t.Errorf("changes %v; want true, true, false, false", changes)
	}
	got, err := st.GetInvoice(ctx, inv.AccountID, true, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if paymentd.InvoiceStatus(got.Status) != paymentd.InvoicePaid || got.AmountPaid != 10000 || len(got.Receipts) != 2 ||
		got.Receipts[0].TxnID != "ATINV1:paid:4000" || got.Receipts[1].Amount != 6000 {
		t.Errorf("invoice %s paid %d with receipts %v; want paid 10000 in receipts of 4000 and 6000", got.Status, got.AmountPaid, got.Receipts)
	}
	entries, err := st.LedgerEntriesFor(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var available int64
	for _, e := range entries {
		if e.Book == store.BookAvailable {
			available += e.Amount
		}
	}
	if available != 10000 {
		t.Errorf("available +%d from the invoice; want 10000", available)
	}
	if types := eventTypesOf(t, st, &store.Payment{AccountID: inv.AccountID, Livemode: true}, inv.ID); !slices.Equal(types, []string{"invoice.partially_paid", "invoice.paid"}) {
		t.Errorf("events %v; want invoice.partially_paid, invoice.paid", types)
	}
}
