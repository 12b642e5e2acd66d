package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/store"
)

// This file holds the rules for money at the provider boundary that
// captures and cancels follow (issue 10): an operation that can move money
// at a provider across the network is recorded on the payment before the
// call (store.Payment.PendingOp), only a definite answer clears it, and while
// it is set the payment refuses whatever could contradict what the provider
// may have done. A retry with the caller's idempotency key re-sends it (with
// the same upstream key), and so does the reconciler; what cannot be settled
// automatically becomes an operator item.

// Operations that may be pending on a payment.
const (
	opCapture = "capture"
	opCancel  = "cancel"
)

// recordTimeout bounds a write that records a provider's answer after the
// caller may have gone: it is detached from the caller's context, so that a
// deadline or a disconnect never loses what the provider did.
const recordTimeout = 10 * time.Second

// recordCtx returns a context for recording a provider's answer: it keeps
// ctx's values but not its deadline or cancellation, bounded by recordTimeout.
func recordCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
}

// unsettledError refuses an operation on a payment whose pending capture or
// cancel the provider has not answered definitely.
func unsettledError(p *store.Payment) error {
	what := "a capture of " + fmt.Sprint(p.PendingAmount)
	if p.PendingOp == opCancel {
		what = "a cancel"
	}
	return &Error{Kind: KindConflict, Code: "payment_operation_unsettled", Param: "id", Message: fmt.Sprintf(
		"Payment %s has %s sent to %s that the provider has not answered definitely yet; nothing else can be done to it until that is settled. Retry that %s with the same idempotency key, or wait for the reconciler to settle it.",
		p.ID, what, p.Provider, p.PendingOp)}
}

// resumes reports whether a call with key ik resumes p's pending op.
func resumes(p *store.Payment, op string, ik *idemKey) bool {
	return p.PendingOp == op && ik != nil && p.PendingKey != "" && p.PendingKey == ik.rec.Key
}

// markPending records op on the payment before its provider is asked, after
// the checks of check (run on the payment as read inside the write).
func (s *Service) markPending(ctx context.Context, pr *Principal, id, op string, amount int64, ik *idemKey,
	check func(*store.Payment) error) (*store.Payment, error) {
	var out *store.Payment
	err := s.store.Write(ctx, func(tx *store.Tx) error {
		cur, err := reloadPayment(tx, pr, id)
		if err != nil {
			return err
		}
		if cur.PendingOp != "" {
			return unsettledError(cur)
		}
		if err := check(cur); err != nil {
			return err
		}
		cur.PendingOp, cur.PendingAmount, cur.PendingSince = op, amount, tx.Now()
		cur.PendingKey = ""
		if ik != nil {
			cur.PendingKey = ik.rec.Key
		}
		cur.Updated = tx.Now()
		out = cur
		return tx.UpdatePayment(cur)
	})
	return out, err
}

func clearPending(p *store.Payment) {
	p.PendingOp, p.PendingAmount, p.PendingKey, p.PendingSince = "", 0, "", time.Time{}
}

// sendCapture asks the provider to capture amount of p and records its
// answer. pending says the capture was recorded on the payment before the
// call (markPending). On success the payment is captured; on a definite
// refusal the pending capture is cleared and the refusal returned; without a
// definite answer the pending capture stays and the call answers
// provider_unsettled, so that a retry with the same key re-sends it.
func (s *Service) sendCapture(ctx context.Context, pr *Principal, p *store.Payment, amount int64, pending bool,
	ik *idemKey, respond func(*pb.Payment) proto.Message) error {
	prov, err := s.providerFor(p)
	if err != nil {
		return err
	}
	pctx, done := s.providerCall(ctx, prov, "capture")
	newRef, perr := captureRouted(pctx, prov, providers.CaptureRequest{IdempotencyKey: providers.CaptureKey(p.ID),
		Reference: p.ProviderRef, Amount: amount, Currency: p.Currency})
	done(perr)
	wctx, wcancel := recordCtx(ctx)
	defer wcancel()
	var callErr error
	err = s.store.Write(wctx, func(tx *store.Tx) error {
		var err error
		callErr, err = applyCaptureAnswer(tx, pr, p.ID, amount, newRef, perr, pending, ik, respond)
		return err
	})
	if err != nil {
		return err
	}
	return callErr
}

