package service

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/store"
)

// The hosted payment page (GET and POST /pay/{id}) is what a customer sees
// of a sandbox invoice: the merchant's name, the amount and Pay / Cancel
// buttons, or for crypto invoices the deposit address and the transfers so
// far. Its only credential is the unguessable invoice id in the URL. It is
// plain HTML rendered by html/template, which escapes everything the merchant
// or customer typed; its stylesheet is embedded, and it loads nothing else.

//go:embed templates/*.html templates/*.css templates/*.js
var pageFiles embed.FS

var (
	pageTemplates = template.Must(template.ParseFS(pageFiles, "templates/*.html"))
	pageCSS       = mustReadPageFile("templates/style.css")
)

func mustReadPageFile(name string) []byte {
	b, err := pageFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

// maxPageForm bounds the body of a payment page form post.
const maxPageForm = 16 << 10

// The query parameters the redirect to callback_url carries.
const (
	redirectSuccess = "success"
	redirectCancel  = "cancel"
)

// paymentPages serves /pay/: the payment pages of invoices and their
// stylesheet. Form posts from other sites are refused (CSRF protection), so
// only the page itself can pay or cancel.
func (s *Service) paymentPages() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pay/assets/style.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(pageCSS)
	})
	mux.HandleFunc("GET /pay/{id}", s.showPaymentPage)
	mux.HandleFunc("POST /pay/{id}", s.submitPaymentPage)
	mux.HandleFunc("/pay/", s.renderNotFoundFor)
	return http.NewCrossOriginProtection().Handler(mux)
}

// pageInvoice reads the invoice a payment page is for, expiring it first if
// it is due; nil when there is no such invoice served here. Only sandbox
// invoices have paymentd pages: the others are served by their provider.
func (s *Service) pageInvoice(ctx context.Context, id string) (*store.Invoice, error) {
	if !validID(id, PrefixInvoice) {
		return nil, nil
	}
	inv, err := s.store.GetInvoiceByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.servedHere(inv)) {
		return nil, nil
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

func (s *Service) showPaymentPage(w http.ResponseWriter, r *http.Request) {
	inv, err := s.pageInvoice(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		s.renderFailure(w, r, err)
	case inv == nil:
		s.renderNotFoundFor(w, r)
	default:
		s.renderInvoice(w, r, inv, http.StatusOK, "")
	}
}

func (s *Service) submitPaymentPage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPageForm)
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, r, http.StatusBadRequest, "form")
		return
	}
	inv, err := s.pageInvoice(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		s.renderFailure(w, r, err)
		return
	case inv == nil:
		s.renderNotFoundFor(w, r)
		return
	}
	switch r.PostForm.Get("action") {
	case "pay":
		s.payFromPage(w, r, inv)
	case "cancel":
		s.cancelFromPage(w, r, inv)
	default:
		s.renderInvoice(w, r, inv, http.StatusBadRequest, "err_choose_action")
	}
}

