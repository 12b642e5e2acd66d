package service

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/store"
)

// PaymentsServer implements paymentd.v1.PaymentsService.
type PaymentsServer struct {
	pb.UnimplementedPaymentsServiceServer
	*Service
}

// writePayment applies t to the payment p in tx, checked against p's
// status (a creation, from the empty status, inserts p): the payment row,
// the ledger moves of its captured amount that t causes, the event and the
// idempotency outcome, all or nothing.
func writePayment(tx *store.Tx, pr *Principal, p *store.Payment, t paymentd.Transition[paymentd.PaymentStatus],
	ik *idemKey, respond func(*pb.Payment) proto.Message, callErr error) error {
	ch, err := t.Apply(p.ID, paymentd.PaymentStatus(p.Status))
	if err != nil {
		return err
	}
	p.Status = string(ch.Status())
	p.Updated = tx.Now()
	if ch.From() == "" {
		p.Created = IDTime(p.ID)
		err = tx.InsertPayment(p)
	} else {
		err = tx.UpdatePayment(p)
	}
	if err != nil {
		return err
	}
	if err := insertMoves(tx, p.AccountID, p.Livemode, p.Currency, p.ID, ch.Moves(p.Provider, p.AmountCaptured)); err != nil {
		return err
	}
	out := paymentProto(p)
	typ := string(ch.Event())
	eventID, err := insertEvent(tx, pr, typ, p.ID, out)
	if err != nil {
		return err
	}
	if err := ik.save(tx, respond(out), callErr); err != nil {
		return err
	}
	// The deliveries last: on PostgreSQL the read of the account's
	// endpoints carries every statement queued before it, the idempotency
	// record's too, so that the change takes one round trip.
	return queueDeliveries(tx, pr.AccountID, pr.Livemode, eventID, typ, out)
}

func (s *PaymentsServer) validateCreate(req *pb.CreatePaymentRequest) (paymentd.Currency, error) {
	c, err := lookupCurrencyParam("currency", req.Currency)
	if err != nil {
		return c, err
	}
	if err := paymentd.CheckAmount("amount", req.Amount, c); err != nil {
		return c, err
	}
	if req.PaymentMethod == "" {
		return c, Invalid("payment_method", "parameter_missing",
			"payment_method is required: a payment method token such as pm_card_visa (test mode).")
	}
	if err := checkLen("payment_method", req.PaymentMethod, maxShortID); err != nil {
		return c, err
	}
	if req.CaptureMethod != "" {
		if err := oneOf("capture_method", req.CaptureMethod, "automatic", "manual"); err != nil {
			return c, err
		}
	}
	if err := checkLen("description", req.Description, maxDescription); err != nil {
		return c, err
	}
	if err := checkMetadata("metadata", req.Metadata); err != nil {
		return c, err
	}
	if err := checkCustomer(req.Customer); err != nil {
		return c, err
	}
	return c, checkLen("agent_id", req.AgentId, maxShortID)
}