// applyCaptureAnswer records a provider's answer to a capture inside tx and
// returns the error the caller gets (nil on success).
func applyCaptureAnswer(tx *store.Tx, pr *Principal, id string, amount int64, newRef string, perr error, pending bool,
	ik *idemKey, respond func(*pb.Payment) proto.Message) (error, error) {
	cur, err := reloadPayment(tx, pr, id)
	if err != nil {
		return nil, err
	}
	if pending && cur.PendingOp != opCapture {
		// Settled meanwhile (by the reconciler, or another retry): never twice.
		if paymentd.PaymentStatus(cur.Status) == paymentd.PaymentSucceeded {
			respond(paymentProto(cur))
			return nil, nil
		}
		return paymentd.PaymentCapture.Check(cur.ID, paymentd.PaymentStatus(cur.Status)), nil
	}
	kind := providers.KindOf(perr)
	switch {
	case perr == nil:
		if err := paymentd.PaymentCapture.Check(cur.ID, paymentd.PaymentStatus(cur.Status)); err != nil {
			return err, nil
		}
		if amount > cur.AmountCapturable {
			return Invalid("amount", "amount_too_large", "amount %d is more than the %d authorized.", amount, cur.AmountCapturable), nil
		}
		clearPending(cur)
		cur.AmountCaptured = amount
		cur.AmountCapturable = 0 // the rest is released
		if newRef != "" {
			cur.ProviderRef = newRef
		}
		if err := writePayment(tx, pr, cur, paymentd.PaymentCapture, ik, respond, nil); err != nil {
			return nil, err
		}
		if err := tx.ResolveOperatorItems(cur.AccountID, cur.Livemode, cur.ID); err != nil {
			return nil, err
		}
		return nil, tx.DeleteReconcileCheck(cur.AccountID, cur.Livemode, cur.ID)
	case kind == providers.Unknown:
		// No definite answer: the capture stays pending (recorded before
		// the call), so nothing can contradict what the provider did.
		return providerCallError(perr, cur.Provider), nil
	}
	// A definite refusal: nothing was captured.
	return refusedAnswer(tx, cur, perr, pending)
}

// refusedAnswer records a provider's definite refusal of a capture or
// cancel of cur: nothing happened at the provider, so a pending operation
// is cleared (and no longer reconciled), and the caller gets the refusal.
func refusedAnswer(tx *store.Tx, cur *store.Payment, perr error, pending bool) (error, error) {
	if pending {
		clearPending(cur)
		cur.Updated = tx.Now()
		if err := tx.UpdatePayment(cur); err != nil {
			return nil, err
		}
		if err := tx.DeleteReconcileCheck(cur.AccountID, cur.Livemode, cur.ID); err != nil {
			return nil, err
		}
	}
	return providerCallError(perr, cur.Provider), nil
}

// sendCancel asks the provider to release p's authorization and records its
// answer, as sendCapture does for captures.
func (s *Service) sendCancel(ctx context.Context, pr *Principal, p *store.Payment, pending bool,
	ik *idemKey, respond func(*pb.Payment) proto.Message) error {
	prov, err := s.providerFor(p)
	if err != nil {
		return err
	}
	pctx, done := s.providerCall(ctx, prov, "cancel")
	perr := prov.Cancel(pctx, p.ProviderRef)
	done(perr)
	wctx, wcancel := recordCtx(ctx)
	defer wcancel()
	var callErr error
	err = s.store.Write(wctx, func(tx *store.Tx) error {
		var err error
		callErr, err = applyCancelAnswer(tx, pr, p.ID, perr, pending, ik, respond)
		return err
	})
	if err != nil {
		return err
	}
	return callErr
}

// applyCancelAnswer records a provider's answer to a cancel inside tx.
func applyCancelAnswer(tx *store.Tx, pr *Principal, id string, perr error, pending bool,
	ik *idemKey, respond func(*pb.Payment) proto.Message) (error, error) {
	cur, err := reloadPayment(tx, pr, id)
	if err != nil {
		return nil, err
	}
	if pending && cur.PendingOp != opCancel {
		if paymentd.PaymentStatus(cur.Status) == paymentd.PaymentCanceled {
			respond(paymentProto(cur))
			return nil, nil
		}
		return paymentd.PaymentCancel.Check(cur.ID, paymentd.PaymentStatus(cur.Status)), nil
	}
	switch kind := providers.KindOf(perr); {
	case perr == nil:
		if err := paymentd.PaymentCancel.Check(cur.ID, paymentd.PaymentStatus(cur.Status)); err != nil {
			return err, nil
		}
		clearPending(cur)
		cur.AmountCapturable = 0
		if err := writePayment(tx, pr, cur, paymentd.PaymentCancel, ik, respond, nil); err != nil {
			return nil, err
		}
		return nil, tx.DeleteReconcileCheck(cur.AccountID, cur.Livemode, cur.ID)
	case kind == providers.Unknown:
		return providerCallError(perr, cur.Provider), nil
	}
	return refusedAnswer(tx, cur, perr, pending)
}

