package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/store"
)

// Invoices and payouts served by a provider connection take their state
// from the provider. Three things ask it: a read of one object (GetInvoice,
// GetPayout), an inbound provider webhook (provider_webhooks.go) and the
// reconciler (reconciler.go). Each asks the provider outside any write, and
// then applies the answer with the functions below inside one write, through
// the same transitions, events and ledger entries as the API's own changes.
// The object is read again inside that write, so concurrent askers never
// apply the same money twice, and a step backwards is never taken.

// errProviderMismatch: the provider answered about another amount or
// currency than the object's; nothing it says is recorded.
var errProviderMismatch = errors.New("the provider reports another amount or currency")

// invoiceProviderState asks the provider serving inv for its state, by the
// provider's reference.
func (s *Service) invoiceProviderState(ctx context.Context, inv *store.Invoice) (providers.InvoiceState, error) {
	prov, ok := s.conns.routedInvoices(inv.Provider)
	switch {
	case !ok:
		return providers.InvoiceState{}, fmt.Errorf("the invoice provider %s is not configured", inv.Provider)
	case inv.ProviderRef == "":
		return providers.InvoiceState{}, fmt.Errorf("invoice %s has no reference at %s", inv.ID, inv.Provider)
	}
	pctx, done := s.providerCall(ctx, prov, "get_invoice")
	st, err := prov.GetInvoice(pctx, inv.ProviderRef)
	done(err)
	if err != nil {
		return st, err
	}
	if (st.Amount != 0 && st.Amount != inv.Amount) || (st.Currency != "" && !strings.EqualFold(st.Currency, inv.Currency)) {
		return st, fmt.Errorf("%w: %d %s for invoice %s of %d %s", errProviderMismatch, st.Amount, st.Currency, inv.ID, inv.Amount, inv.Currency)
	}
	return st, nil
}

// providerReceipts returns the provider's transfers towards inv. Providers
// that report only a total paid (aspayds' amount_paid) get one transfer per
// increase of that total over what inv has counted, named by the new total,
// so that the same total reported twice is the same transfer.
func providerReceipts(inv *store.Invoice, st providers.InvoiceState) []providers.Receipt {
	if len(st.Receipts) > 0 {
		return st.Receipts
	}
	if st.AmountPaid <= inv.AmountPaid {
		return nil
	}
	ref := st.Reference
	if ref == "" {
		ref = inv.ProviderRef
	}
	return []providers.Receipt{{TxnID: fmt.Sprintf("%s:paid:%d", ref, st.AmountPaid),
		Amount: st.AmountPaid - inv.AmountPaid, Confirmations: inv.ConfirmationsRequired}}
}

// invoiceStateNews reports whether the provider's state st holds anything
// inv does not record yet, so that reads which learn nothing do not write.
func invoiceStateNews(inv *store.Invoice, st providers.InvoiceState) bool {
	_, step := paymentd.InvoiceStep(paymentd.InvoiceStatus(inv.Status), st.Status)
	return step || newReceipts(inv, providerReceipts(inv, st))
}

// applyInvoiceStateTx records in tx what the provider's state st adds to
// the invoice key names, read again here: each new transfer (applyReceipt:
// amount paid, ledger entries, invoice.partially_paid / invoice.paid /
// invoice.updated) and an expiry or cancellation the provider reports
// (writeInvoice). changed says whether anything was recorded. Once the
// invoice changed or is no longer payable its reconciler schedule is
// dropped (the reconciler asks again Schedule[0] after the change).
func applyInvoiceStateTx(tx *store.Tx, key *store.Invoice, st providers.InvoiceState) (cur *store.Invoice, changed bool, err error) {
	cur, err = tx.GetInvoice(key.AccountID, key.Livemode, key.ID)
	if err != nil {
		return nil, false, err
	}
	for _, r := range providerReceipts(cur, st) {
		if r.TxnID == "" || r.Amount <= 0 || !newReceipts(cur, []providers.Receipt{r}) {
			continue
		}
		if _, err := applyReceipt(tx, cur, r.TxnID, r.Amount, r.Confirmations); err != nil {
			return nil, false, err
		}
		changed = true
	}
	if t, ok := paymentd.InvoiceStep(paymentd.InvoiceStatus(cur.Status), st.Status); ok {
		if _, err := writeInvoice(tx, cur, t, nil); err != nil {
			return nil, false, err
		}
		changed = true
	}
	if changed || (!paymentd.Payable(paymentd.InvoiceStatus(cur.Status)) && !askedAfterEnd(cur, tx.Now())) {
		if err := tx.DeleteReconcileCheck(cur.AccountID, cur.Livemode, cur.ID); err != nil {
			return nil, false, err
		}
	}
	return cur, changed, nil
}

