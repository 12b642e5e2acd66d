package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/store"
)

// This file connects the services to the provider connections of
// paymentd.yaml (Config.Router, package providers/routing). Without a
// router, or for an operation it has no route for, the defaults stay: the
// sandbox in test mode and live_mode_not_configured in live mode.

// connections routes operations to the provider connections of
// paymentd.yaml and records what they answer; it is a part of Service of
// its own (Service.conns), reaching the store and the providers through the
// Service it embeds.
type connections struct{ *Service }

// paymentRoute returns the providers that may take a new payment in the
// caller's mode and currency, in order of preference.
func (s connections) paymentRoute(pr *Principal, currency string) ([]providers.Payments, error) {
	if conns := s.cfg.Router.Route(routing.Payments, pr.Livemode, currency); len(conns) > 0 {
		out := make([]providers.Payments, 0, len(conns))
		for _, c := range conns {
			if c.Provider == sandboxName {
				out = append(out, s.cfg.TestProvider) // the service's own sandbox, with its settings
				continue
			}
			out = append(out, c.Client.(providers.Payments)) // checked when the router was built
		}
		return out, nil
	}
	prov, _, err := s.paymentsProvider(pr)
	if err != nil {
		return nil, err
	}
	return []providers.Payments{prov}, nil
}

// authorizeRouted asks each provider in turn, each within the provider
// timeout, and returns the first answer with the name of the provider that
// gave it. It moves on to the next provider only after an Unavailable
// error, which proves no money moved (refused connection, 429/503, refused
// credentials); a decline, an invalid request or an ambiguous failure
// (Unknown) ends the search, so a payment is never made twice.
func (s connections) authorizeRouted(ctx context.Context, cands []providers.Payments, req providers.PaymentRequest) (providers.PaymentResult, string, error) {
	var (
		res  providers.PaymentResult
		name string
		err  error
	)
	for i, prov := range cands {
		name = providerName(prov)
		pctx, done := s.providerCall(ctx, prov, "authorize")
		res, err = prov.Authorize(pctx, req)
		done(err)
		if providers.KindOf(err) != providers.Unavailable || i == len(cands)-1 || ctx.Err() != nil {
			break
		}
		s.log.WarnContext(ctx, "provider unavailable; falling back", "payment", req.IdempotencyKey,
			"provider", name, "next", providerName(cands[i+1]), "error", err.Error())
	}
	return res, name, err
}

// captureRouted captures through prov and returns the reference later
// calls must use: a new one for providers whose capture creates a new
// object (Aslan's confirm), else "".
func captureRouted(ctx context.Context, prov providers.Payments, req providers.CaptureRequest) (string, error) {
	if cr, ok := prov.(providers.CaptureReferencer); ok {
		ref, err := cr.CaptureReference(ctx, req)
		if ref == req.Reference {
			ref = ""
		}
		return ref, err
	}
	return "", prov.Capture(ctx, req.Reference, req.Amount, req.Currency)
}

// routedPayments returns the configured connection called name, if it
// takes payments.
func (s connections) routedPayments(name string) (providers.Payments, bool) {
	c, ok := s.cfg.Router.Connection(name)
	if !ok || c.Provider == sandboxName { // the sandbox is Config.TestProvider
		return nil, false
	}
	p, ok := c.Client.(providers.Payments)
	return p, ok
}

// routedInvoices and routedPayouts find a configured connection by name,
// for objects that recorded it as their provider.
func (s connections) routedInvoices(name string) (providers.Invoices, bool) {
	c, ok := s.cfg.Router.Connection(name)
	if !ok {
		return nil, false
	}
	p, ok := c.Client.(providers.Invoices)
	return p, ok
}

func (s connections) routedPayouts(name string) (providers.Payouts, bool) {
	c, ok := s.cfg.Router.Connection(name)
	if !ok {
		return nil, false
	}
	p, ok := c.Client.(providers.Payouts)
	return p, ok
}