// reconcilePendingOps re-sends the captures and cancels providers left
// unanswered, once the call that sent them must have ended.
func (s reconciler) reconcilePendingOps(ctx context.Context, cfg ReconcileConfig, now time.Time) {
	ps, states, err := s.store.PendingOperations(ctx, now.Add(-max(cfg.Schedule[0], 2*s.cfg.ProviderTimeout)), now, reconcileBatch)
	if err != nil && ctx.Err() == nil {
		s.log.Error("reconciler: reading pending operations", "error", err.Error())
	}
	for i, p := range ps {
		if ctx.Err() != nil {
			return
		}
		if !s.claimItem(ctx, p.AccountID, p.Livemode, p.ID) {
			continue
		}
		s.reconcilePendingOp(ctx, cfg, p, states[i])
	}
}

func (s reconciler) reconcilePendingOp(ctx context.Context, cfg ReconcileConfig, p *store.Payment, st store.ReconcileState) {
	log := s.log.With("payment", p.ID, "operation", p.PendingOp, "attempt", st.Attempts+1)
	pr := &Principal{AccountID: p.AccountID, Livemode: p.Livemode}
	prov, err := s.providerFor(p)
	if err != nil {
		s.reschedule(p.ID, p.AccountID, p.Livemode, cfg, st, err)
		return
	}
	discard := func(out *pb.Payment) proto.Message { return out }
	var perr error
	pctx, done := s.providerCall(ctx, prov, p.PendingOp)
	var newRef string
	if p.PendingOp == opCapture {
		newRef, perr = captureRouted(pctx, prov, providers.CaptureRequest{IdempotencyKey: providers.CaptureKey(p.ID),
			Reference: p.ProviderRef, Amount: p.PendingAmount, Currency: p.Currency})
	} else {
		perr = prov.Cancel(pctx, p.ProviderRef)
	}
	done(perr)
	if ctx.Err() != nil {
		return
	}
	if providers.KindOf(perr) == providers.Unknown {
		log.Warn("reconciler: pending operation still unanswered", "error", perr.Error())
		s.operatorItemIfStuck(p, perr)
		s.reschedule(p.ID, p.AccountID, p.Livemode, cfg, st, perr)
		return
	}
	err = s.store.Write(ctx, func(tx *store.Tx) error {
		var err error
		if p.PendingOp == opCapture {
			_, err = applyCaptureAnswer(tx, pr, p.ID, p.PendingAmount, newRef, perr, true, nil, discard)
		} else {
			_, err = applyCancelAnswer(tx, pr, p.ID, perr, true, nil, discard)
		}
		return err
	})
	if err != nil {
		log.Error("reconciler: recording a pending operation's answer", "error", err.Error())
		return
	}
	log.Info("reconciler: pending operation settled", "refused", perr != nil)
}

// operatorItemIfStuck records an operator item when a provider's answer says
// money moved but not how (Aslan's "already confirmed" without the payment's
// id), or refuses a re-sent confirmation in a way that does not say whether
// the first one charged (Aslan's other 4xx to a confirm): asking again
// cannot settle it.
func (s reconciler) operatorItemIfStuck(p *store.Payment, perr error) {
	var pe *providers.Error
	if !errors.As(perr, &pe) {
		return
	}
	switch pe.Code {
	case providers.CodeAlreadyConfirmed:
		s.addOperatorItem(p.AccountID, p.Livemode, p.ID, "payment_captured_reference_unknown", fmt.Sprintf(
			"%s says the authorization %s of payment %s was confirmed (charged), but does not say the payment's id; paymentd keeps the payment unsettled. Find the payment in the %s dashboard and settle it by hand.",
			p.Provider, p.ProviderRef, p.ID, p.Provider))
	case providers.CodeConfirmRefusedUnclear:
		s.addOperatorItem(p.AccountID, p.Livemode, p.ID, "payment_capture_outcome_unknown", fmt.Sprintf(
			"%s refused the confirmation of authorization %s of payment %s in a way that does not say whether an earlier confirmation charged it, and has no call to read it back; paymentd keeps the payment unsettled. Look the authorization up in the %s dashboard and settle the payment by hand.",
			p.Provider, p.ProviderRef, p.ID, p.Provider))
	}
}