// LateTransferWindow is how long after its expiry the reconciler keeps
// asking the provider of an invoice that ended (paid, expired or canceled)
// about it, on its schedule: a customer's transfer that arrives or confirms
// after the invoice ended, or a second one after it was paid, is money at
// the provider, recorded on the invoice for the merchant to honour or
// refund.
const LateTransferWindow = 7 * 24 * time.Hour

// askedAfterEnd reports whether inv is a provider-served invoice that ended
// less than LateTransferWindow after its expiry, so that the reconciler
// still asks its provider about it.
func askedAfterEnd(inv *store.Invoice, now time.Time) bool {
	return inv.ProviderRef != "" && slices.Contains(paymentd.EndedInvoices, paymentd.InvoiceStatus(inv.Status)) &&
		now.Before(inv.ExpiresAt.Add(LateTransferWindow))
}

// payoutReferencer is implemented by payout adapters that say which
// reference they send a payout under (and find it by): aspayds sends
// paymentd's payout id as its transaction_reference.
type payoutReferencer interface {
	PayoutReference(payoutID, transactionReference string) string
}

// payoutReferenceFor is the reference prov sends p under: the adapter's
// word (paymentd's payout id for aspayds and Asyncpay), else the caller's
// transaction reference. It is recorded with p before the call.
func payoutReferenceFor(prov providers.Payouts, p *store.Payout) string {
	if r, ok := prov.(payoutReferencer); ok {
		return r.PayoutReference(p.ID, p.TransactionReference)
	}
	return p.TransactionReference
}

// sentPayoutReference is the reference p was sent to its provider under:
// the one recorded with it, or for a payout recorded before references
// were, the caller's transaction reference, which every adapter sent then.
func sentPayoutReference(p *store.Payout) string {
	return cmp.Or(p.SentReference, p.TransactionReference)
}

// payoutProviderState asks the provider that was sent p for its state, by
// the provider's reference or, when the creation went unanswered, by the
// reference paymentd sent (sentPayoutReference): for aspayds its own payout
// id, so that the read-back finds exactly this payout and never another
// account's that carries the same caller's transaction reference.
func (s *Service) payoutProviderState(ctx context.Context, p *store.Payout) (providers.PayoutState, error) {
	prov, ok := s.conns.routedPayouts(p.Provider)
	if !ok {
		return providers.PayoutState{}, fmt.Errorf("the payout provider %s is not configured", p.Provider)
	}
	ref := p.ProviderRef
	if ref == "" {
		ref = sentPayoutReference(p)
	}
	pctx, done := s.providerCall(ctx, prov, "get_payout")
	st, err := prov.GetPayout(pctx, ref)
	done(err)
	if err != nil {
		return st, err
	}
	if st.Amount != 0 && st.Amount != p.Amount {
		return st, fmt.Errorf("%w: %d for payout %s of %d", errProviderMismatch, st.Amount, p.ID, p.Amount)
	}
	return st, nil
}

// payoutStateNews reports whether the provider's state st moves p forward,
// gives it its missing provider reference, or reports a fee other than the
// one recorded.
func payoutStateNews(p *store.Payout, st providers.PayoutState) bool {
	_, step := paymentd.PayoutStep(paymentd.PayoutStatus(p.Status), st.Status)
	return step || (p.ProviderRef == "" && st.Reference != "") || providerFeeNews(p, st)
}

// providerFeeNews reports whether st carries the provider's fee (a
// total_amount: providers that do not say leave it 0) and it is not the one
// p records, while p still holds its reservation.
func providerFeeNews(p *store.Payout, st providers.PayoutState) bool {
	return st.TotalAmount > 0 && paymentd.PayoutActive(paymentd.PayoutStatus(p.Status)) &&
		(st.Fee != p.Fee || st.TotalAmount != p.TotalAmount)
}