// connectionComponents reports each configured connection for /v1/status:
// its health as last observed (by the background status checks and by
// every real call; the status endpoint itself never calls a provider) and
// the latency of that last exchange.
func (s connections) connectionComponents() map[string]*pb.ComponentStatus {
	out := map[string]*pb.ComponentStatus{}
	for _, c := range s.cfg.Router.Connections() {
		h := c.Health()
		cs := &pb.ComponentStatus{Status: Operational, ResponseTimeMs: float64(h.Latency.Microseconds()) / 1000}
		if h.State == Degraded {
			cs.Status = Degraded
		}
		switch {
		case h.At.IsZero():
			cs.Message = c.Provider + " " + c.Mode + ": not called yet"
		case h.Message != "":
			cs.Message = c.Provider + " " + c.Mode + ": " + h.Message + " (at " + h.At.UTC().Format(time.RFC3339) + ")"
		default:
			cs.Message = c.Provider + " " + c.Mode + ": last answered at " + h.At.UTC().Format(time.RFC3339)
		}
		out["provider:"+c.Name] = cs
	}
	return out
}

// createRoutedInvoice creates inv at the provider its route names, before
// paymentd records it, and fills in what the provider answered: its
// reference, the payment URL its customers pay at, and for crypto invoices
// the deposit address and confirmations required. Without a route it does
// nothing (the sandbox's /pay page serves the invoice). It moves to the next
// connection of the route only after an Unavailable error; an answer whose
// amount or currency is not the invoice's is never taken as created.
func (s connections) createRoutedInvoice(ctx context.Context, pr *Principal, inv *store.Invoice) error {
	conns := s.cfg.Router.Route(routing.Invoices, pr.Livemode, inv.Currency)
	if len(conns) == 0 {
		return nil
	}
	// A duplicate is the caller's mistake, not the provider's: say so first.
	if dup, err := s.store.GetInvoiceByReference(ctx, pr.AccountID, pr.Livemode, inv.TransactionReference); err == nil {
		return duplicateReference(inv.TransactionReference, dup.ID)
	}
	// An earlier creation of this reference that went unanswered is
	// resumed (boundary.go): found at its provider, or created there again
	// only when the provider says it has none.
	resume, err := s.resumeInvoiceAttempt(ctx, pr, inv)
	if err != nil {
		return err
	}
	req := providers.InvoiceRequest{IdempotencyKey: inv.ID, Reference: inv.TransactionReference, Amount: inv.Amount,
		Currency: inv.Currency, Network: inv.Network, CustomerName: inv.CustomerName, CustomerEmail: inv.CustomerEmail,
		CustomerID: inv.CustomerID, Description: inv.Description, CallbackURL: inv.CallbackURL, Livemode: inv.Livemode}
	if resume != nil {
		done, err := s.findInvoiceAttempt(ctx, resume, inv, req)
		if done || err != nil {
			return err
		}
		conns = []*routing.Connection{resume} // it has none: create it there again
	}
	for i, c := range conns {
		prov := c.Client.(providers.Invoices)
		// Recorded before the call, so that a lost answer is never
		// followed by a second invoice (or a second alppay payment).
		if err := s.recordInvoiceAttempt(ctx, pr, inv, c.Name); err != nil {
			return err
		}
		pctx, done := s.providerCall(ctx, prov, "create_invoice")
		st, err := prov.CreateInvoice(pctx, req)
		done(err)
		kind := providers.KindOf(err)
		if kind == providers.Unavailable && i < len(conns)-1 && ctx.Err() == nil {
			s.log.WarnContext(ctx, "provider unavailable; falling back", "invoice", inv.ID, "provider", c.Name,
				"next", conns[i+1].Name, "error", err.Error())
			continue
		}
		var pe *providers.Error
		if resume != nil && errors.As(err, &pe) && pe.Code == "duplicate_transaction_reference" {
			kind = providers.Unknown // it exists after all: found by the next retry or the reconciler
		}
		if err != nil {
			if kind != providers.Unknown {
				// A definite refusal: nothing was created, the reference is free.
				if derr := s.dropInvoiceAttempt(ctx, pr, inv); derr != nil {
					return derr
				}
			}
			return providerCallError(err, c.Name)
		}
		if st.Reference == "" || st.PaymentURL == "" || st.Amount != inv.Amount || !strings.EqualFold(st.Currency, inv.Currency) {
			return Errorf(KindProviderUnsettled, "provider_answer_mismatch",
				"The invoice provider %s answered with %d %s, not the invoice's %d %s; the invoice was not created.",
				c.Name, st.Amount, st.Currency, inv.Amount, inv.Currency)
		}
		inv.Provider, inv.ProviderRef, inv.PaymentURL = c.Name, st.Reference, st.PaymentURL
		if st.DepositAddress != "" {
			inv.DepositAddress = st.DepositAddress
		}
		if st.ConfirmationsRequired > 0 {
			inv.ConfirmationsRequired = st.ConfirmationsRequired
		}
		return nil
	}
	return nil
}