// addOperatorItem records an operator item (once per object and kind).
func (s *Service) addOperatorItem(accountID string, livemode bool, objectID, kind, msg string) {
	err := s.store.Write(context.Background(), func(tx *store.Tx) error {
		return addOperatorItemTx(tx, accountID, livemode, objectID, kind, msg)
	})
	if err != nil {
		s.log.Error("recording an operator item", "object", objectID, "kind", kind, "error", err.Error())
	}
}

// PrefixOperatorItem is the id prefix of operator items.
const PrefixOperatorItem = "opi_"

func addOperatorItemTx(tx *store.Tx, accountID string, livemode bool, objectID, kind, msg string) error {
	_, err := tx.AddOperatorItem(&store.OperatorItem{ID: NewID(PrefixOperatorItem), AccountID: accountID, Livemode: livemode,
		ObjectID: objectID, Kind: kind, Message: msg})
	return err
}

// operatorComponent reports the open operator items for /v1/status:
// degraded while any is open, since each needs a person.
func (s *Service) operatorComponent(ctx context.Context) *pb.ComponentStatus {
	n, err := s.store.OpenOperatorItems(ctx)
	switch {
	case err != nil:
		return &pb.ComponentStatus{Status: Degraded, Message: "operator items could not be counted"}
	case n > 0:
		return &pb.ComponentStatus{Status: Degraded, Message: fmt.Sprintf(
			"%d open operator item(s): objects paymentd could not settle on its own; list them with `paymentd operator-items`", n)}
	}
	return &pb.ComponentStatus{Status: Operational, Message: "0 open operator items"}
}

// reconcileWithoutStatus settles a payment left unknown or processing at a
// provider that has no status call (Aslan). When the authorization is known
// and the payment was to be captured at once, the confirmation is sent
// again with the same upstream idempotency key: the provider then answers
// the payment it made, or makes the one that was asked for. Whatever cannot
// be settled that way becomes an operator item; nothing is ever guessed.
func (s reconciler) reconcileWithoutStatus(ctx context.Context, cfg ReconcileConfig, prov providers.Payments, p *store.Payment, st store.ReconcileState) {
	log := s.log.With("payment", p.ID, "provider", p.Provider, "attempt", st.Attempts+1)
	cr, canConfirm := prov.(providers.CaptureReferencer)
	if !canConfirm || p.ProviderRef == "" || p.CaptureMethod != "automatic" {
		why := "its provider was never heard from with the authorization's id"
		if !canConfirm {
			why = "its provider has no call that can settle it"
		}
		s.addOperatorItem(p.AccountID, p.Livemode, p.ID, "payment_unsettled_no_status_endpoint", fmt.Sprintf(
			"Payment %s (%d %s) is %s at %s, which has no status endpoint, and %s. Look it up in the %s dashboard: money may have moved.",
			p.ID, p.Amount, p.Currency, p.Status, p.Provider, why, p.Provider))
		s.reschedule(p.ID, p.AccountID, p.Livemode, cfg, st, errors.New(why))
		return
	}
	pctx, done := s.providerCall(ctx, cr, "capture")
	ref, perr := cr.CaptureReference(pctx, providers.CaptureRequest{IdempotencyKey: providers.CaptureKey(p.ID),
		Reference: p.ProviderRef, Amount: p.Amount, Currency: p.Currency})
	done(perr)
	if ctx.Err() != nil {
		return
	}
	var state providers.PaymentState
	switch providers.KindOf(perr) {
	case 0:
		state = providers.PaymentState{Reference: ref, Status: "captured", Amount: p.Amount, Currency: p.Currency}
	case providers.Declined:
		state = providers.PaymentState{Status: "failed"}
	default:
		log.Warn("reconciler: confirmation re-sent, still unsettled", "error", perr.Error())
		s.operatorItemIfStuck(p, perr)
		s.reschedule(p.ID, p.AccountID, p.Livemode, cfg, st, perr)
		return
	}
	pr := &Principal{AccountID: p.AccountID, Livemode: p.Livemode}
	err := s.store.Write(ctx, func(tx *store.Tx) error {
		if ref != "" {
			// The confirmation made a new provider object (pay_…), which
			// refunds must name.
			cur, err := reloadPayment(tx, pr, p.ID)
			if err != nil {
				return err
			}
			cur.ProviderRef = ref
			if err := tx.UpdatePayment(cur); err != nil {
				return err
			}
		}
		if err := settlePaymentTx(tx, pr, p.ID, state); err != nil {
			return err
		}
		return tx.ResolveOperatorItems(p.AccountID, p.Livemode, p.ID)
	})
	switch {
	case errors.Is(err, errAlreadySettled):
		s.dropReconcileSchedule(p.AccountID, p.Livemode, p.ID)
	case err != nil:
		log.Error("reconciler: recording a re-sent confirmation", "error", err.Error())
		s.reschedule(p.ID, p.AccountID, p.Livemode, cfg, st, err)
	default:
		log.Info("reconciler: payment settled by re-sending its confirmation", "status", state.Status)
	}
}