// recordProviderFee records in tx the fee and total_amount the provider
// reports for the active payout cur (aspayds' fee is known only from its
// payout answer, not from its payout methods), and moves the difference
// from what was reserved at creation (amount + the method's fee rule):
// a higher total reserves the rest from available, a lower one releases
// the excess. The provider's figures are taken only when they add up
// (total_amount = amount + fee, in checked arithmetic, for this payout's
// amount). When the available balance cannot cover a higher total, nothing
// is moved, the recorded fee stays, and an operator item says by how much
// the provider's total exceeds the reservation. changed says whether cur
// was changed (the caller writes the row).
func recordProviderFee(tx *store.Tx, cur *store.Payout, st providers.PayoutState) (changed bool, err error) {
	if !providerFeeNews(cur, st) {
		return false, nil
	}
	c, _ := paymentd.LookupCurrency(cur.Currency)
	total, ok := paymentd.AddChecked(cur.Amount, st.Fee)
	if st.Fee < 0 || !ok || total != st.TotalAmount || (st.Amount != 0 && st.Amount != cur.Amount) {
		return false, addOperatorItemTx(tx, cur.AccountID, cur.Livemode, cur.ID, "payout_provider_fee_inconsistent", fmt.Sprintf(
			"Payout %s of %s %s: %s reports amount %d, fee %d and total_amount %d, which do not add up to this payout; the fee recorded (%s) was kept.",
			cur.ID, paymentd.FormatAmount(cur.Amount, c), cur.Currency, cur.Provider, st.Amount, st.Fee, st.TotalAmount, paymentd.FormatAmount(cur.Fee, c)))
	}
	var move paymentd.Move
	switch delta := total - cur.TotalAmount; { // both in [0, MaxInt64]: no overflow
	case delta > 0:
		available, err := tx.BookBalance(cur.AccountID, cur.Livemode, cur.Currency, store.BookAvailable)
		if err != nil {
			return false, err
		}
		if available < delta {
			return false, addOperatorItemTx(tx, cur.AccountID, cur.Livemode, cur.ID, "payout_provider_fee_not_covered", fmt.Sprintf(
				"Payout %s: %s charges a fee of %s %s (total %s), but %s was reserved and the available balance of %s cannot cover the other %s; the payout keeps the fee of %s until the balance is settled by an operator.",
				cur.ID, cur.Provider, paymentd.FormatAmount(st.Fee, c), cur.Currency, paymentd.FormatAmount(total, c),
				paymentd.FormatAmount(cur.TotalAmount, c), paymentd.FormatAmount(available, c), paymentd.FormatAmount(delta, c),
				paymentd.FormatAmount(cur.Fee, c)))
		}
		move = paymentd.Move{From: paymentd.BookAvailable, To: paymentd.BookReserved, Amount: delta}
	case delta < 0:
		move = paymentd.Move{From: paymentd.BookReserved, To: paymentd.BookAvailable, Amount: -delta}
	}
	if move.Amount != 0 {
		if err := insertMoves(tx, cur.AccountID, cur.Livemode, cur.Currency, cur.ID, []paymentd.Move{move}); err != nil {
			return false, err
		}
	}
	cur.Fee, cur.TotalAmount = st.Fee, total
	return true, nil
}

// applyPayoutStateTx records in tx a step forward the provider's state st
// gives the payout key names, read again here (applyPayout: the status, the
// ledger movement of its total_amount, the event), and the provider's
// reference if it had none. changed says whether the status changed. Once
// the payout changed or is settled its reconciler schedule is dropped.
func applyPayoutStateTx(tx *store.Tx, key *store.Payout, st providers.PayoutState) (cur *store.Payout, changed bool, err error) {
	cur, err = tx.GetPayout(key.AccountID, key.Livemode, key.ID)
	if err != nil {
		return nil, false, err
	}
	feeChanged, err := recordProviderFee(tx, cur, st) // before a step, which moves the new total
	if err != nil {
		return nil, false, err
	}
	step, ok := paymentd.PayoutStep(paymentd.PayoutStatus(cur.Status), st.Status)
	if !ok {
		if (cur.ProviderRef == "" && st.Reference != "") || feeChanged {
			if cur.ProviderRef == "" {
				cur.ProviderRef = st.Reference
			}
			if _, err := updatePayoutRef(tx, cur); err != nil {
				return nil, false, err
			}
		}
	} else {
		if st.Reference != "" {
			cur.ProviderRef = st.Reference
		}
		if step.Destination == paymentd.PayoutRejected {
			cur.FailureCode, cur.FailureMessage = "provider_rejected", "The provider rejected the payout"
			if st.Reason != "" {
				cur.FailureMessage += ": " + st.Reason
			}
		}
		if _, err := applyPayout(tx, cur, step); err != nil {
			return nil, false, err
		}
		changed = true
	}
	if changed || !paymentd.PayoutActive(paymentd.PayoutStatus(cur.Status)) {
		if err := tx.DeleteReconcileCheck(cur.AccountID, cur.Livemode, cur.ID); err != nil {
			return nil, false, err
		}
	}
	return cur, changed, nil
}