// syncRoutedInvoice asks a provider-served invoice's provider for its state
// (as aspayds requires before trusting any callback) and records what is
// new in one write (applyInvoiceStateTx, provider_sync.go): each transfer
// as a receipt (an increase of the amount paid, for providers that report
// only a total) with its ledger entries, and an expiry or cancellation the
// provider reports. A provider that does not answer, or answers about
// another amount or currency, changes nothing: the invoice is returned as
// stored.
func (s connections) syncRoutedInvoice(ctx context.Context, inv *store.Invoice) *store.Invoice {
	if _, ok := s.routedInvoices(inv.Provider); !ok || inv.ProviderRef == "" || paymentd.InvoiceStatus(inv.Status) == paymentd.InvoicePaid {
		return inv
	}
	log := s.log.With("invoice", inv.ID, "provider", inv.Provider)
	st, err := s.invoiceProviderState(ctx, inv)
	if err != nil {
		log.WarnContext(ctx, "invoice provider state not read; nothing recorded", "error", err.Error())
		return inv
	}
	if !invoiceStateNews(inv, st) {
		return inv
	}
	var out *store.Invoice
	err = s.store.Write(ctx, func(tx *store.Tx) error {
		cur, _, err := applyInvoiceStateTx(tx, inv, st)
		out = cur
		return err
	})
	if err != nil {
		log.ErrorContext(ctx, "recording the invoice provider's state", "error", err.Error())
		return inv
	}
	return out
}

// newReceipts reports whether any of the provider's transfers is unknown to
// inv or has more confirmations than recorded.
func newReceipts(inv *store.Invoice, rs []providers.Receipt) bool {
	for _, r := range rs {
		i := slices.IndexFunc(inv.Receipts, func(x *store.InvoiceReceipt) bool { return x.TxnID == r.TxnID })
		if i < 0 || r.Confirmations > inv.Receipts[i].Confirmations {
			return true
		}
	}
	return false
}

// payoutConnection names the connection that sends a new payout in the
// method's currency: the first of its route (payouts never fall back: the
// balance reservation is recorded with its provider before any call, and a
// payout must never be sent by two providers). Without a route, test mode
// keeps the in-process sandbox.
func (s connections) payoutConnection(pr *Principal, currency string) (string, error) {
	if conns := s.cfg.Router.Route(routing.Payouts, pr.Livemode, currency); len(conns) > 0 {
		return conns[0].Name, nil
	}
	if !pr.Livemode {
		return sandboxName, nil
	}
	return "", Errorf(KindInvalid, "live_mode_not_configured",
		"No live payout provider is configured for %s payouts; route %s payouts to a provider in paymentd.yaml, or use a test key (ak_test_…) with the sandbox.",
		currency, currency)
}

