package service

import (
	"context"
	"errors"
	"slices"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/store"
)

// CreateRefund refunds a captured payment in two writes around the provider
// call. The first reserves the amount on the payment (amount_refunded)
// inside the write, where the check that refunds never exceed the captured
// amount holds against every concurrent refund; the second records the
// provider's answer. A refund the provider did not answer stays pending, its
// amount still reserved, until it is reconciled.
func (s *PaymentsServer) CreateRefund(ctx context.Context, req *pb.CreateRefundRequest) (*pb.CreateRefundResponse, error) {
	pr := mustPrincipal(ctx)
	if req.Reason != "" {
		if err := oneOf("reason", req.Reason, "duplicate", "fraudulent", "requested_by_customer"); err != nil {
			return nil, err
		}
	}
	if err := checkMetadata("metadata", req.Metadata); err != nil {
		return nil, err
	}
	if req.Amount != nil && req.GetAmount() <= 0 {
		return nil, Invalid("amount", "amount_invalid", "amount must be a positive number of minor units, or omitted to refund everything not yet refunded; got %d.", req.GetAmount())
	}
	p, err := s.loadPayment(ctx, pr, "payment_id", req.PaymentId)
	if err != nil {
		return nil, err
	}
	resp := &pb.CreateRefundResponse{}
	err = s.idem.run(ctx, "CreateRefund", req, resp, func(ik *idemKey) error {
		r := &store.Refund{ID: NewID(PrefixRefund), AccountID: pr.AccountID, Livemode: pr.Livemode, PaymentID: p.ID,
			Currency: p.Currency, Reason: req.Reason, Metadata: req.Metadata}
		// Phase one: reserve.
		err := s.store.WriteDebit(ctx, func(tx *store.Tx) error {
			// The account's balance first, then the payment: every debit
			// takes its locks in that order (on PostgreSQL the balance
			// guard locks the account's balance row), so two refunds of one
			// payment on two replicas wait for each other instead of
			// deadlocking. A payment's currency never changes.
			available, err := tx.BookBalance(pr.AccountID, pr.Livemode, p.Currency, store.BookAvailable)
			if err != nil {
				return err
			}
			cur, err := reloadPayment(tx, pr, p.ID)
			if err != nil {
				return err
			}
			if !slices.Contains(paymentd.RefundablePayments, paymentd.PaymentStatus(cur.Status)) {
				return &Error{Kind: KindConflict, Code: "payment_unexpected_state", Param: "payment_id",
					Message: "Payment " + cur.ID + " cannot be refunded because its status is " + cur.Status + "; only succeeded payments can be refunded."}
			}
			remaining := cur.AmountCaptured - cur.AmountRefunded
			r.Amount = remaining
			if req.Amount != nil {
				r.Amount = req.GetAmount()
			}
			if remaining == 0 {
				return &Error{Kind: KindInvalid, Code: "charge_already_refunded", Param: "payment_id",
					Message: "Payment " + cur.ID + " has already been fully refunded."}
			}
			if r.Amount > remaining {
				return Invalid("amount", "amount_too_large",
					"amount %d is more than the %d still refundable on payment %s (captured %d, refunded %d).",
					r.Amount, remaining, cur.ID, cur.AmountCaptured, cur.AmountRefunded)
			}
			// The refund is paid from the account's available balance, which
			// must not go negative (payouts may have spent what was captured):
			// reserve the amount now, inside this write.
			c, _ := paymentd.LookupCurrency(cur.Currency)
			if available < r.Amount {
				return &Error{Kind: KindInsufficientFunds, Code: "insufficient_funds", Param: "amount",
					Message: "The available " + cur.Currency + " balance is " + paymentd.FormatAmount(available, c) + "; this refund needs " +
						paymentd.FormatAmount(r.Amount, c) + ". Collect more payments, or wait for pending payouts to be rejected or cancelled."}
			}
			cur.AmountRefunded += r.Amount
			cur.Updated = tx.Now()
			if err := tx.UpdatePayment(cur); err != nil {
				return err
			}
			p = cur
			// The pending refund is the call's outcome until the provider
			// answers: a retry after a crash or a provider timeout replays it
			// instead of refunding again.
			r.Status = "" // new on every run (PostgreSQL runs a change again after a lost race)
			out, err := writeRefund(tx, pr, r, cur.Provider, paymentd.RefundCreate)
			if err != nil {
				return err
			}
			resp.Refund = out
			return ik.save(tx, resp, nil)
		})
		if err != nil {
			return err
		}
		ik.committedInterim()
		prov, err := s.providerFor(p)
		if err != nil {
			return err
		}
		pctx, done := s.providerCall(ctx, prov, "refund")
		_, perr := prov.Refund(pctx, providers.RefundRequest{IdempotencyKey: r.ID, Reference: p.ProviderRef, Amount: r.Amount,
			Currency: r.Currency, Reason: r.Reason, Metadata: r.Metadata})
		done(perr)
		kind := providers.KindOf(perr)
		if perr != nil && kind == providers.Unknown {
			// Leave it pending and reserved, and answer with the pending
			// refund: the reconciler asks the provider again, or, when the
			// provider cannot be asked, an operator must (listed at once).
			if _, ok := prov.(providers.RefundStatusGetter); !ok {
				s.pendingRefundItem(r, p)
			}
			return nil
		}
		// Phase two: record the answer. A refusal is answered as the
		// refund it made, failed (200), and a replay answers the same.
		if perr != nil {
			s.log.InfoContext(ctx, "refund refused by its provider", "refund", r.ID, "provider", p.Provider,
				"error", providerCallError(perr, p.Provider).Error())
		}
		wctx, wcancel := recordCtx(ctx) // recorded even if the caller has gone
		defer wcancel()
		return s.store.Write(wctx, func(tx *store.Tx) error {
			t := paymentd.RefundSucceed
			if perr != nil {
				t = paymentd.RefundFail
			}
			out, err := settleRefund(tx, pr, r, t)
			if err != nil {
				return err
			}
			resp.Refund = out
			return ik.save(tx, resp, nil)
		})
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// GetRefund returns one refund.
func (s *PaymentsServer) GetRefund(ctx context.Context, req *pb.GetRefundRequest) (*pb.GetRefundResponse, error) {
	pr := mustPrincipal(ctx)
	notFound := &Error{Kind: KindNotFound, Code: "resource_missing", Param: "id",
		Message: "No such refund: '" + truncate(req.Id, 64) + "' in " + pr.Mode() + " mode."}
	if !validID(req.Id, PrefixRefund) {
		return nil, notFound
	}
	r, err := s.store.GetRefund(ctx, pr.AccountID, pr.Livemode, req.Id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	return &pb.GetRefundResponse{Refund: refundProto(r)}, nil
}

// ListRefunds returns a page of refunds, newest first.
func (s *PaymentsServer) ListRefunds(ctx context.Context, req *pb.ListRefundsRequest) (*pb.ListRefundsResponse, error) {
	pr := mustPrincipal(ctx)
	f, err := pageFilter(pr, req.PageSize, req.PageToken, PrefixRefund)
	if err != nil {
		return nil, err
	}
	if req.PaymentId != "" {
		if _, err := s.loadPayment(ctx, pr, "payment_id", req.PaymentId); err != nil {
			return nil, err
		}
	}
	rs, err := s.store.ListRefunds(ctx, f, req.PaymentId)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListRefundsResponse{}
	rs, resp.NextPageToken = nextPage(rs, f, func(x *store.Refund) string { return x.ID })
	resp.Refunds = make([]*pb.Refund, len(rs))
	for i, r := range rs {
		resp.Refunds[i] = refundProto(r)
	}
	resp.Refunds, resp.NextPageToken = fitPage(resp.Refunds, resp.NextPageToken)
	return resp, nil
}

// settleRefund records the provider's final answer on a pending refund, t
// (paymentd.RefundSucceed or RefundFail): on success the reserved amount goes
// to the provider; on failure it returns to available and the payment's
// amount_refunded is released. One event either way.
func settleRefund(tx *store.Tx, pr *Principal, r *store.Refund, t paymentd.Transition[paymentd.RefundStatus]) (*pb.Refund, error) {
	r, err := tx.ReloadRefund(pr.AccountID, pr.Livemode, r.ID)
	if err != nil {
		return nil, err
	}
	if !t.Allows(paymentd.RefundStatus(r.Status)) {
		return refundProto(r), nil // settled meanwhile (by the reconciler): never twice
	}
	if t.Destination != paymentd.RefundFailed {
		// The payment is not changed: its row is not locked either.
		provider, err := tx.PaymentProvider(pr.AccountID, pr.Livemode, r.PaymentID)
		if err != nil {
			return nil, err
		}
		return writeRefund(tx, pr, r, provider, t)
	}
	cur, err := reloadPayment(tx, pr, r.PaymentID)
	if err != nil {
		return nil, err
	}
	cur.AmountRefunded -= r.Amount // release the reservation
	cur.Updated = tx.Now()
	if err := tx.UpdatePayment(cur); err != nil {
		return nil, err
	}
	return writeRefund(tx, pr, r, cur.Provider, t)
}

// writeRefund applies t to the refund r in tx, checked against its status
// (a creation, from the empty status, inserts r): the refund row, the ledger
// moves of its amount that t causes (provider is its payment's provider,
// whose book the money goes to), and the event, all or nothing.
func writeRefund(tx *store.Tx, pr *Principal, r *store.Refund, provider string, t paymentd.Transition[paymentd.RefundStatus]) (*pb.Refund, error) {
	ch, err := t.Apply(r.ID, paymentd.RefundStatus(r.Status))
	if err != nil {
		return nil, err
	}
	r.Status = string(ch.Status())
	if ch.From() == "" {
		r.Created = IDTime(r.ID)
		err = tx.InsertRefund(r)
	} else {
		err = tx.UpdateRefundStatus(r)
	}
	if err != nil {
		return nil, err
	}
	if err := insertMoves(tx, r.AccountID, r.Livemode, r.Currency, r.ID, ch.Moves(provider, r.Amount)); err != nil {
		return nil, err
	}
	out := refundProto(r)
	return out, recordEvent(tx, pr, string(ch.Event()), r.ID, out)
}
