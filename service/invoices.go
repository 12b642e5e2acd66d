package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/store"
)

// InvoicesServer implements paymentd.v1.InvoicesService.
type InvoicesServer struct {
	pb.UnimplementedInvoicesServiceServer
	*Service
}

// Limits of invoices.
const (
	maxReference         = 64
	maxCallbackURL       = 2048
	maxTxnID             = 200
	maxReceipts          = 1000 // per invoice
	maxBatchIDs          = 100
	defaultInvoiceExpiry = 24 * time.Hour
	minInvoiceExpiry     = time.Second
	maxInvoiceExpiry     = 30 * 24 * time.Hour
	// expireBatch bounds how many invoices one expiry write changes.
	expireBatch = 256
)

// invoiceRequest is a validated CreateInvoiceRequest.
type invoiceRequest struct {
	currency paymentd.Currency
	network  invoiceNetwork // zero for card invoices
	expiry   time.Duration
	callback *url.URL
}

// validReference reports whether ref may be a transaction_reference: 1 to 64
// of A–Z a–z 0–9 - _ . : so that it is safe as a URL path segment, and not
// starting with the invoice id prefix, so that an id and a reference can
// never be confused.
func validReference(ref string) bool {
	if ref == "" || len(ref) > maxReference || strings.HasPrefix(ref, PrefixInvoice) {
		return false
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func checkReference(ref string) error {
	switch {
	case ref == "":
		return Invalid("transaction_reference", "parameter_missing",
			"transaction_reference is required: your own unique reference for this invoice (e.g. your order id), at most %d characters.", maxReference)
	case utf8.RuneCountInString(ref) > maxReference:
		return Invalid("transaction_reference", "parameter_too_long",
			"transaction_reference must be at most %d characters; got %d.", maxReference, utf8.RuneCountInString(ref))
	case strings.HasPrefix(ref, PrefixInvoice):
		return Invalid("transaction_reference", "transaction_reference_invalid",
			"transaction_reference must not start with %q, which is reserved for invoice ids.", PrefixInvoice)
	case !validReference(ref):
		return Invalid("transaction_reference", "transaction_reference_invalid",
			"transaction_reference may contain only letters A–Z and a–z, digits and - _ . : so that it can be used in URLs; got %q.", truncate(ref, maxReference))
	case ref == "." || ref == "..":
		return Invalid("transaction_reference", "transaction_reference_invalid",
			"transaction_reference must not be %q: as a URL path segment it cannot be read back with GET /v1/invoices/{reference}.", ref)
	}
	return nil
}

// checkCallbackURL validates callback_url: an absolute http(s) URL without
// credentials; https for live mode, where the redirect carries a customer
// back with the invoice's identifiers.
func checkCallbackURL(raw string, livemode bool) (*url.URL, error) {
	if raw == "" {
		return nil, Invalid("callback_url", "parameter_missing",
			"callback_url is required: the absolute http(s) URL the customer returns to after paying or canceling, e.g. https://shop.example/orders/42/return.")
	}
	if len(raw) > maxCallbackURL {
		return nil, Invalid("callback_url", "parameter_too_long", "callback_url must be at most %d characters; got %d.", maxCallbackURL, len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, Invalid("callback_url", "url_invalid",
			"callback_url must be an absolute http or https URL such as https://shop.example/return; got %q.", truncate(raw, 100))
	}
	if u.User != nil {
		return nil, Invalid("callback_url", "url_invalid", "callback_url must not contain a user name or password.")
	}
	if livemode && u.Scheme != "https" {
		return nil, Invalid("callback_url", "url_insecure",
			"callback_url must use https with a live key, so that customers return to your site over an encrypted connection; got %q.", truncate(raw, 100))
	}
	return u, nil
}

func validateCreateInvoice(req *pb.CreateInvoiceRequest, livemode bool) (invoiceRequest, error) {
	var v invoiceRequest
	var err error
	if err := checkReference(req.TransactionReference); err != nil {
		return v, err
	}
	if v.currency, err = lookupCurrencyParam("currency", req.Currency); err != nil {
		return v, err
	}
	if err := paymentd.CheckAmount("amount", req.Amount, v.currency); err != nil {
		return v, err
	}
	network := strings.ToLower(req.Network)
	switch {
	case isCryptoAsset(v.currency.Code) && network == "":
		return v, Invalid("network", "parameter_missing", "network is required for %s invoices: one of %s.",
			v.currency.Code, strings.Join(invoiceNetworkNames(v.currency.Code), ", "))
	case isCryptoAsset(v.currency.Code):
		n, ok := lookupInvoiceNetwork(v.currency.Code, network)
		if !ok {
			return v, Invalid("network", "network_invalid", "%s invoices can be paid on %s; got network %q.",
				v.currency.Code, strings.Join(invoiceNetworkNames(v.currency.Code), ", "), req.Network)
		}
		v.network = n
	case network != "":
		return v, Invalid("network", "network_invalid", "network applies only to crypto assets such as USDT; omit it for %s invoices.", v.currency.Code)
	}
	if v.callback, err = checkCallbackURL(req.CallbackUrl, livemode); err != nil {
		return v, err
	}
	v.expiry = defaultInvoiceExpiry
	if req.Expiry != nil {
		if err := req.Expiry.CheckValid(); err != nil {
			return v, Invalid("expiry", "expiry_invalid", "expiry must be a duration such as \"3600s\".")
		}
		v.expiry = req.Expiry.AsDuration()
		if v.expiry < minInvoiceExpiry || v.expiry > maxInvoiceExpiry {
			got := v.expiry.String()
			if v.expiry == math.MaxInt64 || v.expiry == math.MinInt64 {
				// AsDuration saturates beyond ±292 years; say what was sent.
				got = fmt.Sprintf("%ds", req.Expiry.Seconds)
			}
			return v, Invalid("expiry", "expiry_invalid", "expiry must be between %v and %v (720h); got %s. Omit it for the default of 24h.",
				minInvoiceExpiry, maxInvoiceExpiry, got)
		}
	}
	if err := checkLen("description", req.Description, maxDescription); err != nil {
		return v, err
	}
	if err := checkMetadata("metadata", req.Metadata); err != nil {
		return v, err
	}
	return v, checkCustomer(req.Customer)
}

// invoiceProviderName says who serves a new invoice of the caller's mode and
// currency: the provider paymentd.yaml routes it to, else, for test keys,
// the sandbox (paymentd's own /pay pages). Live keys without a route get
// live_mode_not_configured.
func (s *Service) invoiceProviderName(pr *Principal, currency string) (string, error) {
	if conns := s.cfg.Router.Route(routing.Invoices, pr.Livemode, currency); len(conns) > 0 {
		return conns[0].Name, nil // paymentd.yaml routes it to a provider (routing.go)
	}
	if pr.Livemode {
		return "", Errorf(KindInvalid, "live_mode_not_configured",
			"No live invoice provider is configured for this account, so live keys cannot create invoices yet; use a test key (ak_test_…) with the sandbox, or configure a live invoice provider.")
	}
	return providerName(s.cfg.TestProvider), nil
}

// CreateInvoice creates an open invoice, served by paymentd's payment page
// (sandbox) or by the provider its route names.
func (s *InvoicesServer) CreateInvoice(ctx context.Context, req *pb.CreateInvoiceRequest) (*pb.CreateInvoiceResponse, error) {
	pr := mustPrincipal(ctx)
	v, err := validateCreateInvoice(req, pr.Livemode)
	if err != nil {
		return nil, err
	}
	if err := s.checkPublicHost(ctx, "callback_url", v.callback); err != nil {
		return nil, err
	}
	provider, err := s.invoiceProviderName(pr, v.currency.Code)
	if err != nil {
		return nil, err
	}
	base := s.publicBaseURL()
	if base == "" {
		return nil, Errorf(KindUnavailable, "service_unavailable", "paymentd is still starting and does not know its public URL yet; retry in a moment.")
	}
	resp := &pb.CreateInvoiceResponse{}
	err = s.idem.run(ctx, "CreateInvoice", req, resp, func(ik *idemKey) error {
		inv := &store.Invoice{
			ID: NewID(PrefixInvoice), AccountID: pr.AccountID, Livemode: pr.Livemode, Amount: req.Amount,
			Currency: v.currency.Code, Network: v.network.Name, TransactionReference: req.TransactionReference,
			CallbackURL: v.callback.String(), Description: req.Description, Metadata: req.Metadata,
			CustomerName: req.GetCustomer().GetName(), CustomerEmail: req.GetCustomer().GetEmail(),
			CustomerID: req.GetCustomer().GetId(), Provider: provider,
		}
		inv.PaymentURL = base + "/pay/" + inv.ID
		if inv.Network != "" {
			inv.DepositAddress = sandboxDepositAddress(pr.AccountID, pr.Livemode, inv.Currency, inv.Network, inv.CustomerID, inv.ID)
			inv.ConfirmationsRequired = v.network.Confirmations
		}
		inv.Created = IDTime(inv.ID)
		inv.ExpiresAt = inv.Created.Add(v.expiry)
		if err := s.conns.createRoutedInvoice(ctx, pr, inv); err != nil { // provider-served invoices (routing.go)
			return err
		}
		return s.store.Write(ctx, func(tx *store.Tx) error {
			if id, err := tx.InvoiceIDByReference(pr.AccountID, pr.Livemode, inv.TransactionReference); err == nil {
				return duplicateReference(inv.TransactionReference, id)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			inv.Created = IDTime(inv.ID)
			inv.ExpiresAt = inv.Created.Add(v.expiry)
			if err := tx.DeleteInvoiceAttempt(pr.AccountID, pr.Livemode, inv.TransactionReference); err != nil {
				return err
			}
			inv.Status = "" // new on every run (PostgreSQL runs a change again after a lost race)
			out, err := writeInvoice(tx, inv, paymentd.InvoiceCreate, nil)
			if errors.Is(err, store.ErrConflict) {
				return duplicateReference(inv.TransactionReference, "")
			}
			if err != nil {
				return err
			}
			resp.Invoice = out
			return ik.save(tx, resp, nil)
		})
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func duplicateReference(ref, existingID string) error {
	msg := "An invoice with transaction_reference " + ref + " already exists"
	if existingID != "" {
		msg += " (" + existingID + ")"
	}
	return &Error{Kind: KindAlreadyExists, Code: "duplicate_transaction_reference", Param: "transaction_reference",
		Message: msg + "; read it with GET /v1/invoices/" + ref + ", or use a new reference for a new invoice."}
}

// writeInvoice applies t to the invoice in tx, checked against its status
// (a creation, from the empty status, inserts it): the row, the ledger moves
// of money received (received, from paymentd.ReceiptFlow), and the event,
// all or nothing.
func writeInvoice(tx *store.Tx, inv *store.Invoice, t paymentd.Transition[paymentd.InvoiceStatus], received []paymentd.Move) (*pb.Invoice, error) {
	ch, err := t.Apply(inv.ID, paymentd.InvoiceStatus(inv.Status))
	if err != nil {
		return nil, err
	}
	now := tx.Now()
	inv.Status = string(ch.Status())
	inv.Updated = now
	if ch.Status() == paymentd.InvoicePaid && inv.PaidAt.IsZero() {
		inv.PaidAt = now
	}
	if ch.From() == "" {
		err = tx.InsertInvoice(inv)
	} else {
		err = tx.UpdateInvoice(inv)
	}
	if err != nil {
		return nil, err
	}
	if err := insertMoves(tx, inv.AccountID, inv.Livemode, inv.Currency, inv.ID, received); err != nil {
		return nil, err
	}
	if err := flagUncountedTransfers(tx, inv); err != nil {
		return nil, err
	}
	out := invoiceProto(inv)
	return out, recordEvent(tx, ownerOf(inv), string(ch.Event()), inv.ID, out)
}

// flagUncountedTransfers opens an operator item when inv stopped being
// payable (expired, canceled) while holding transfers that were seen but
// never confirmed: that money may be at the provider, and no reconciler
// asks about an invoice that is no longer payable. Once every transfer is
// confirmed after all (a provider's webhook, a receipt reported again), the
// item is resolved.
func flagUncountedTransfers(tx *store.Tx, inv *store.Invoice) error {
	const kind = "invoice_ended_with_unconfirmed_transfers"
	if paymentd.Payable(paymentd.InvoiceStatus(inv.Status)) || inv.Status == string(paymentd.InvoicePaid) || len(inv.Receipts) == 0 {
		return nil
	}
	var n int
	var sum int64
	for _, r := range inv.Receipts {
		if !r.Counted {
			n++
			if t, ok := paymentd.AddChecked(sum, r.Amount); ok {
				sum = t
			}
		}
	}
	if n == 0 {
		return tx.ResolveOperatorItem(inv.AccountID, inv.Livemode, inv.ID, kind)
	}
	c, _ := paymentd.LookupCurrency(inv.Currency)
	return addOperatorItemTx(tx, inv.AccountID, inv.Livemode, inv.ID, kind, fmt.Sprintf(
		"Invoice %s is %s with %d transfer(s) of %s %s seen but never confirmed; the money may be at %s. Check there, then refund the customer or honor the invoice.",
		inv.ID, inv.Status, n, paymentd.FormatAmount(sum, c), inv.Currency, inv.Provider))
}

// due reports whether a payable invoice has reached its expiry at now.
func due(inv *store.Invoice, now time.Time) bool {
	return paymentd.Payable(paymentd.InvoiceStatus(inv.Status)) && !now.Before(inv.ExpiresAt)
}

// expireIfDue expires inv in tx if it is due.
func expireIfDue(tx *store.Tx, inv *store.Invoice) error {
	if !due(inv, tx.Now()) {
		return nil
	}
	if _, err := writeInvoice(tx, inv, paymentd.InvoiceExpire, nil); err != nil {
		return err
	}
	if inv.ProviderRef != "" {
		// The reconciler asks its provider again a first delay after the
		// expiry, then on its schedule (LateTransferWindow).
		return tx.DeleteReconcileCheck(inv.AccountID, inv.Livemode, inv.ID)
	}
	return nil
}

// servedHere reports whether paymentd itself serves the invoice (the
// sandbox's /pay page and test receipts), rather than a provider.
func (s *Service) servedHere(inv *store.Invoice) bool {
	return !inv.Livemode && inv.ProviderRef == "" && inv.Provider == providerName(s.cfg.TestProvider)
}

// ownerOf is the principal an invoice's events belong to.
func ownerOf(inv *store.Invoice) *Principal {
	return &Principal{AccountID: inv.AccountID, Livemode: inv.Livemode}
}

// expireInvoices expires, in one write, those of the invoices that are still
// due when the write runs, and returns every invoice named as it is after the
// write.
func (s *Service) expireInvoices(ctx context.Context, keys []store.InvoiceKey) (map[store.InvoiceKey]*store.Invoice, error) {
	out := make(map[store.InvoiceKey]*store.Invoice, len(keys))
	err := s.store.Write(ctx, func(tx *store.Tx) error {
		clear(out)
		for _, k := range keys {
			inv, err := tx.GetInvoice(k.AccountID, k.Livemode, k.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := expireIfDue(tx, inv); err != nil {
				return err
			}
			out[k] = inv
		}
		return nil
	})
	return out, err
}

// freshen applies lazy expiry to invoices just read: those past their expiry
// are expired (with their events) before the caller sees them.
func (s *Service) freshen(ctx context.Context, invs []*store.Invoice) error {
	now := time.Now()
	var keys []store.InvoiceKey
	for _, inv := range invs {
		if due(inv, now) {
			keys = append(keys, store.InvoiceKey{AccountID: inv.AccountID, Livemode: inv.Livemode, ID: inv.ID})
		}
	}
	if len(keys) == 0 {
		return nil
	}
	fresh, err := s.expireInvoices(ctx, keys)
	if err != nil {
		return err
	}
	for i, inv := range invs {
		if f := fresh[store.InvoiceKey{AccountID: inv.AccountID, Livemode: inv.Livemode, ID: inv.ID}]; f != nil {
			invs[i] = f
		}
	}
	return nil
}

// expireDue expires every due invoice, of one account and mode when
// accountID is set, in writes of at most expireBatch invoices.
func (s *Service) expireDue(ctx context.Context, accountID string, livemode bool) error {
	for {
		keys, err := s.store.DueInvoices(ctx, time.Now(), accountID, livemode, expireBatch)
		if err != nil || len(keys) == 0 {
			return err
		}
		if _, err := s.expireInvoices(ctx, keys); err != nil {
			return err
		}
		if len(keys) < expireBatch {
			return nil
		}
	}
}

// publicBaseURL is the base URL of the HTTP port as customers reach it,
// without a trailing slash; payment pages are served under it at /pay/.
func (s *Service) publicBaseURL() string {
	if p := s.publicURL.Load(); p != nil {
		return *p
	}
	return strings.TrimRight(s.cfg.PublicURL, "/")
}

// SetPublicURL sets the base URL of payment pages when it is known only
// once the HTTP port is listening (e.g. a port chosen by the system). It
// affects invoices created afterwards.
func (s *Service) SetPublicURL(u string) {
	u = strings.TrimRight(u, "/")
	s.publicURL.Store(&u)
}

// CheckPublicURL validates a --public-url value: an absolute http(s) URL
// with no query or fragment.
func CheckPublicURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("the public URL must be an absolute http(s) URL such as https://pay.example.com, without query or fragment; got %q", raw)
	}
	return nil
}

// loadInvoice reads an invoice of the caller's account and mode by id or
// transaction reference, expiring it first if it is due; any other invoice
// is not found.
func (s *Service) loadInvoice(ctx context.Context, pr *Principal, param, idOrRef string) (*store.Invoice, error) {
	if idOrRef == "" {
		return nil, Invalid(param, "parameter_missing", "%s is required: the invoice's id (inv_…) or its transaction_reference.", param)
	}
	notFound := &Error{Kind: KindNotFound, Code: "resource_missing", Param: param,
		Message: "No such invoice: '" + truncate(idOrRef, 64) + "' in " + pr.Mode() + " mode; pass an invoice id (inv_…) or a transaction_reference."}
	var inv *store.Invoice
	var err error
	switch {
	case validID(idOrRef, PrefixInvoice):
		inv, err = s.store.GetInvoice(ctx, pr.AccountID, pr.Livemode, idOrRef)
	case validReference(idOrRef):
		inv, err = s.store.GetInvoiceByReference(ctx, pr.AccountID, pr.Livemode, idOrRef)
	default:
		return nil, notFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	invs := []*store.Invoice{inv}
	if err := s.freshen(ctx, invs); err != nil {
		return nil, err
	}
	return invs[0], nil
}

// GetInvoice returns one invoice by id or transaction reference.
func (s *InvoicesServer) GetInvoice(ctx context.Context, req *pb.GetInvoiceRequest) (*pb.GetInvoiceResponse, error) {
	pr := mustPrincipal(ctx)
	inv, err := s.loadInvoice(ctx, pr, "id", req.Id)
	if err != nil {
		return nil, err
	}
	inv = s.conns.syncRoutedInvoice(ctx, inv) // a provider-served invoice's state comes from its provider (routing.go)
	return &pb.GetInvoiceResponse{Invoice: invoiceProto(inv)}, nil
}

// BatchGetInvoices returns the invoices named by ids (ids or references,
// mixed), in request order, and the ids that matched none.
func (s *InvoicesServer) BatchGetInvoices(ctx context.Context, req *pb.BatchGetInvoicesRequest) (*pb.BatchGetInvoicesResponse, error) {
	pr := mustPrincipal(ctx)
	switch n := len(req.Ids); {
	case n == 0:
		return nil, Invalid("ids", "parameter_missing", "ids must list 1 to %d invoice ids (inv_…) or transaction references.", maxBatchIDs)
	case n > maxBatchIDs:
		return nil, Invalid("ids", "too_many_ids", "ids may list at most %d invoices per request; got %d. Split them into several requests.", maxBatchIDs, n)
	}
	var ids, refs []string
	for i, id := range req.Ids {
		param := fmt.Sprintf("ids[%d]", i)
		switch {
		case id == "":
			return nil, Invalid(param, "parameter_invalid", "%s is empty; every entry must be an invoice id (inv_…) or a transaction reference.", param)
		case utf8.RuneCountInString(id) > maxReference:
			return nil, Invalid(param, "parameter_too_long", "%s is %d characters long; invoice ids and transaction references have at most %d.",
				param, utf8.RuneCountInString(id), maxReference)
		case validID(id, PrefixInvoice):
			ids = append(ids, id)
		case validReference(id):
			refs = append(refs, id)
		}
	}
	found, err := s.store.FindInvoices(ctx, pr.AccountID, pr.Livemode, ids, refs)
	if err != nil {
		return nil, err
	}
	if err := s.freshen(ctx, found); err != nil {
		return nil, err
	}
	byKey := make(map[string]*store.Invoice, 2*len(found))
	for _, inv := range found {
		byKey[inv.ID] = inv
		byKey[inv.TransactionReference] = inv // references never look like ids
	}
	resp := &pb.BatchGetInvoicesResponse{TotalRequested: int32(len(req.Ids)), NotFoundIds: []string{}}
	protos := map[string]*pb.Invoice{}
	for _, id := range req.Ids {
		inv := byKey[id]
		if inv == nil {
			resp.NotFoundIds = append(resp.NotFoundIds, id)
			continue
		}
		if protos[inv.ID] == nil {
			protos[inv.ID] = invoiceProto(inv)
		}
		resp.Invoices = append(resp.Invoices, protos[inv.ID])
	}
	resp.TotalFound = int32(len(resp.Invoices))
	return resp, nil
}

// ListInvoices returns a page of invoices, newest first.
func (s *InvoicesServer) ListInvoices(ctx context.Context, req *pb.ListInvoicesRequest) (*pb.ListInvoicesResponse, error) {
	pr := mustPrincipal(ctx)
	f, err := pageFilter(pr, req.PageSize, req.PageToken, PrefixInvoice)
	if err != nil {
		return nil, err
	}
	if req.Status != "" {
		if err := oneOf("status", req.Status, paymentd.Strings(paymentd.InvoiceLifecycle.Statuses)...); err != nil {
			return nil, err
		}
		f.Status = req.Status
	}
	if err := createdRange(&f, PrefixInvoice, req.CreatedBefore, req.CreatedAfter); err != nil {
		return nil, err
	}
	// Expire the account's due invoices first, so that a status filter sees
	// every invoice in the status it has now.
	if err := s.expireDue(ctx, pr.AccountID, pr.Livemode); err != nil {
		return nil, err
	}
	invs, err := s.store.ListInvoices(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListInvoicesResponse{}
	invs, resp.NextPageToken = nextPage(invs, f, func(x *store.Invoice) string { return x.ID })
	resp.Invoices = make([]*pb.Invoice, len(invs))
	for i, inv := range invs {
		resp.Invoices[i] = invoiceProto(inv)
	}
	resp.Invoices, resp.NextPageToken = fitPage(resp.Invoices, resp.NextPageToken)
	return resp, nil
}

// CancelInvoice cancels an open invoice.
func (s *InvoicesServer) CancelInvoice(ctx context.Context, req *pb.CancelInvoiceRequest) (*pb.CancelInvoiceResponse, error) {
	pr := mustPrincipal(ctx)
	inv, err := s.loadInvoice(ctx, pr, "id", req.Id)
	if err != nil {
		return nil, err
	}
	resp := &pb.CancelInvoiceResponse{}
	err = s.idem.run(ctx, "CancelInvoice", req, resp, func(ik *idemKey) error {
		if err := paymentd.InvoiceCancel.Check(inv.ID, paymentd.InvoiceStatus(inv.Status)); err != nil {
			return err
		}
		release, err := s.waitForPageAttempt(ctx, inv)
		if err != nil {
			return err
		}
		defer release()
		return s.store.Write(ctx, func(tx *store.Tx) error {
			out, err := cancelInvoiceTx(tx, inv)
			if err != nil {
				return err
			}
			resp.Invoice = out
			return ik.save(tx, resp, nil)
		})
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// waitForPageAttempt waits until no payment attempt runs on inv's page (one
// whose provider call has not answered is not recorded yet), so that a
// cancel then sees its outcome (refuseWhileAttemptUnsettled) instead of
// canceling while the provider may still take the money. It returns the
// function that ends the wait's turn. Crypto and provider-served invoices
// take no page payments.
func (s *Service) waitForPageAttempt(ctx context.Context, inv *store.Invoice) (func(), error) {
	if inv.Network != "" || inv.ProviderRef != "" {
		return func() {}, nil
	}
	return s.lockInvoicePage(ctx, inv)
}

// cancelInvoiceTx cancels the invoice in tx after reading it again there,
// where the check holds until commit.
func cancelInvoiceTx(tx *store.Tx, inv *store.Invoice) (*pb.Invoice, error) {
	cur, err := tx.GetInvoice(inv.AccountID, inv.Livemode, inv.ID)
	if err != nil {
		return nil, err
	}
	status := paymentd.InvoiceStatus(cur.Status)
	if due(cur, tx.Now()) {
		status = paymentd.InvoiceExpired // the next read records the expiry
	}
	if err := paymentd.InvoiceCancel.Check(cur.ID, status); err != nil {
		return nil, err
	}
	if err := refuseCancelAtProvider(cur); err != nil {
		return nil, err
	}
	if err := refuseWhileAttemptUnsettled(tx, cur, "canceled"); err != nil {
		return nil, err
	}
	*inv = *cur
	return writeInvoice(tx, inv, paymentd.InvoiceCancel, nil)
}

// RecordTestReceipt records a simulated incoming transfer towards a test-mode
// crypto invoice. A transfer counts (adds to amount_paid and the ledger) once
// its confirmations reach the invoice's confirmations_required; reporting the
// same txn_id again only updates its confirmations. Transfers are recorded
// whatever the invoice's status, because the money has arrived either way:
// after the invoice is paid, expired or canceled they raise amount_paid
// without changing the status, for the merchant to refund or honor.
func (s *InvoicesServer) RecordTestReceipt(ctx context.Context, req *pb.RecordTestReceiptRequest) (*pb.RecordTestReceiptResponse, error) {
	pr := mustPrincipal(ctx)
	if pr.Livemode {
		return nil, &Error{Kind: KindNotFound, Code: "route_not_found",
			Message: "Test helpers exist only in test mode; call them with a test key (ak_test_…)."}
	}
	switch {
	case req.Amount <= 0 || req.Amount > paymentd.MaxAmount:
		return nil, Invalid("amount", "amount_invalid", "amount must be a positive number of minor units, at most %d; got %d.", paymentd.MaxAmount, req.Amount)
	case req.TxnId == "":
		return nil, Invalid("txn_id", "parameter_missing", "txn_id is required: the transfer's transaction id on its network.")
	case len(req.TxnId) > maxTxnID:
		return nil, Invalid("txn_id", "parameter_too_long", "txn_id must be at most %d characters; got %d.", maxTxnID, len(req.TxnId))
	case strings.ContainsFunc(req.TxnId, func(r rune) bool { return r <= ' ' || r > '~' }):
		return nil, Invalid("txn_id", "parameter_invalid", "txn_id must be printable ASCII without spaces, such as a hex transaction hash.")
	case req.Confirmations < 0:
		return nil, Invalid("confirmations", "parameter_invalid", "confirmations must be 0 or more; got %d.", req.Confirmations)
	}
	inv, err := s.loadInvoice(ctx, pr, "id", req.Id)
	if err != nil {
		return nil, err
	}
	if !s.servedHere(inv) {
		return nil, Invalid("id", "invoice_not_sandbox", "Invoice %s is served by the provider %s, whose reports are its only source of transfers; test receipts apply to sandbox invoices.", inv.ID, inv.Provider)
	}
	if inv.Network == "" {
		return nil, Invalid("id", "invoice_not_crypto", "Invoice %s is a %s card invoice; receipts apply only to crypto invoices (e.g. USDT on tron).", inv.ID, inv.Currency)
	}
	resp := &pb.RecordTestReceiptResponse{}
	err = s.idem.run(ctx, "RecordTestReceipt", req, resp, func(ik *idemKey) error {
		return s.store.Write(ctx, func(tx *store.Tx) error {
			cur, err := tx.GetInvoice(inv.AccountID, inv.Livemode, inv.ID)
			if err != nil {
				return err
			}
			if err := expireIfDue(tx, cur); err != nil {
				return err
			}
			out, err := applyReceipt(tx, cur, req.TxnId, req.Amount, int(req.Confirmations))
			if err != nil {
				return err
			}
			resp.Invoice = out
			return ik.save(tx, resp, nil)
		})
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// applyReceipt records a transfer (or new confirmations of one) on inv in tx.
func applyReceipt(tx *store.Tx, inv *store.Invoice, txnID string, amount int64, confirmations int) (*pb.Invoice, error) {
	now := tx.Now()
	i := slices.IndexFunc(inv.Receipts, func(r *store.InvoiceReceipt) bool { return r.TxnID == txnID })
	r := &store.InvoiceReceipt{AccountID: inv.AccountID, Livemode: inv.Livemode, InvoiceID: inv.ID, TxnID: txnID,
		Amount: amount, Confirmations: confirmations, Created: now, Updated: now}
	switch {
	case i >= 0:
		r = inv.Receipts[i]
		if r.Amount != amount {
			return nil, &Error{Kind: KindConflict, Code: "receipt_mismatch", Param: "amount",
				Message: fmt.Sprintf("Transfer %s was already recorded on invoice %s with amount %d, not %d; a transfer's amount never changes.", txnID, inv.ID, r.Amount, amount)}
		}
		if confirmations <= r.Confirmations {
			return invoiceProto(inv), nil // nothing new: the same report again
		}
		r.Confirmations, r.Updated = confirmations, now
	case len(inv.Receipts) >= maxReceipts:
		return nil, &Error{Kind: KindConflict, Code: "too_many_receipts", Param: "id",
			Message: fmt.Sprintf("Invoice %s already has %d transfers, the most one invoice can record.", inv.ID, maxReceipts)}
	}
	t := paymentd.InvoiceUpdate
	var received []paymentd.Move
	if !r.Counted && r.Confirmations >= inv.ConfirmationsRequired {
		paid, ok := paymentd.AddChecked(inv.AmountPaid, r.Amount)
		if !ok {
			return nil, Errorf(KindConflict, "amount_too_large", "Invoice %s cannot record more money.", inv.ID)
		}
		r.Counted = true
		inv.AmountPaid = paid
		received = paymentd.ReceiptFlow.Moves(inv.Provider, r.Amount)
		if next, ok := paymentd.InvoiceReceipt(paymentd.InvoiceStatus(inv.Status), inv.AmountPaid, inv.Amount); ok {
			t = next
		}
	}
	if i >= 0 {
		if err := tx.UpdateInvoiceReceipt(r); err != nil {
			return nil, err
		}
	} else {
		if err := tx.InsertInvoiceReceipt(r); err != nil {
			return nil, err
		}
		inv.Receipts = append(inv.Receipts, r)
	}
	return writeInvoice(tx, inv, t, received)
}

func invoiceProto(inv *store.Invoice) *pb.Invoice {
	out := &pb.Invoice{
		Id: inv.ID, TransactionReference: inv.TransactionReference, Status: inv.Status, Amount: inv.Amount,
		Currency: inv.Currency, Network: inv.Network, AmountPaid: inv.AmountPaid, AmountDue: max(inv.Amount-inv.AmountPaid, 0),
		Description: inv.Description, Metadata: inv.Metadata, CallbackUrl: inv.CallbackURL, PaymentUrl: inv.PaymentURL,
		DepositAddress: inv.DepositAddress, ConfirmationsRequired: int32(inv.ConfirmationsRequired), PaymentId: inv.PaymentID,
		Livemode: inv.Livemode, Provider: inv.Provider, ExpiresAt: timestamppb.New(inv.ExpiresAt),
		CreatedAt: timestamppb.New(inv.Created), UpdatedAt: timestamppb.New(inv.Updated),
	}
	if inv.CustomerName != "" || inv.CustomerEmail != "" || inv.CustomerID != "" {
		out.Customer = &pb.Customer{Name: inv.CustomerName, Email: inv.CustomerEmail, Id: inv.CustomerID}
	}
	if !inv.PaidAt.IsZero() {
		out.PaidAt = timestamppb.New(inv.PaidAt)
	}
	for _, r := range inv.Receipts {
		out.Receipts = append(out.Receipts, &pb.InvoiceReceipt{TxnId: r.TxnID, Amount: r.Amount,
			Confirmations: int32(r.Confirmations), Confirmed: r.Counted, ReceivedAt: timestamppb.New(r.Created)})
	}
	return out
}