// CreatePayment converts the request into a new payment, creates it
// (createPayment, the rule every payment follows) and answers with it.
func (s *PaymentsServer) CreatePayment(ctx context.Context, req *pb.CreatePaymentRequest) (*pb.CreatePaymentResponse, error) {
	pr := mustPrincipal(ctx)
	c, err := s.validateCreate(req)
	if err != nil {
		return nil, err
	}
	cands, err := s.conns.paymentRoute(pr, c.Code) // in order; fallback only when no money moved (routing.go)
	if err != nil {
		return nil, err
	}
	resp := &pb.CreatePaymentResponse{}
	err = s.idem.run(ctx, "CreatePayment", req, resp, func(ik *idemKey) error {
		p := paymentFromRequest(pr, req, c, providerName(cands[0]))
		respond := func(out *pb.Payment) proto.Message { resp.Payment = out; return resp }
		out, err := s.createPayment(ctx, pr, p, cands, ik, respond, nil)
		if err != nil {
			return err
		}
		return out.callErr
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// paymentFromRequest is the new payment a validated CreatePaymentRequest
// asks for, of currency c, to be sent to provider first.
func paymentFromRequest(pr *Principal, req *pb.CreatePaymentRequest, c paymentd.Currency, provider string) *store.Payment {
	return &store.Payment{
		ID: NewID(PrefixPayment), AccountID: pr.AccountID, Livemode: pr.Livemode, Amount: req.Amount,
		Currency: c.Code, CaptureMethod: cmp.Or(req.CaptureMethod, "automatic"), PaymentMethod: req.PaymentMethod, Provider: provider,
		Description: req.Description, Metadata: req.Metadata, CustomerName: req.GetCustomer().GetName(),
		CustomerEmail: req.GetCustomer().GetEmail(), CustomerID: req.GetCustomer().GetId(), AgentID: req.AgentId,
	}
}

// paymentOutcome is what creating a payment came to: the transition that
// recorded the provider's answer (recorded is false when nothing was: the
// provider refused the request or failed before any money could move, at
// a provider that always answers), and the error the caller gets (a
// decline, a provider that failed), nil on success.
type paymentOutcome struct {
	t        paymentd.Transition[paymentd.PaymentStatus]
	recorded bool
	callErr  error
}

// recordHook wraps the write that records a provider's answer to a new
// payment, inside that write: it calls write to record the payment, or
// does not (the hosted page records nothing for an invoice that stopped
// being payable meanwhile), and may write more with it.
type recordHook func(tx *store.Tx, t paymentd.Transition[paymentd.PaymentStatus], write func() error) error

// createPayment authorizes the new payment p with the first of cands that
// takes it (and, for automatic capture, captures it) and records the
// outcome with its ledger moves and event, the idempotency outcome of ik
// (nil for none) and respond's reply. It is the one way a payment is made,
// by the API (CreatePayment) and by an invoice's hosted page (payFromPage).
//
// A provider across the network may take the money and then lose us (or
// we crash) before we record its answer. So when one of cands may move
// money without answering (providers.MayMoveMoneyUnanswered), the payment
// is first recorded as processing, and that is the call's outcome until
// the answer replaces it: a retry with the same key replays it instead of
// charging again, and the reconciler asks the provider (by this payment's
// id, the upstream idempotency key) about any payment left processing. A
// provider that always answers (the in-process sandbox) takes one write.
func (s *Service) createPayment(ctx context.Context, pr *Principal, p *store.Payment, cands []providers.Payments,
	ik *idemKey, respond func(*pb.Payment) proto.Message, hook recordHook) (paymentOutcome, error) {
	twoPhase := slices.ContainsFunc(cands, func(prov providers.Payments) bool { return providers.MayMoveMoneyUnanswered(prov) })
	if twoPhase {
		err := s.store.Write(ctx, func(tx *store.Tx) error {
			p.Status = "" // new on every run (PostgreSQL runs a change again after a lost race)
			return writePayment(tx, pr, p, paymentd.PaymentCreateProcessing, ik, respond, nil)
		})
		if err != nil {
			return paymentOutcome{}, err
		}
		ik.committedInterim()
	}
	res, name, perr := s.conns.authorizeRouted(ctx, cands, providers.PaymentRequest{
		IdempotencyKey: p.ID, Amount: p.Amount, Currency: p.Currency, PaymentMethod: p.PaymentMethod,
		Capture: p.CaptureMethod == "automatic", Description: p.Description, Metadata: p.Metadata, Livemode: p.Livemode,
	})
	p.Provider = name
	var out paymentOutcome
	out.t, out.recorded = authorizationOutcome(p, res, perr)
	t := out.t
	switch {
	case !out.recorded:
		out.callErr = providerCallError(perr, name)
		if !twoPhase {
			return out, nil
		}
		// No money moved: the processing payment failed, and the key
		// is free again for a retry.
		t, p.FailureCode, p.FailureMessage = paymentd.PaymentSettleFailed, "provider_unavailable", "The provider could not take the payment; no money moved."
		var pe *providers.Error
		switch {
		case providers.KindOf(perr) == providers.InvalidRequest:
			p.FailureCode = "provider_refused"
		case errors.As(perr, &pe) && pe.Code == "provider_authentication_failed":
			p.FailureCode = pe.Code
			p.FailureMessage = "The provider refused paymentd's credentials; no money moved. An operator must fix the connection's credentials."
		}
	case t.Destination == paymentd.PaymentFailed:
		out.callErr = &Error{Kind: KindDeclined, Code: p.FailureCode, Message: p.FailureMessage, Param: "payment_method"}
	}
	if hook == nil {
		hook = func(_ *store.Tx, _ paymentd.Transition[paymentd.PaymentStatus], write func() error) error {
			return write()
		}
	}
	// Record the answer even when the caller has gone (its deadline
	// passed while the provider took its time): money may have moved.
	wctx, wcancel := recordCtx(ctx)
	defer wcancel()
	err := s.store.Write(wctx, func(tx *store.Tx) error {
		if !twoPhase {
			return hook(tx, t, func() error {
				p.Status = "" // new on every run (PostgreSQL runs a change again after a lost race)
				return writePayment(tx, pr, p, t, ik, respond, out.callErr)
			})
		}
		cur, err := reloadPayment(tx, pr, p.ID)
		if err != nil {
			return err
		}
		if paymentd.PaymentStatus(cur.Status) != paymentd.PaymentProcessing {
			// The reconciler was quicker: never settle twice.
			out.callErr = nil
			return ik.save(tx, respond(paymentProto(cur)), nil)
		}
		cur.Provider, cur.ProviderRef, cur.FailureCode, cur.FailureMessage = p.Provider, p.ProviderRef, p.FailureCode, p.FailureMessage
		cur.AmountCaptured, cur.AmountCapturable = p.AmountCaptured, p.AmountCapturable
		*p = *cur
		return hook(tx, t, func() error {
			if !out.recorded {
				if err := writePayment(tx, pr, p, t, nil, respond, nil); err != nil {
					return err
				}
				return ik.freeKey(tx)
			}
			return writePayment(tx, pr, p, t, ik, respond, out.callErr)
		})
	})
	return out, err
}

// authorizationOutcome applies a provider's answer to an authorization to
// the new payment p, and returns the transition to record it with (its
// ledger moves follow from it). recorded is false when there is nothing to
// record: the provider refused the request's content, or failed before any
// money could move.
func authorizationOutcome(p *store.Payment, res providers.PaymentResult, perr error) (t paymentd.Transition[paymentd.PaymentStatus], recorded bool) {
	switch providers.KindOf(perr) {
	case 0:
		p.ProviderRef = res.Reference
		if res.Captured {
			p.AmountCaptured = p.Amount
			return paymentd.PaymentCreateCaptured, true
		}
		p.AmountCapturable = p.Amount
		return paymentd.PaymentCreateAuthorized, true
	case providers.Declined:
		var pe *providers.Error
		errors.As(perr, &pe)
		p.FailureCode, p.FailureMessage = pe.Code, pe.Message
		return paymentd.PaymentCreateDeclined, true
	case providers.InvalidRequest, providers.Unavailable:
		return t, false
	}
	// No answer: money may have moved. Record the payment as unknown so that
	// it is reconciled; never report it as failed. A reference the adapter
	// learnt before the answer was lost (Aslan's authorization, whose
	// confirm went unanswered) is kept: the reconciler needs it.
	p.ProviderRef = res.Reference
	return paymentd.PaymentCreateUnknown, true
}

// loadPayment reads a payment of the caller's account and mode; any other
// payment, or a malformed id, is not found.
func (s *Service) loadPayment(ctx context.Context, pr *Principal, param, id string) (*store.Payment, error) {
	return s.findPayment(ctx, pr, param, id, s.store.GetPayment)
}

// viewPayment is loadPayment for a caller that only reads the payment, which
// may be the store's cached version itself (store.ReadPayment).
func (s *Service) viewPayment(ctx context.Context, pr *Principal, param, id string) (*store.Payment, error) {
	return s.findPayment(ctx, pr, param, id, s.store.ReadPayment)
}

func (s *Service) findPayment(ctx context.Context, pr *Principal, param, id string,
	get func(ctx context.Context, accountID string, livemode bool, id string) (*store.Payment, error)) (*store.Payment, error) {
	if id == "" {
		return nil, Invalid(param, "parameter_missing", "%s is required: the payment's id, pay_….", param)
	}
	notFound := func() error {
		return &Error{Kind: KindNotFound, Code: "resource_missing", Param: param,
			Message: "No such payment: '" + truncate(id, 64) + "' in " + pr.Mode() + " mode."}
	}
	if !validID(id, PrefixPayment) {
		return nil, notFound()
	}
	p, err := get(ctx, pr.AccountID, pr.Livemode, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound()
	}
	return p, err
}

// reloadPayment reads the payment again inside the write, where checks hold until commit.
func reloadPayment(tx *store.Tx, pr *Principal, id string) (*store.Payment, error) {
	return tx.GetPayment(pr.AccountID, pr.Livemode, id)
}

// truncate shortens s to at most n bytes, at a character boundary, marking
// the cut with "…": for quoting a caller's input back in a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// CapturePayment captures an authorized payment, fully or in part. With a
// provider across the network the capture is recorded on the payment before
// the call (boundary.go): until the provider answers definitely, the payment
// refuses a cancel and a second capture, and a retry with the same
// idempotency key re-sends the capture with the same upstream key.
func (s *PaymentsServer) CapturePayment(ctx context.Context, req *pb.CapturePaymentRequest) (*pb.CapturePaymentResponse, error) {
	pr := mustPrincipal(ctx)
	p, err := s.loadPayment(ctx, pr, "id", req.Id)
	if err != nil {
		return nil, err
	}
	resp := &pb.CapturePaymentResponse{}
	respond := func(out *pb.Payment) proto.Message { resp.Payment = out; return resp }
	err = s.idem.run(ctx, "CapturePayment", req, resp, func(ik *idemKey) error {
		if p.PendingOp != "" {
			if resumes(p, opCapture, ik) && (req.Amount == nil || req.GetAmount() == p.PendingAmount) {
				return s.sendCapture(ctx, pr, p, p.PendingAmount, true, ik, respond)
			}
			return unsettledError(p)
		}
		if err := paymentd.PaymentCapture.Check(p.ID, paymentd.PaymentStatus(p.Status)); err != nil {
			return err
		}
		amount := p.AmountCapturable
		if req.Amount != nil {
			amount = req.GetAmount()
			if amount <= 0 {
				return Invalid("amount", "amount_invalid", "amount must be positive, or omitted to capture all %d authorized.", p.AmountCapturable)
			}
			if c, _ := paymentd.LookupCurrency(p.Currency); amount < c.Min {
				// A capture is a charge: it takes the currency's minimum as a
				// payment does.
				return Invalid("amount", "amount_too_small", "amount must be at least %d (%s %s), the smallest charge in %s; capture more, or omit amount to capture all %d authorized.",
					c.Min, paymentd.FormatAmount(c.Min, c), c.Code, c.Code, p.AmountCapturable)
			}
			if amount > p.AmountCapturable {
				return Invalid("amount", "amount_too_large", "amount %d is more than the %d authorized; capture at most %d.", amount, p.AmountCapturable, p.AmountCapturable)
			}
		}
		prov, err := s.providerFor(p)
		if err != nil {
			return err
		}
		if wc, ok := prov.(providers.WholeCapturer); ok && wc.CapturesWholeAuthorizationOnly() && amount != p.AmountCapturable {
			c, _ := paymentd.LookupCurrency(p.Currency)
			return Invalid("amount", "partial_capture_unsupported",
				"The provider %s can capture only the whole authorized amount; capture all %s (omit amount), or cancel the payment and create a new one for %s.",
				p.Provider, paymentd.FormatAmount(p.AmountCapturable, c), paymentd.FormatAmount(amount, c))
		}
		if !providers.MayMoveMoneyUnanswered(prov) {
			return s.sendCapture(ctx, pr, p, amount, false, ik, respond)
		}
		cur, err := s.markPending(ctx, pr, p.ID, opCapture, amount, ik, func(cur *store.Payment) error {
			if err := paymentd.PaymentCapture.Check(cur.ID, paymentd.PaymentStatus(cur.Status)); err != nil {
				return err
			}
			if amount > cur.AmountCapturable {
				return Invalid("amount", "amount_too_large", "amount %d is more than the %d authorized.", amount, cur.AmountCapturable)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return s.sendCapture(ctx, pr, cur, amount, true, ik, respond)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// CancelPayment releases an authorized, uncaptured payment. Like a capture,
// a cancel sent to a provider across the network is recorded before the call.
func (s *PaymentsServer) CancelPayment(ctx context.Context, req *pb.CancelPaymentRequest) (*pb.CancelPaymentResponse, error) {
	pr := mustPrincipal(ctx)
	if req.CancellationReason != "" {
		if err := oneOf("cancellation_reason", req.CancellationReason, "duplicate", "fraudulent", "requested_by_customer", "abandoned"); err != nil {
			return nil, err
		}
	}
	p, err := s.loadPayment(ctx, pr, "id", req.Id)
	if err != nil {
		return nil, err
	}
	resp := &pb.CancelPaymentResponse{}
	respond := func(out *pb.Payment) proto.Message { resp.Payment = out; return resp }
	err = s.idem.run(ctx, "CancelPayment", req, resp, func(ik *idemKey) error {
		if p.PendingOp != "" {
			if resumes(p, opCancel, ik) {
				return s.sendCancel(ctx, pr, p, true, ik, respond)
			}
			return unsettledError(p)
		}
		if err := paymentd.PaymentCancel.Check(p.ID, paymentd.PaymentStatus(p.Status)); err != nil {
			return err
		}
		prov, err := s.providerFor(p)
		if err != nil {
			return err
		}
		if !providers.MayMoveMoneyUnanswered(prov) {
			return s.sendCancel(ctx, pr, p, false, ik, respond)
		}
		cur, err := s.markPending(ctx, pr, p.ID, opCancel, 0, ik, func(cur *store.Payment) error {
			return paymentd.PaymentCancel.Check(cur.ID, paymentd.PaymentStatus(cur.Status))
		})
		if err != nil {
			return err
		}
		return s.sendCancel(ctx, pr, cur, true, ik, respond)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// GetPayment returns one payment.
func (s *PaymentsServer) GetPayment(ctx context.Context, req *pb.GetPaymentRequest) (*pb.GetPaymentResponse, error) {
	pr := mustPrincipal(ctx)
	p, err := s.viewPayment(ctx, pr, "id", req.Id)
	if err != nil {
		return nil, err
	}
	return &pb.GetPaymentResponse{Payment: paymentProto(p)}, nil
}

// ListPayments returns a page of payments, newest first.
func (s *PaymentsServer) ListPayments(ctx context.Context, req *pb.ListPaymentsRequest) (*pb.ListPaymentsResponse, error) {
	pr := mustPrincipal(ctx)
	f, err := pageFilter(pr, req.PageSize, req.PageToken, PrefixPayment)
	if err != nil {
		return nil, err
	}
	if req.Status != "" {
		if err := oneOf("status", req.Status, paymentd.Strings(paymentd.PaymentLifecycle.Statuses)...); err != nil {
			return nil, err
		}
		f.Status = req.Status
	}
	if err := createdRange(&f, PrefixPayment, req.CreatedBefore, req.CreatedAfter); err != nil {
		return nil, err
	}
	ps, err := s.store.ListPayments(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListPaymentsResponse{}
	ps, resp.NextPageToken = nextPage(ps, f, func(x *store.Payment) string { return x.ID })
	resp.Payments = make([]*pb.Payment, len(ps))
	for i, p := range ps {
		resp.Payments[i] = paymentProto(p)
	}
	resp.Payments, resp.NextPageToken = fitPage(resp.Payments, resp.NextPageToken)
	return resp, nil
}

// pageFilter selects a page of the caller's objects. Its Limit is one more
// than the page size, so that nextPage can tell whether another page follows.
func pageFilter(pr *Principal, size int32, token, prefix string) (store.PageFilter, error) {
	n, err := pageSize(size)
	if err != nil {
		return store.PageFilter{}, err
	}
	f := store.PageFilter{AccountID: pr.AccountID, Livemode: pr.Livemode, Limit: n + 1}
	if token != "" {
		if f.Before, err = decodePageToken(token, prefix); err != nil {
			return f, err
		}
	}
	return f, nil
}

// createdRange narrows f to the objects of id prefix created before before
// and at or after after, each optional: ids are time-ordered, so each bound
// is an id range.
func createdRange(f *store.PageFilter, prefix string, before, after *timestamppb.Timestamp) error {
	if before != nil {
		if err := before.CheckValid(); err != nil {
			return Invalid("created_before", "parameter_invalid", "created_before must be a valid RFC 3339 time.")
		}
		f.Before = minID(f.Before, idBound(prefix, before.AsTime()))
	}
	if after != nil {
		if err := after.CheckValid(); err != nil {
			return Invalid("created_after", "parameter_invalid", "created_after must be a valid RFC 3339 time.")
		}
		f.AtOrAfter = idBound(prefix, after.AsTime())
	}
	return nil
}

// nextPage cuts the extra item a pageFilter query fetched and returns the
// page with the token of the next one ("" on the last page).
func nextPage[T any](items []T, f store.PageFilter, id func(T) string) ([]T, string) {
	if len(items) < f.Limit {
		return items, ""
	}
	items = items[:f.Limit-1]
	return items, encodePageToken(id(items[len(items)-1]))
}

// maxPageBytes bounds the objects of one list answer. Objects near their
// fields' limits (50 metadata entries of 500 characters, a description of
// 1000, all four-byte characters) are over 100 KB each, so a page of 100
// could pass MaxSendMsgSize and the call would fail (RESOURCE_EXHAUSTED,
// which REST answers as a 429), or pass the 4 MiB a gRPC client receives by
// default. A page that would pass this bound is cut short; its
// next_page_token continues after the last object it keeps.
const maxPageBytes = 3 << 20

// fitPage cuts page short, if it must, to maxPageBytes (at least one
// object), and returns it with the token that continues after it: token
// when it is whole.
func fitPage[T interface {
	proto.Message
	GetId() string
}](page []T, token string) ([]T, string) {
	size := 0
	for i, x := range page {
		if size += proto.Size(x); size > maxPageBytes && i > 0 {
			return page[:i], encodePageToken(page[i-1].GetId())
		}
	}
	return page, token
}

// providerCallError converts a provider's refusal of a follow-up call
// (capture, cancel, refund) into a caller error.
func providerCallError(err error, name string) error {
	var pe *providers.Error
	errors.As(err, &pe)
	switch providers.KindOf(err) {
	case providers.Declined:
		return &Error{Kind: KindDeclined, Code: pe.Code, Message: pe.Message}
	case providers.InvalidRequest:
		return &Error{Kind: KindInvalid, Code: pe.Code, Message: pe.Message, Param: pe.Param}
	case providers.Unavailable:
		if pe != nil && pe.Code == "provider_authentication_failed" {
			return Errorf(KindUnavailable, pe.Code, "The payment provider %s refused paymentd's credentials; nothing changed. Retry once an operator has fixed the connection's credentials.", name)
		}
		return Errorf(KindUnavailable, "provider_unavailable", "The payment provider %s is unavailable; nothing changed. Retry later (with the same idempotency key, if the request had one).", name)
	}
	return Errorf(KindProviderUnsettled, "provider_unsettled", "The payment provider %s did not answer, so whether it acted is not known yet. Retry with the same idempotency key (send one with every request that moves money), or wait for the reconciler to settle it.", name)
}