// refuseCancelAtProvider refuses to cancel an invoice a provider serves
// (aspayds, alppay): neither has a call that closes its payment page or
// deposit address, so a local cancel would leave the provider taking money
// for an invoice paymentd calls canceled (issue 10 case 7). The invoice ends
// paid or expired, as the provider reports.
func refuseCancelAtProvider(inv *store.Invoice) error {
	if inv.ProviderRef == "" {
		return nil
	}
	return &Error{Kind: KindConflict, Code: "invoice_cancel_unsupported", Param: "id", Message: fmt.Sprintf(
		"Invoice %s is served by %s, which has no way to cancel it: its payment page keeps taking payments until the invoice expires at %s. Let it expire, and refund a payment that arrives if the order no longer stands.",
		inv.ID, inv.Provider, inv.ExpiresAt.UTC().Format(time.RFC3339))}
}

// invoiceAttemptFloor is the smallest payment id that can belong to inv:
// ids are time-ordered and an invoice's payments come after it.
func invoiceAttemptFloor(inv *store.Invoice) string {
	return PrefixPayment + inv.ID[len(PrefixInvoice):]
}

// refuseWhileAttemptUnsettled refuses to change inv (pay it again, cancel
// it) while a payment attempt for it has no definite answer: the provider
// may have taken the money, and the invoice must never collect twice.
func refuseWhileAttemptUnsettled(tx *store.Tx, inv *store.Invoice, what string) error {
	if inv.Network != "" || len(inv.ID) <= len(PrefixInvoice) {
		return nil
	}
	p, err := tx.UnsettledInvoicePayment(inv.AccountID, inv.Livemode, inv.ID, invoiceAttemptFloor(inv))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return &Error{Kind: KindConflict, Code: "invoice_payment_unsettled", Param: "id", Message: fmt.Sprintf(
		"Invoice %s cannot be %s now: its payment %s (status %s) has no definite answer from the provider yet. It is applied to the invoice once it settles; try again after that.",
		inv.ID, what, p.ID, p.Status)}
}

