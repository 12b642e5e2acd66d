package service

import (
	"cmp"
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/store"
)

// ReconcileConfig tunes the reconciler, which asks providers again about
// whatever they left unsettled: payments in unknown or processing, refunds
// in pending, and the objects a provider connection serves that can still
// change (invoices open or partially paid, payouts pending or processing),
// whose webhooks may never arrive. Zero values take the defaults documented
// on each field.
type ReconcileConfig struct {
	// Schedule is when to ask: the first status call once an object has been
	// unsettled for Schedule[0], each next one the following delay after the
	// previous; the last delay repeats until the object is settled (default
	// 1m, 5m, 1h, 24h: after a minute, five minutes later, an hour later,
	// then daily).
	Schedule []time.Duration
	// Interval is how often the reconciler looks for objects due a call (default 10s).
	Interval time.Duration
}

func (c ReconcileConfig) withDefaults() ReconcileConfig {
	if len(c.Schedule) == 0 {
		c.Schedule = []time.Duration{time.Minute, 5 * time.Minute, time.Hour, 24 * time.Hour}
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	return c
}

// after is the delay before the next status call once attempts calls left
// the object unsettled.
func (c ReconcileConfig) after(attempts int) time.Duration {
	return c.Schedule[min(attempts, len(c.Schedule)-1)]
}

// reconciler is the worker that asks providers about whatever they left
// unsettled and applies their answers through the same transitions as the
// API (reconciler.go, and boundary.go for pending captures, cancels and
// invoice creations). It is a type of its own so that the worker's steps
// are not methods of Service; it reaches the store, the providers and the
// configuration through the Service it embeds.
type reconciler struct{ *Service }

// reconcileBatch bounds the objects asked about per pass.
const reconcileBatch = 100

// reconcile asks providers about unsettled objects on the schedule until
// ctx ends. Every replica of a fleet runs it; each object is asked about by
// the one replica that claims it (claimItem, workers.go).
func (s reconciler) reconcile(ctx context.Context) {
	cfg := s.cfg.Reconcile.withDefaults()
	every(ctx, cfg.Interval, nil, func(ctx context.Context) { s.reconcileOnce(ctx, cfg) })
}

func (s reconciler) reconcileOnce(ctx context.Context, cfg ReconcileConfig) {
	now := time.Now()
	ps, states, err := s.store.UnsettledPayments(ctx, now.Add(-cfg.Schedule[0]), now, reconcileBatch)
	if err != nil && ctx.Err() == nil {
		s.log.Error("reconciler: reading unsettled payments", "error", err.Error())
	}
	for i, p := range ps {
		if ctx.Err() != nil {
			return
		}
		if !s.claimItem(ctx, p.AccountID, p.Livemode, p.ID) {
			continue
		}
		s.reconcilePayment(ctx, cfg, p, states[i])
	}
	// A refund is pending also while CreateRefund waits for the provider,
	// whose answer it then records without looking again: leave refunds
	// alone until that call must have ended.
	rs, rstates, err := s.store.PendingRefunds(ctx, now.Add(-max(cfg.Schedule[0], 2*s.cfg.ProviderTimeout)), now, reconcileBatch)
	if err != nil && ctx.Err() == nil {
		s.log.Error("reconciler: reading pending refunds", "error", err.Error())
	}
	for i, r := range rs {
		if ctx.Err() != nil {
			return
		}
		if !s.claimItem(ctx, r.AccountID, r.Livemode, r.ID) {
			continue
		}
		s.reconcileRefund(ctx, cfg, r, rstates[i])
	}
	s.reconcilePendingOps(ctx, cfg, now)      // captures and cancels left unanswered (boundary.go)
	s.reconcileInvoiceAttempts(ctx, cfg, now) // provider-served invoice creations left unanswered (boundary.go)
	s.reconcileProviderObjects(ctx, cfg, now)
}

// reconcileProviderObjects polls the invoices and payouts provider
// connections serve (provider_sync.go) on the same schedule: an invoice
// first once it has been unchanged for Schedule[0], a payout once its
// creation call must have ended too (CreatePayout records it pending before
// it asks the provider). Each change the provider reports restarts the
// object's schedule; settled objects leave it, except invoices, asked about
// until LateTransferWindow after their expiry.
func (s reconciler) reconcileProviderObjects(ctx context.Context, cfg ReconcileConfig, now time.Time) {
	pollInvoices := func(what string, invs []*store.Invoice, states []store.ReconcileState, err error) {
		if err != nil && ctx.Err() == nil {
			s.log.Error("reconciler: reading "+what, "error", err.Error())
		}
		for i, inv := range invs {
			if ctx.Err() != nil {
				return
			}
			if s.claimItem(ctx, inv.AccountID, inv.Livemode, inv.ID) {
				s.reconcileInvoice(ctx, cfg, inv, states[i])
			}
		}
	}
	invs, states, err := s.store.ProviderInvoicesDue(ctx, now.Add(-cfg.Schedule[0]), now, reconcileBatch)
	pollInvoices("provider invoices", invs, states, err)
	// Ended ones too, for money that reaches their provider late.
	invs, states, err = s.store.EndedProviderInvoicesDue(ctx, now.Add(-LateTransferWindow), now.Add(-cfg.Schedule[0]), now, reconcileBatch)
	pollInvoices("ended provider invoices", invs, states, err)
	if ctx.Err() != nil {
		return
	}
	ps, pstates, err := s.store.ProviderPayoutsDue(ctx, sandboxName, now.Add(-max(cfg.Schedule[0], 2*s.cfg.ProviderTimeout)), now, reconcileBatch)
	if err != nil && ctx.Err() == nil {
		s.log.Error("reconciler: reading provider payouts", "error", err.Error())
	}
	for i, p := range ps {
		if ctx.Err() != nil {
			return
		}
		if !s.claimItem(ctx, p.AccountID, p.Livemode, p.ID) {
			continue
		}
		s.reconcilePayout(ctx, cfg, p, pstates[i])
	}
}

// reconcileInvoice asks an invoice's provider for its state and records
// what is new, or schedules the next call.
func (s reconciler) reconcileInvoice(ctx context.Context, cfg ReconcileConfig, inv *store.Invoice, st store.ReconcileState) {
	s.metrics.reconciler.WithLabelValues("due").Inc()
	log := s.log.With("invoice", inv.ID, "provider", inv.Provider, "attempt", st.Attempts+1)
	pst, err := s.invoiceProviderState(ctx, inv)
	if err == nil && invoiceStateNews(inv, pst) {
		var cur *store.Invoice
		var changed bool
		err = s.store.Write(ctx, func(tx *store.Tx) (err error) {
			cur, changed, err = applyInvoiceStateTx(tx, inv, pst)
			return err
		})
		if err == nil && (changed || (!paymentd.Payable(paymentd.InvoiceStatus(cur.Status)) && !askedAfterEnd(cur, time.Now()))) {
			log.Info("reconciler: invoice updated from its provider", "status", cur.Status, "amount_paid", cur.AmountPaid)
			s.metrics.reconciler.WithLabelValues("settled").Inc()
			return // its schedule was dropped in the same write
		}
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		log.Warn("reconciler: invoice provider not read", "error", err.Error())
	} else {
		err = errNotSettled
	}
	s.reschedule(inv.ID, inv.AccountID, inv.Livemode, cfg, st, err)
}

// reconcilePayout asks a payout's provider for its state and records a step
// forward, or schedules the next call.
func (s reconciler) reconcilePayout(ctx context.Context, cfg ReconcileConfig, p *store.Payout, st store.ReconcileState) {
	s.metrics.reconciler.WithLabelValues("due").Inc()
	log := s.log.With("payout", p.ID, "provider", p.Provider, "attempt", st.Attempts+1)
	pst, err := s.payoutProviderState(ctx, p)
	if providers.Absent(err) && s.neverCreated(cfg, p.ProviderRef, p.Created, st) {
		pst, err = providers.PayoutState{Status: "rejected",
			Reason: "it has no record of it (asked again after its creation went unanswered); nothing was sent"}, nil
	}
	if err == nil && payoutStateNews(p, pst) {
		var cur *store.Payout
		var changed bool
		err = s.store.Write(ctx, func(tx *store.Tx) (err error) {
			cur, changed, err = applyPayoutStateTx(tx, p, pst)
			return err
		})
		if err == nil && (changed || !paymentd.PayoutActive(paymentd.PayoutStatus(cur.Status))) {
			log.Info("reconciler: payout updated from its provider", "status", cur.Status)
			s.metrics.reconciler.WithLabelValues("settled").Inc()
			return // its schedule was dropped in the same write
		}
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		log.Warn("reconciler: payout provider not read", "error", err.Error())
	} else {
		err = errNotSettled
	}
	s.reschedule(p.ID, p.AccountID, p.Livemode, cfg, st, err)
}

// errNotSettled: the provider's answer leaves the object where it is.
var errNotSettled = errors.New("not settled")

func (s reconciler) reconcilePayment(ctx context.Context, cfg ReconcileConfig, p *store.Payment, st store.ReconcileState) {
	s.metrics.reconciler.WithLabelValues("due").Inc()
	log := s.log.With("payment", p.ID, "attempt", st.Attempts+1)
	if prov, err := s.providerFor(p); err == nil {
		if _, ok := prov.(providers.PaymentStatusGetter); !ok {
			s.reconcileWithoutStatus(ctx, cfg, prov, p, st) // Aslan (boundary.go)
			return
		}
	}
	state, err := s.paymentState(ctx, p)
	if providers.Absent(err) && s.neverCreated(cfg, p.ProviderRef, p.Created, st) {
		state, err = providers.PaymentState{Status: "failed",
			Reason: "The provider has no record of the payment (asked again after its creation went unanswered); no money moved."}, nil
	}
	if err == nil {
		err = s.settlePayment(ctx, p.AccountID, p.Livemode, p.ID, state)
		if err == nil {
			log.Info("reconciler: payment settled", "status", state.Status)
			s.metrics.reconciler.WithLabelValues("settled").Inc()
			return
		}
	}
	switch {
	case ctx.Err() != nil:
		return
	case errors.Is(err, errAlreadySettled):
		s.dropReconcileSchedule(p.AccountID, p.Livemode, p.ID)
		return
	case !errors.Is(err, errNotSettled):
		log.Warn("reconciler: payment still unsettled", "error", err.Error())
	}
	s.reschedule(p.ID, p.AccountID, p.Livemode, cfg, st, err)
}

// neverCreated reports whether an object whose provider has just answered
// that it holds none under paymentd's id (providers.Absent) was never
// created there: its creation went unanswered (no provider reference yet),
// this is not the first status call about it, and it was created long
// enough ago (twice the provider timeout, and the schedule's first delay)
// that no attempt to create it can still be on its way or in the
// provider's hands.
func (s reconciler) neverCreated(cfg ReconcileConfig, providerRef string, created time.Time, st store.ReconcileState) bool {
	return providerRef == "" && st.Attempts >= 1 && time.Since(created) >= max(2*s.cfg.ProviderTimeout, cfg.Schedule[0])
}

// dropReconcileSchedule drops the schedule of an object settled by someone else.
func (s reconciler) dropReconcileSchedule(accountID string, livemode bool, objectID string) {
	_ = s.store.Write(context.Background(), func(tx *store.Tx) error { return tx.DeleteReconcileCheck(accountID, livemode, objectID) })
}

// paymentState asks the payment's provider for its current state.
func (s reconciler) paymentState(ctx context.Context, p *store.Payment) (providers.PaymentState, error) {
	prov, err := s.providerFor(p)
	if err != nil {
		return providers.PaymentState{}, err
	}
	getter, ok := prov.(providers.PaymentStatusGetter)
	if !ok {
		return providers.PaymentState{}, errors.New("provider " + p.Provider + " cannot report a payment's status")
	}
	ref := p.ProviderRef
	if ref == "" {
		ref = p.ID // Authorize never answered: the provider knows it by our idempotency key
	}
	pctx, done := s.providerCall(ctx, getter, "get_payment")
	st, err := getter.GetPayment(pctx, ref)
	done(err)
	return st, err
}

// settlePayment applies a provider's confirmed state to a payment left
// unknown or processing, with its ledger entries and event, in one write.
// A payment already settled is never moved (an older, out-of-order answer
// cannot undo a newer one); a provider still pending is errNotSettled.
func (s reconciler) settlePayment(ctx context.Context, accountID string, livemode bool, id string, state providers.PaymentState) error {
	if _, ok := paymentd.PaymentSettlement(state.Status); !ok {
		return errNotSettled
	}
	pr := &Principal{AccountID: accountID, Livemode: livemode}
	return s.store.Write(ctx, func(tx *store.Tx) error { return settlePaymentTx(tx, pr, id, state) })
}

// settlePaymentTx is settlePayment inside a write.
func settlePaymentTx(tx *store.Tx, pr *Principal, id string, state providers.PaymentState) error {
	t, ok := paymentd.PaymentSettlement(state.Status)
	if !ok {
		return errNotSettled
	}
	cur, err := reloadPayment(tx, pr, id)
	if err != nil {
		return err
	}
	if !t.Allows(paymentd.PaymentStatus(cur.Status)) {
		return errAlreadySettled
	}
	if state.Currency != "" && state.Currency != cur.Currency {
		return errors.New("the provider reports currency " + state.Currency + ", not " + cur.Currency)
	}
	if state.Amount > cur.Amount {
		return errors.New("the provider reports more than the payment's amount")
	}
	if cur.ProviderRef == "" {
		cur.ProviderRef = state.Reference
	}
	switch t.Destination {
	case paymentd.PaymentSucceeded:
		amount := cur.Amount
		if state.Amount > 0 {
			amount = state.Amount
		}
		cur.AmountCaptured, cur.AmountCapturable = amount, 0
	case paymentd.PaymentRequiresCapture:
		cur.AmountCapturable = cur.Amount
	case paymentd.PaymentFailed:
		cur.AmountCapturable = 0
		cur.FailureCode = "payment_failed"
		cur.FailureMessage = cmp.Or(state.Reason, "The provider reported the payment as failed after it had not answered; no money moved.")
	}
	if err := writePayment(tx, pr, cur, t, nil, func(out *pb.Payment) proto.Message { return out }, nil); err != nil {
		return err
	}
	if err := applyPaymentToInvoiceTx(tx, cur); err != nil { // a hosted page's attempt (boundary.go)
		return err
	}
	return tx.DeleteReconcileCheck(cur.AccountID, cur.Livemode, cur.ID)
}

// errAlreadySettled: the object left the status the change applies to.
var errAlreadySettled = errors.New("already settled")

// reschedule records a status call that left the object unsettled.
func (s reconciler) reschedule(objectID, accountID string, livemode bool, cfg ReconcileConfig, st store.ReconcileState, cause error) {
	s.metrics.reconciler.WithLabelValues("rescheduled").Inc()
	st.Attempts++
	st.NextCheck = time.Now().Add(cfg.after(st.Attempts))
	lastErr := ""
	if cause != nil && !errors.Is(cause, errNotSettled) {
		lastErr = truncate(cause.Error(), 500)
	}
	err := s.store.Write(context.Background(), func(tx *store.Tx) error {
		return tx.SetReconcileCheck(objectID, accountID, livemode, st, lastErr)
	})
	if err != nil {
		s.log.Error("reconciler: scheduling", "object", objectID, "error", err.Error())
	}
}

func (s reconciler) reconcileRefund(ctx context.Context, cfg ReconcileConfig, r *store.Refund, st store.ReconcileState) {
	s.metrics.reconciler.WithLabelValues("due").Inc()
	log := s.log.With("refund", r.ID, "attempt", st.Attempts+1)
	err := s.settleRefundFromProvider(ctx, r)
	if err == nil {
		log.Info("reconciler: refund settled")
		s.metrics.reconciler.WithLabelValues("settled").Inc()
		return
	}
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, errAlreadySettled) {
		s.dropReconcileSchedule(r.AccountID, r.Livemode, r.ID)
		return
	}
	if !errors.Is(err, errNotSettled) {
		log.Warn("reconciler: refund still pending", "error", err.Error())
	}
	s.reschedule(r.ID, r.AccountID, r.Livemode, cfg, st, err)
}

