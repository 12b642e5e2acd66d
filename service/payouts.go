package service

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/store"
)

// PayoutsServer implements paymentd.v1.PayoutsService.
type PayoutsServer struct {
	pb.UnimplementedPayoutsServiceServer
	*Service
}

// Limits of payout fields.
const (
	maxPayoutReference   = 50 // aspayds' limit
	maxPayoutCallbackURL = 2048
	maxPayoutBatch       = 100
)

var referencePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,50}$`)

func payoutProto(p *store.Payout) *pb.Payout {
	out := &pb.Payout{
		Id: p.ID, TransactionReference: p.TransactionReference, Status: p.Status, PayoutMethodId: p.MethodID,
		PayoutMethodType: p.MethodType, Network: p.Network, Amount: p.Amount, Fee: p.Fee, TotalAmount: p.TotalAmount,
		Currency: p.Currency, RecipientName: p.RecipientName, RecipientAccount: p.RecipientAccount,
		Description: p.Description, CallbackUrl: p.CallbackURL, Metadata: p.Metadata, Livemode: p.Livemode,
		Provider: p.Provider, FailureCode: p.FailureCode, FailureMessage: p.FailureMessage,
		CreatedAt: timestamppb.New(p.Created), UpdatedAt: timestamppb.New(p.Updated),
	}
	if !p.Processed.IsZero() {
		out.ProcessedAt = timestamppb.New(p.Processed)
	}
	return out
}

// applyPayout writes one status change of p in tx: the payout row, the
// ledger movement of its total_amount and the event, all or nothing. A
// transition that does not start from p's current status is a conflict and
// writes nothing.
func applyPayout(tx *store.Tx, p *store.Payout, t paymentd.Transition[paymentd.PayoutStatus]) (*pb.Payout, error) {
	ch, err := t.Apply(p.ID, paymentd.PayoutStatus(p.Status))
	if err != nil {
		return nil, err
	}
	now := tx.Now()
	p.Status = string(ch.Status())
	p.Updated = now
	if ch.Status() == paymentd.PayoutCompleted || ch.Status() == paymentd.PayoutRejected {
		p.Processed = now
	}
	if ch.From() == "" {
		p.Created = IDTime(p.ID) // the id's time, so created filters are exact id ranges
		if err := tx.InsertPayout(p); err != nil {
			return nil, err
		}
	} else if err := tx.UpdatePayout(p); err != nil {
		return nil, err
	}
	if err := insertMoves(tx, p.AccountID, p.Livemode, p.Currency, p.ID, ch.Moves(p.Provider, p.TotalAmount)); err != nil {
		return nil, err
	}
	out := payoutProto(p)
	pr := &Principal{AccountID: p.AccountID, Livemode: p.Livemode}
	return out, recordEvent(tx, pr, string(ch.Event()), p.ID, out)
}

// payoutsProvider names the provider that sends a new payout: the in-process
// sandbox for test keys. No live payout provider is wired yet.
func (s *Service) payoutsProvider(pr *Principal) (string, error) {
	if s.cfg.Router.Routed(routing.Payouts, pr.Livemode) {
		return "", nil // paymentd.yaml routes payouts: the method's currency picks the connection (routing.go)
	}
	if !pr.Livemode {
		return sandboxName, nil
	}
	return "", Errorf(KindInvalid, "live_mode_not_configured",
		"No live payout provider is configured for this account, so live keys cannot make payouts yet; use a test key (ak_test_…) with the sandbox, or configure a live payout provider.")
}

func validateCreatePayout(req *pb.CreatePayoutRequest) error {
	switch {
	case req.TransactionReference == "":
		return Invalid("transaction_reference", "parameter_missing",
			"transaction_reference is required: your unique reference for this payout, 1–50 letters, digits, -, _, . or :.")
	case len(req.TransactionReference) > maxPayoutReference:
		return Invalid("transaction_reference", "parameter_too_long",
			"transaction_reference must be at most %d characters; got %d.", maxPayoutReference, len(req.TransactionReference))
	case !referencePattern.MatchString(req.TransactionReference):
		return Invalid("transaction_reference", "transaction_reference_invalid",
			"transaction_reference may contain only letters, digits, -, _, . and : (it is used in URLs such as /v1/payouts/{reference}).")
	case req.TransactionReference == "." || req.TransactionReference == "..":
		return Invalid("transaction_reference", "transaction_reference_invalid",
			"transaction_reference must not be %q: as a URL path segment it cannot be read back with GET /v1/payouts/{reference}.", req.TransactionReference)
	case strings.HasPrefix(req.TransactionReference, PrefixPayout):
		return Invalid("transaction_reference", "transaction_reference_invalid",
			"transaction_reference must not start with %s, which marks payout ids; GET /v1/payouts/{id} accepts both.", PrefixPayout)
	}
	if strings.TrimSpace(req.RecipientName) == "" {
		return Invalid("recipient_name", "parameter_missing", "recipient_name is required: the recipient's full name.")
	}
	if err := checkLen("recipient_name", req.RecipientName, maxName); err != nil {
		return err
	}
	if err := checkLen("description", req.Description, maxDescription); err != nil {
		return err
	}
	if req.CallbackUrl != "" {
		u, err := url.Parse(req.CallbackUrl)
		if err != nil || len(req.CallbackUrl) > maxPayoutCallbackURL || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return Invalid("callback_url", "url_invalid",
				"callback_url must be an absolute http or https URL without credentials, at most %d characters, e.g. https://example.com/payouts/callback.", maxPayoutCallbackURL)
		}
	}
	return checkMetadata("metadata", req.Metadata)
}

// checkPayoutAmount checks the amount and currency against the method.
func checkPayoutAmount(m *store.PayoutMethod, req *pb.CreatePayoutRequest) error {
	c, _ := paymentd.LookupCurrency(m.Currency)
	if req.Currency != "" && !strings.EqualFold(req.Currency, m.Currency) {
		return Invalid("currency", "currency_mismatch",
			"Payout method %s pays out %s, not %q; send currency %s or omit it.", m.ID, m.Currency, truncate(req.Currency, 16), m.Currency)
	}
	switch {
	case req.Amount <= 0:
		return Invalid("amount", "amount_invalid", "amount must be a positive whole number of minor units of %s; got %d.", m.Currency, req.Amount)
	case req.Amount < m.MinAmount:
		return Invalid("amount", "amount_too_small", "amount must be at least %d (%s %s), the min_amount of payout method %s; got %d.",
			m.MinAmount, paymentd.FormatAmount(m.MinAmount, c), m.Currency, m.ID, req.Amount)
	case req.Amount > m.MaxAmount:
		return Invalid("amount", "amount_too_large", "amount must be at most %d (%s %s), the max_amount of payout method %s; got %d.",
			m.MaxAmount, paymentd.FormatAmount(m.MaxAmount, c), m.Currency, m.ID, req.Amount)
	}
	return nil
}

// CreatePayout reserves the payout's total_amount (amount + fee) from the
// available balance and records the payout as pending, in one write. The
// balance is read inside that write, so no number of concurrent payouts can
// overdraw it: the single writer runs them one after another. The fee is
// the method's fee rule; a provider that charges its own fee and reports it
// only in its answer (aspayds) has it recorded from that answer, with the
// reservation moved to match (recordProviderFee, provider_sync.go).
func (s *PayoutsServer) CreatePayout(ctx context.Context, req *pb.CreatePayoutRequest) (*pb.CreatePayoutResponse, error) {
	pr := mustPrincipal(ctx)
	if err := validateCreatePayout(req); err != nil {
		return nil, err
	}
	if req.CallbackUrl != "" {
		u, _ := url.Parse(req.CallbackUrl) // validateCreatePayout parsed it
		if err := s.checkPublicHost(ctx, "callback_url", u); err != nil {
			return nil, err
		}
	}
	provider, err := s.payoutsProvider(pr)
	if err != nil {
		return nil, err
	}
	m, err := s.payoutMethod(ctx, pr, req.PayoutMethodId)
	if err != nil {
		return nil, err
	}
	// The recipient first: a card number there is refused as one, whatever
	// else is wrong with the request.
	if err := checkRecipientAccount(m, req.RecipientAccount); err != nil {
		return nil, err
	}
	if err := checkPayoutAmount(m, req); err != nil {
		return nil, err
	}
	if provider == "" {
		if provider, err = s.conns.payoutConnection(pr, m.Currency); err != nil { // routing.go
			return nil, err
		}
	}
	fee, ok := payoutFee(m, req.Amount)
	total, ok2 := paymentd.AddChecked(req.Amount, fee)
	if !ok || !ok2 {
		return nil, Invalid("amount", "amount_too_large", "amount %d with the fee of payout method %s overflows; send a smaller amount.", req.Amount, m.ID)
	}
	c, _ := paymentd.LookupCurrency(m.Currency)
	resp := &pb.CreatePayoutResponse{}
	err = s.idem.run(ctx, "CreatePayout", req, resp, func(ik *idemKey) error {
		p := &store.Payout{
			ID: NewID(PrefixPayout), AccountID: pr.AccountID, Livemode: pr.Livemode,
			TransactionReference: req.TransactionReference, MethodID: m.ID, MethodType: m.Type, Network: m.Network,
			Currency: m.Currency, Amount: req.Amount, Fee: fee, TotalAmount: total, RecipientName: req.RecipientName,
			RecipientAccount: req.RecipientAccount, Description: req.Description, CallbackURL: req.CallbackUrl,
			Metadata: req.Metadata, Provider: provider,
		}
		if prov, ok := s.conns.routedPayouts(provider); ok {
			p.SentReference = payoutReferenceFor(prov, p)
		}
		err := s.store.WriteDebit(ctx, func(tx *store.Tx) error {
			if id, err := tx.PayoutIDByReference(pr.AccountID, pr.Livemode, p.TransactionReference); err == nil {
				return &Error{Kind: KindAlreadyExists, Code: "transaction_reference_in_use", Param: "transaction_reference",
					Message: "transaction_reference " + p.TransactionReference + " is already used by payout " + id +
						"; use a new reference for a new payout, or GET /v1/payouts/" + p.TransactionReference + " to see it."}
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			available, err := tx.BookBalance(pr.AccountID, pr.Livemode, p.Currency, store.BookAvailable)
			if err != nil {
				return err
			}
			if available < total {
				return &Error{Kind: KindInsufficientFunds, Code: "insufficient_funds", Param: "amount",
					Message: "The available " + p.Currency + " balance is " + paymentd.FormatAmount(available, c) + "; this payout needs " +
						paymentd.FormatAmount(total, c) + " (amount " + paymentd.FormatAmount(p.Amount, c) + " + fee " + paymentd.FormatAmount(fee, c) +
						"). Lower the amount or collect more payments first."}
			}
			p.Status = "" // new on every run (PostgreSQL runs a change again after a lost race)
			out, err := applyPayout(tx, p, paymentd.PayoutCreate)
			if err != nil {
				return err
			}
			resp.Payout = out
			return ik.save(tx, resp, nil)
		})
		if err != nil {
			return err
		}
		return s.conns.sendRoutedPayout(ctx, p, resp) // provider-sent payouts, once reserved (routing.go)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// loadPayout reads a payout of the caller's account and mode by id or
// transaction reference; anything else is not found.
func (s *Service) loadPayout(ctx context.Context, pr *Principal, key string) (*store.Payout, error) {
	if key == "" {
		return nil, Invalid("id", "parameter_missing", "id is required: the payout's id (po_…) or its transaction_reference.")
	}
	p, err := s.store.GetPayout(ctx, pr.AccountID, pr.Livemode, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Error{Kind: KindNotFound, Code: "resource_missing", Param: "id",
			Message: "No such payout: '" + truncate(key, 64) + "' in " + pr.Mode() + " mode (looked up as id and as transaction_reference)."}
	}
	return p, err
}

// GetPayout returns one payout by id or transaction reference.
func (s *PayoutsServer) GetPayout(ctx context.Context, req *pb.GetPayoutRequest) (*pb.GetPayoutResponse, error) {
	p, err := s.loadPayout(ctx, mustPrincipal(ctx), req.Id)
	if err != nil {
		return nil, err
	}
	p = s.conns.syncRoutedPayout(ctx, p) // a provider-sent payout's state comes from its provider (routing.go)
	return &pb.GetPayoutResponse{Payout: payoutProto(p)}, nil
}

// BatchGetPayouts returns the payouts named by id or reference, in the order
// asked, and the names that match none.
func (s *PayoutsServer) BatchGetPayouts(ctx context.Context, req *pb.BatchGetPayoutsRequest) (*pb.BatchGetPayoutsResponse, error) {
	pr := mustPrincipal(ctx)
	if len(req.Ids) == 0 || len(req.Ids) > maxPayoutBatch {
		return nil, Invalid("ids", "ids_invalid", "ids must hold 1–%d payout ids or transaction references; got %d.", maxPayoutBatch, len(req.Ids))
	}
	keys := make([]string, 0, len(req.Ids))
	seen := map[string]bool{}
	for _, k := range req.Ids {
		if k == "" {
			return nil, Invalid("ids", "ids_invalid", "ids must not contain empty strings.")
		}
		if len(k) > 255 {
			return nil, Invalid("ids", "ids_invalid", "each id must be at most 255 characters.")
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	found, err := s.store.BatchGetPayouts(ctx, pr.AccountID, pr.Livemode, keys)
	if err != nil {
		return nil, err
	}
	byKey := map[string]*store.Payout{}
	for _, p := range found {
		byKey[p.ID] = p
		byKey[p.TransactionReference] = p
	}
	resp := &pb.BatchGetPayoutsResponse{TotalRequested: int32(len(keys)), Payouts: []*pb.Payout{}, NotFoundIds: []string{}}
	for _, k := range keys {
		if p, ok := byKey[k]; ok {
			resp.Payouts = append(resp.Payouts, payoutProto(p))
		} else {
			resp.NotFoundIds = append(resp.NotFoundIds, k)
		}
	}
	resp.TotalFound = int32(len(resp.Payouts))
	return resp, nil
}

// ListPayouts returns a page of payouts, newest first.
func (s *PayoutsServer) ListPayouts(ctx context.Context, req *pb.ListPayoutsRequest) (*pb.ListPayoutsResponse, error) {
	pr := mustPrincipal(ctx)
	f, err := pageFilter(pr, req.PageSize, req.PageToken, PrefixPayout)
	if err != nil {
		return nil, err
	}
	if req.Status != "" {
		if err := oneOf("status", req.Status, paymentd.Strings(paymentd.PayoutLifecycle.Statuses)...); err != nil {
			return nil, err
		}
		f.Status = req.Status
	}
	if err := createdRange(&f, PrefixPayout, req.CreatedBefore, req.CreatedAfter); err != nil {
		return nil, err
	}
	ps, err := s.store.ListPayouts(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListPayoutsResponse{}
	ps, resp.NextPageToken = nextPage(ps, f, func(x *store.Payout) string { return x.ID })
	resp.Payouts = make([]*pb.Payout, len(ps))
	for i, p := range ps {
		resp.Payouts[i] = payoutProto(p)
	}
	resp.Payouts, resp.NextPageToken = fitPage(resp.Payouts, resp.NextPageToken)
	return resp, nil
}

// CancelPayout cancels a pending payout and releases its reservation. The
// status is checked again inside the write, so a cancel racing the processor
// either wins (cancelled) or is refused (processing has begun): never both.
func (s *PayoutsServer) CancelPayout(ctx context.Context, req *pb.CancelPayoutRequest) (*pb.CancelPayoutResponse, error) {
	pr := mustPrincipal(ctx)
	p, err := s.loadPayout(ctx, pr, req.Id)
	if err != nil {
		return nil, err
	}
	resp := &pb.CancelPayoutResponse{}
	err = s.idem.run(ctx, "CancelPayout", req, resp, func(ik *idemKey) error {
		if err := paymentd.PayoutCancel.Check(p.ID, paymentd.PayoutStatus(p.Status)); err != nil {
			return err
		}
		if err := s.conns.refuseRoutedCancel(p); err != nil { // routing.go
			return err
		}
		return s.store.Write(ctx, func(tx *store.Tx) error {
			cur, err := tx.GetPayout(pr.AccountID, pr.Livemode, p.ID)
			if err != nil {
				return err
			}
			out, err := applyPayout(tx, cur, paymentd.PayoutCancel)
			if err != nil {
				return err
			}
			resp.Payout = out
			return ik.save(tx, resp, nil)
		})
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