// payFromPage pays a card invoice through a payment of the test provider,
// made as every payment is (createPayment): the provider call happens
// first, outside the write; then one write records the payment (with its
// ledger entries and event) and the invoice's change, after checking again
// that the invoice is still open, so that paying twice, or paying an
// invoice that expired or was canceled meanwhile, never moves money.
func (s *Service) payFromPage(w http.ResponseWriter, r *http.Request, inv *store.Invoice) {
	switch {
	case paymentd.InvoiceStatus(inv.Status) == paymentd.InvoicePaid:
		s.redirectToCallback(w, r, inv, redirectSuccess) // a second click, or the back button
		return
	case inv.Network != "":
		s.renderInvoice(w, r, inv, http.StatusConflict, "err_crypto_pay")
		return
	case paymentd.InvoiceStatus(inv.Status) != paymentd.InvoiceOpen:
		s.renderInvoice(w, r, inv, http.StatusConflict, "")
		return
	}
	methods := testMethods(s.cfg.TestProvider)
	method := r.PostForm.Get("payment_method")
	if method == "" && len(methods) > 0 {
		method = methods[0]
	}
	if !slices.Contains(methods, method) {
		s.renderInvoice(w, r, inv, http.StatusBadRequest, "err_choose_card")
		return
	}
	// One attempt at a time per invoice: a second click waits for the
	// first to finish, then sees what it did, on whichever replica it
	// lands (lockInvoicePage, workers.go).
	release, err := s.lockInvoicePage(r.Context(), inv)
	if err != nil {
		s.renderFailure(w, r, err)
		return
	}
	defer release()
	if inv, err = s.pageInvoice(r.Context(), inv.ID); err != nil || inv == nil {
		s.renderFailure(w, r, errors.Join(err, errors.New("invoice vanished")))
		return
	}
	switch unsettledAttempt, err := s.invoiceUnsettledAttempt(r.Context(), inv); {
	case err != nil:
		s.renderFailure(w, r, err)
		return
	case paymentd.InvoiceStatus(inv.Status) == paymentd.InvoicePaid:
		s.redirectToCallback(w, r, inv, redirectSuccess)
		return
	case paymentd.InvoiceStatus(inv.Status) != paymentd.InvoiceOpen || unsettledAttempt != nil:
		// An earlier attempt has no definite answer yet: the provider may
		// have taken the money, so no second payment (issue 10 case 4).
		s.renderInvoice(w, r, inv, http.StatusConflict, "")
		return
	}
	p := &store.Payment{
		ID: NewID(PrefixPayment), AccountID: inv.AccountID, Livemode: inv.Livemode, Amount: inv.Amount,
		Currency: inv.Currency, CaptureMethod: "automatic", PaymentMethod: method, Provider: providerName(s.cfg.TestProvider),
		Description: inv.Description, CustomerName: inv.CustomerName, CustomerEmail: inv.CustomerEmail, CustomerID: inv.CustomerID,
		Metadata: map[string]string{"invoice_id": inv.ID, "transaction_reference": inv.TransactionReference},
	}
	after := inv
	// The payment is recorded with the invoice's change, in the write that
	// records the provider's answer, after reading the invoice again there.
	payInvoice := func(tx *store.Tx, t paymentd.Transition[paymentd.PaymentStatus], writePayment func() error) error {
		cur, err := tx.GetInvoice(inv.AccountID, inv.Livemode, inv.ID)
		if err != nil {
			return err
		}
		if err := expireIfDue(tx, cur); err != nil {
			return err
		}
		after = cur
		captured := t.Destination == paymentd.PaymentSucceeded
		if captured && paymentd.InvoiceStatus(cur.Status) != paymentd.InvoiceOpen {
			return nil // paid meanwhile, expired or canceled: no payment, no money
		}
		if err := writePayment(); err != nil || !captured {
			return err
		}
		cur.PaymentID, cur.AmountPaid = p.ID, cur.Amount
		_, err = writeInvoice(tx, cur, paymentd.InvoicePay, nil)
		return err
	}
	out, err := s.createPayment(r.Context(), ownerOf(inv), p, []providers.Payments{s.cfg.TestProvider}, nil,
		func(*pb.Payment) proto.Message { return nil }, payInvoice)
	var failure string
	var unsettled bool
	switch {
	case err == nil && !out.recorded:
		s.renderInvoice(w, r, inv, http.StatusServiceUnavailable, "err_unavailable")
		return
	case out.t.Destination == paymentd.PaymentFailed:
		failure = declineText(p.FailureCode)
	case out.t.Destination != paymentd.PaymentSucceeded:
		// Authorized only, or no answer (the reconciler settles it and
		// applies it to the invoice, applyPaymentToInvoiceTx): the merchant
		// or the reconciler finishes it, never a second payment. The page
		// shows the unsettled attempt (pageState) and no Pay button.
		unsettled = true
	}
	switch {
	case err != nil:
		s.renderFailure(w, r, err)
	case paymentd.InvoiceStatus(after.Status) == paymentd.InvoicePaid:
		s.redirectToCallback(w, r, after, redirectSuccess)
	case failure != "":
		s.renderInvoice(w, r, after, http.StatusPaymentRequired, failure)
	case unsettled:
		s.renderInvoice(w, r, after, http.StatusAccepted, "")
	default:
		s.renderInvoice(w, r, after, http.StatusConflict, "")
	}
}

// cancelFromPage cancels an open invoice and sends the customer back.
func (s *Service) cancelFromPage(w http.ResponseWriter, r *http.Request, inv *store.Invoice) {
	switch paymentd.InvoiceStatus(inv.Status) {
	case paymentd.InvoiceCanceled:
		s.redirectToCallback(w, r, inv, redirectCancel) // a second click
		return
	case paymentd.InvoiceOpen:
	default:
		s.renderInvoice(w, r, inv, http.StatusConflict, "")
		return
	}
	err := s.store.Write(r.Context(), func(tx *store.Tx) error {
		_, err := cancelInvoiceTx(tx, inv)
		return err
	})
	var de *Error
	switch {
	case errors.As(err, &de) && de.Kind == KindConflict:
		// It changed meanwhile (paid, or expired): show what it is now.
		if cur, err := s.pageInvoice(r.Context(), inv.ID); err != nil || cur == nil {
			s.renderFailure(w, r, errors.Join(err, errors.New("invoice vanished")))
		} else {
			s.renderInvoice(w, r, cur, http.StatusConflict, "")
		}
	case err != nil:
		s.renderFailure(w, r, err)
	default:
		s.redirectToCallback(w, r, inv, redirectCancel)
	}
}

// callbackRedirect is callback_url with status, invoice_id and
// transaction_reference added to its query. The callback's own parameters
// are kept as they were, except any of those three names, which paymentd sets.
func callbackRedirect(callback, status string, inv *store.Invoice) (string, error) {
	u, err := url.Parse(callback)
	if err != nil {
		return "", err
	}
	var kept []string
	for _, part := range strings.Split(u.RawQuery, "&") {
		k, _, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if part == "" || (err == nil && (key == "status" || key == "invoice_id" || key == "transaction_reference")) {
			continue
		}
		kept = append(kept, part)
	}
	kept = append(kept, "status="+url.QueryEscape(status), "invoice_id="+url.QueryEscape(inv.ID),
		"transaction_reference="+url.QueryEscape(inv.TransactionReference))
	u.RawQuery = strings.Join(kept, "&")
	return u.String(), nil
}

func (s *Service) redirectToCallback(w http.ResponseWriter, r *http.Request, inv *store.Invoice, status string) {
	target, err := callbackRedirect(inv.CallbackURL, status, inv)
	if err != nil {
		s.renderFailure(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// callbackOrigin is the callback's origin for the page's form-action policy
// (the form's redirect goes there), or "" if it is not a plain origin.
var plainOrigin = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]+)?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]+)?$`)

func callbackOrigin(callback string) string {
	u, err := url.Parse(callback)
	if err != nil {
		return ""
	}
	o := u.Scheme + "://" + u.Host
	if !plainOrigin.MatchString(o) {
		return ""
	}
	return o
}