func (s reconciler) settleRefundFromProvider(ctx context.Context, r *store.Refund) error {
	pr := &Principal{AccountID: r.AccountID, Livemode: r.Livemode}
	p, err := s.store.GetPayment(ctx, r.AccountID, r.Livemode, r.PaymentID)
	if err != nil {
		return err
	}
	prov, err := s.providerFor(p)
	if err != nil {
		return err
	}
	getter, ok := prov.(providers.RefundStatusGetter)
	if !ok {
		// Nothing can settle it: asking again would risk a second refund.
		s.pendingRefundItem(r, p)
		return errors.New("provider " + p.Provider + " cannot report a refund's status")
	}
	pctx, done := s.providerCall(ctx, getter, "get_refund")
	state, err := getter.GetRefund(pctx, r.ID)
	done(err)
	if err != nil {
		return err
	}
	t, settled := paymentd.RefundSettlement(state.Status)
	if !settled {
		return errNotSettled
	}
	return s.store.Write(ctx, func(tx *store.Tx) error {
		cur, err := tx.ReloadRefund(r.AccountID, r.Livemode, r.ID)
		if err != nil {
			return err
		}
		if !t.Allows(paymentd.RefundStatus(cur.Status)) {
			return errAlreadySettled
		}
		if _, err := settleRefund(tx, pr, cur, t); err != nil {
			return err
		}
		return tx.DeleteReconcileCheck(cur.AccountID, cur.Livemode, cur.ID)
	})
}