// sendRoutedPayout sends a payout that was just recorded as pending (its
// total_amount reserved) to its provider, and records the answer: the
// provider's reference, status, and its fee and total_amount where it
// reports them (aspayds; recordProviderFee adjusts the reservation), or —
// when the provider refused it in a way that proves nothing was sent
// (invalid, declined, unavailable) — its rejection, which releases the
// reservation. A provider that did not answer leaves it pending, to be
// looked up by the reference it was sent under (syncRoutedPayout,
// sentPayoutReference: for aspayds paymentd's payout id). resp.Payout is updated to what was recorded. The
// caller's request succeeded in every case: the payout exists and its
// status says what happened.
func (s connections) sendRoutedPayout(ctx context.Context, p *store.Payout, resp *pb.CreatePayoutResponse) error {
	prov, ok := s.routedPayouts(p.Provider)
	if !ok {
		return nil
	}
	pctx, done := s.providerCall(ctx, prov, "create_payout")
	st, err := prov.CreatePayout(pctx, providers.PayoutRequest{IdempotencyKey: p.ID, Reference: p.TransactionReference,
		MethodID: p.MethodID, Amount: p.Amount, Currency: p.Currency, RecipientName: p.RecipientName,
		RecipientAccount: p.RecipientAccount, Description: p.Description})
	done(err)
	log := s.log.With("payout", p.ID, "provider", p.Provider)
	var t paymentd.Transition[paymentd.PayoutStatus]
	switch kind := providers.KindOf(err); {
	case err == nil && st.Amount != 0 && st.Amount != p.Amount:
		log.ErrorContext(ctx, "payout provider answered another amount; left pending for review", "provider_amount", st.Amount)
		return nil
	case err == nil:
		t, _ = paymentd.PayoutStep(paymentd.PayoutStatus(p.Status), st.Status)
	case kind == providers.Unknown:
		log.WarnContext(ctx, "payout provider did not answer; the payout stays pending until it is found", "error", err.Error())
		return nil
	default:
		var pe *providers.Error
		if errors.As(err, &pe) {
			p.FailureCode, p.FailureMessage = pe.Code, pe.Message
		}
		t = paymentd.PayoutReject
	}
	// WriteDebit: a provider's fee above the method's may reserve more of
	// the available balance (recordProviderFee, provider_sync.go).
	return s.store.WriteDebit(ctx, func(tx *store.Tx) error {
		cur, err := tx.GetPayout(p.AccountID, p.Livemode, p.ID)
		if err != nil {
			return err
		}
		cur.ProviderRef = st.Reference
		// The fee and total_amount the provider answered (none after a
		// refusal), recorded before any step moves the total.
		if _, err := recordProviderFee(tx, cur, st); err != nil {
			return err
		}
		if !t.Allows(paymentd.PayoutStatus(cur.Status)) {
			out, err := updatePayoutRef(tx, cur)
			if err == nil {
				resp.Payout = out
			}
			return err
		}
		cur.FailureCode, cur.FailureMessage = p.FailureCode, p.FailureMessage
		out, err := applyPayout(tx, cur, t)
		if err != nil {
			return err
		}
		resp.Payout = out
		return nil
	})
}

// updatePayoutRef records a payout's provider reference without a change of
// status (so without an event or ledger movement).
func updatePayoutRef(tx *store.Tx, p *store.Payout) (*pb.Payout, error) {
	p.Updated = tx.Now().Truncate(time.Microsecond)
	if err := tx.UpdatePayout(p); err != nil {
		return nil, err
	}
	return payoutProto(p), nil
}

// syncRoutedPayout asks a provider-sent payout's provider for its state,
// by the provider's reference or, when the creation went unanswered, by the
// reference it was sent under (payoutProviderState), and records a step
// forward (processing, completed, rejected) with its ledger movement, and
// the provider's fee, in one write (applyPayoutStateTx, provider_sync.go).
// Answers about another amount, and providers that do not answer, change
// nothing.
func (s connections) syncRoutedPayout(ctx context.Context, p *store.Payout) *store.Payout {
	if _, ok := s.routedPayouts(p.Provider); !ok || !paymentd.PayoutActive(paymentd.PayoutStatus(p.Status)) {
		return p
	}
	log := s.log.With("payout", p.ID, "provider", p.Provider)
	st, err := s.payoutProviderState(ctx, p)
	if err != nil {
		log.WarnContext(ctx, "payout provider state not read; nothing recorded", "error", err.Error())
		return p
	}
	if !payoutStateNews(p, st) {
		return p
	}
	var out *store.Payout
	err = s.store.WriteDebit(ctx, func(tx *store.Tx) error { // a fee may reserve more (recordProviderFee)
		cur, _, err := applyPayoutStateTx(tx, p, st)
		out = cur
		return err
	})
	if err != nil {
		log.ErrorContext(ctx, "recording the payout provider's state", "error", err.Error())
		return p
	}
	return out
}

// refuseRoutedCancel refuses to cancel a payout a provider was asked to
// send: paymentd cannot take it back from the provider (aspayds has no
// cancel call), so releasing its reservation could pay the money twice.
func (s connections) refuseRoutedCancel(p *store.Payout) error {
	if _, ok := s.routedPayouts(p.Provider); !ok {
		return nil
	}
	return &Error{Kind: KindConflict, Code: "payout_unexpected_state", Param: "id",
		Message: "Payout " + p.ID + " was sent to " + p.Provider + ", which paymentd cannot cancel; it ends completed or rejected as the provider reports."}
}