// applyPaymentToInvoiceTx applies a payment made on an invoice's payment
// page that settled after the page's call (by the reconciler or a provider
// webhook): a succeeded payment pays the invoice if it is still open. If it
// is not (expired meanwhile, or paid by another payment), the money is
// recorded on the payment anyway and an operator item says the customer
// paid for an invoice that no longer wanted it.
func applyPaymentToInvoiceTx(tx *store.Tx, p *store.Payment) error {
	invID := p.Metadata["invoice_id"]
	if invID == "" || paymentd.PaymentStatus(p.Status) != paymentd.PaymentSucceeded {
		return nil
	}
	inv, err := tx.GetInvoice(p.AccountID, p.Livemode, invID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if paymentd.InvoiceStatus(inv.Status) == paymentd.InvoiceOpen && inv.Network == "" && p.Amount == inv.Amount && p.Currency == inv.Currency {
		inv.PaymentID, inv.AmountPaid = p.ID, inv.Amount
		_, err := writeInvoice(tx, inv, paymentd.InvoicePay, nil)
		return err
	}
	if inv.PaymentID == p.ID {
		return nil
	}
	return addOperatorItemTx(tx, p.AccountID, p.Livemode, p.ID, "invoice_payment_after_close", fmt.Sprintf(
		"Payment %s of %d %s for invoice %s succeeded after the invoice became %s; the money is in the account. Refund the payment, or honor the invoice.",
		p.ID, p.Amount, p.Currency, inv.ID, inv.Status))
}

// invoiceAttemptHash identifies what an invoice creation asked for, so that
// only the same request resumes an unanswered one.
func invoiceAttemptHash(inv *store.Invoice) []byte {
	b, _ := json.Marshal([]any{inv.Amount, inv.Currency, inv.Network, inv.CustomerName, inv.CustomerEmail,
		inv.CustomerID, inv.Description, inv.CallbackURL, inv.Metadata})
	h := sha256.Sum256(b)
	return h[:]
}

// resumeInvoiceAttempt returns the connection an earlier, unanswered
// creation of inv's reference was sent to (and gives inv that attempt's
// id), or nil when there is none. Another request with the same reference
// is a duplicate.
func (s connections) resumeInvoiceAttempt(ctx context.Context, pr *Principal, inv *store.Invoice) (*routing.Connection, error) {
	att, err := s.store.GetInvoiceAttempt(ctx, pr.AccountID, pr.Livemode, inv.TransactionReference)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(att.RequestHash, invoiceAttemptHash(inv)) {
		return nil, duplicateReference(inv.TransactionReference, att.InvoiceID)
	}
	c, ok := s.cfg.Router.Connection(att.Provider)
	if !ok {
		return nil, Errorf(KindUnavailable, "provider_not_configured",
			"The invoice provider %s that was asked to create invoice %s is no longer configured.", att.Provider, att.InvoiceID)
	}
	life := inv.ExpiresAt.Sub(inv.Created)
	inv.ID, inv.Created = att.InvoiceID, IDTime(att.InvoiceID)
	inv.ExpiresAt = inv.Created.Add(life)
	return c, nil
}

// findInvoiceAttempt looks an unanswered creation up at its provider. done
// is true when it was found (inv then carries the provider's reference) or
// cannot be looked up (an error says so, and an operator item records it):
// a provider without a lookup is never asked to create it a second time.
func (s connections) findInvoiceAttempt(ctx context.Context, c *routing.Connection, inv *store.Invoice, req providers.InvoiceRequest) (done bool, err error) {
	finder, ok := c.Client.(providers.InvoiceFinder)
	if !ok {
		s.addOperatorItem(inv.AccountID, inv.Livemode, inv.ID, "invoice_creation_unsettled", fmt.Sprintf(
			"Invoice %s (reference %s, %d %s) was sent to %s, which did not answer and offers no way to look it up; it is not created again. Check the %s dashboard for a payment with invoice %s.",
			inv.ID, inv.TransactionReference, inv.Amount, inv.Currency, c.Name, c.Name, inv.ID))
		return true, &Error{Kind: KindProviderUnsettled, Code: "invoice_creation_unsettled", Message: fmt.Sprintf(
			"The invoice provider %s did not answer the creation of invoice %s, and it cannot be looked up; it is not created again, so that the customer is never asked to pay twice. An operator item was recorded.",
			c.Name, inv.ID)}
	}
	pctx, end := s.providerCall(ctx, finder, "find_invoice")
	st, found, err := finder.FindInvoice(pctx, req)
	end(err)
	switch {
	case err != nil:
		return true, providerCallError(err, c.Name)
	case !found:
		return false, nil
	case st.Reference == "" || (st.Amount != 0 && st.Amount != inv.Amount) || (st.Currency != "" && !strings.EqualFold(st.Currency, inv.Currency)):
		return true, Errorf(KindProviderUnsettled, "provider_answer_mismatch",
			"The invoice provider %s reports reference %s with %d %s, not the invoice's %d %s; the invoice was not recorded.",
			c.Name, inv.TransactionReference, st.Amount, st.Currency, inv.Amount, inv.Currency)
	}
	inv.Provider, inv.ProviderRef, inv.PaymentURL = c.Name, st.Reference, st.PaymentURL
	if st.DepositAddress != "" {
		inv.DepositAddress = st.DepositAddress
	}
	if st.ConfirmationsRequired > 0 {
		inv.ConfirmationsRequired = st.ConfirmationsRequired
	}
	return true, nil
}

// recordInvoiceAttempt records, before the call, that inv is being created
// at connection.
func (s connections) recordInvoiceAttempt(ctx context.Context, pr *Principal, inv *store.Invoice, connection string) error {
	body, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	return s.store.Write(ctx, func(tx *store.Tx) error {
		return tx.PutInvoiceAttempt(&store.InvoiceAttempt{AccountID: pr.AccountID, Livemode: pr.Livemode,
			TransactionReference: inv.TransactionReference, InvoiceID: inv.ID, Provider: connection,
			RequestHash: invoiceAttemptHash(inv), Invoice: body})
	})
}

// dropInvoiceAttempt forgets an attempt the provider refused definitely.
func (s connections) dropInvoiceAttempt(ctx context.Context, pr *Principal, inv *store.Invoice) error {
	wctx, cancel := recordCtx(ctx)
	defer cancel()
	return s.store.Write(wctx, func(tx *store.Tx) error {
		return tx.DeleteInvoiceAttempt(pr.AccountID, pr.Livemode, inv.TransactionReference)
	})
}

// reconcileInvoiceAttempts resolves provider-served invoice creations left
// unanswered that nobody retried: found at the provider, the invoice is
// recorded; definitely absent, the attempt is dropped (nothing was
// created); a provider without a lookup leaves an operator item.
func (s reconciler) reconcileInvoiceAttempts(ctx context.Context, cfg ReconcileConfig, now time.Time) {
	atts, err := s.store.InvoiceAttemptsBefore(ctx, now.Add(-max(cfg.Schedule[0], 2*s.cfg.ProviderTimeout)), reconcileBatch)
	if err != nil && ctx.Err() == nil {
		s.log.Error("reconciler: reading invoice attempts", "error", err.Error())
	}
	for _, att := range atts {
		if ctx.Err() != nil {
			return
		}
		if !s.claimItem(ctx, att.AccountID, att.Livemode, att.InvoiceID) {
			continue
		}
		var inv store.Invoice
		if err := json.Unmarshal(att.Invoice, &inv); err != nil {
			s.log.Error("reconciler: invoice attempt unreadable", "invoice", att.InvoiceID, "error", err.Error())
			continue
		}
		log := s.log.With("invoice", inv.ID, "provider", att.Provider)
		c, ok := s.cfg.Router.Connection(att.Provider)
		if !ok {
			continue
		}
		req := providers.InvoiceRequest{IdempotencyKey: inv.ID, Reference: inv.TransactionReference, Amount: inv.Amount,
			Currency: inv.Currency, Network: inv.Network, Livemode: inv.Livemode}
		done, ferr := s.conns.findInvoiceAttempt(ctx, c, &inv, req)
		switch {
		case ferr != nil:
			log.Warn("reconciler: invoice creation still unsettled", "error", ferr.Error())
			continue
		case !done:
			err = s.store.Write(ctx, func(tx *store.Tx) error {
				return tx.DeleteInvoiceAttempt(att.AccountID, att.Livemode, att.TransactionReference)
			})
			log.Info("reconciler: the provider has no such invoice; attempt dropped")
		default:
			err = s.store.Write(ctx, func(tx *store.Tx) error {
				if err := tx.DeleteInvoiceAttempt(att.AccountID, att.Livemode, att.TransactionReference); err != nil {
					return err
				}
				if _, err := tx.InvoiceIDByReference(att.AccountID, att.Livemode, inv.TransactionReference); err == nil {
					return nil // recorded meanwhile by a retry
				}
				inv.Status = "" // new on every run (PostgreSQL runs a change again after a lost race)
				_, err := writeInvoice(tx, &inv, paymentd.InvoiceCreate, nil)
				return err
			})
			log.Info("reconciler: invoice found at its provider and recorded")
		}
		if err != nil {
			log.Error("reconciler: recording an invoice attempt", "error", err.Error())
		}
	}
}

// pendingRefundItem records the operator item of a refund left pending at
// a provider that has no refund status call: nothing can settle it, and
// asking again could refund twice.
func (s *Service) pendingRefundItem(r *store.Refund, p *store.Payment) {
	s.addOperatorItem(r.AccountID, r.Livemode, r.ID, "refund_unsettled_no_status_endpoint", fmt.Sprintf(
		"Refund %s of %d %s on payment %s got no definite answer from %s, which has no refund status call; its amount stays reserved. Look the refund up in the %s dashboard, then settle it by hand.",
		r.ID, r.Amount, r.Currency, p.ID, p.Provider, p.Provider))
}
