package service

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/sandbox"
	"github.com/paymentd/paymentd/store"
)

// The hosted payment page (GET and POST /pay/{id}) is what a customer sees
// of a sandbox invoice: the merchant's name, the amount and Pay / Cancel
// buttons, or for crypto invoices the deposit address and the transfers so
// far. Its only credential is the unguessable invoice id in the URL. It is
// plain HTML rendered by html/template, which escapes everything the merchant
// or customer typed; its stylesheet is embedded, and it loads nothing else.

//go:embed templates/*.html templates/*.css
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
	mux.HandleFunc("/pay/", func(w http.ResponseWriter, _ *http.Request) { s.renderNotFound(w) })
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
		s.renderNotFound(w)
	default:
		s.renderInvoice(w, r, inv, http.StatusOK, "")
	}
}

func (s *Service) submitPaymentPage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPageForm)
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, http.StatusBadRequest, "The form could not be read", "Go back to the payment page and try again.")
		return
	}
	inv, err := s.pageInvoice(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		s.renderFailure(w, r, err)
		return
	case inv == nil:
		s.renderNotFound(w)
		return
	}
	switch r.PostForm.Get("action") {
	case "pay":
		s.payFromPage(w, r, inv)
	case "cancel":
		s.cancelFromPage(w, r, inv)
	default:
		s.renderInvoice(w, r, inv, http.StatusBadRequest, "Choose Pay or Cancel.")
	}
}

// payFromPage pays a card invoice through a sandbox payment: the provider
// call happens first, outside the write; then one write records the payment
// (with its ledger entries and event) and the invoice's change, after
// checking again that the invoice is still open, so that paying twice, or
// paying an invoice that expired or was canceled meanwhile, never moves money.
func (s *Service) payFromPage(w http.ResponseWriter, r *http.Request, inv *store.Invoice) {
	switch {
	case inv.Status == InvoicePaid:
		s.redirectToCallback(w, r, inv, redirectSuccess) // a second click, or the back button
		return
	case inv.Network != "":
		s.renderInvoice(w, r, inv, http.StatusConflict,
			"This invoice is paid by sending "+inv.Currency+" to the deposit address below; transfers appear here as they arrive.")
		return
	case inv.Status != InvoiceOpen:
		s.renderInvoice(w, r, inv, http.StatusConflict, "")
		return
	}
	method := r.PostForm.Get("payment_method")
	if method == "" {
		method = sandbox.CardVisa
	}
	if !slices.Contains(sandbox.Methods, method) {
		s.renderInvoice(w, r, inv, http.StatusBadRequest, "Choose one of the test cards.")
		return
	}
	prov := s.cfg.TestProvider
	p := &store.Payment{
		ID: NewID(PrefixPayment), AccountID: inv.AccountID, Livemode: inv.Livemode, Amount: inv.Amount,
		Currency: inv.Currency, CaptureMethod: "automatic", PaymentMethod: method, Provider: providerName(prov),
		Description: inv.Description, CustomerName: inv.CustomerName, CustomerEmail: inv.CustomerEmail, CustomerID: inv.CustomerID,
		Metadata: map[string]string{"invoice_id": inv.ID, "transaction_reference": inv.TransactionReference},
	}
	pctx, cancel := context.WithTimeout(r.Context(), s.cfg.ProviderTimeout)
	res, perr := prov.Authorize(pctx, providers.PaymentRequest{
		IdempotencyKey: p.ID, Amount: p.Amount, Currency: p.Currency, PaymentMethod: method, Capture: true,
		Description: p.Description, Livemode: p.Livemode,
	})
	cancel()
	const uncertain = "The payment could not be confirmed. Do not pay again now: if it went through, this page will show the invoice as paid."
	t, ledger, recorded := authorizationOutcome(p, res, perr)
	var failure string
	switch {
	case !recorded:
		s.renderInvoice(w, r, inv, http.StatusServiceUnavailable, "The payment could not be processed and nothing was charged; try again in a moment.")
		return
	case t.dest == StatusFailed:
		failure = p.FailureMessage
	case t.dest != StatusSucceeded:
		// Authorized only, or no answer (the reconciler settles it): the
		// merchant or the reconciler finishes it, never a second payment.
		failure = uncertain
	}
	captured := t.dest == StatusSucceeded
	after := inv
	err := s.store.Write(r.Context(), func(tx *store.Tx) error {
		cur, err := tx.GetInvoice(inv.AccountID, inv.Livemode, inv.ID)
		if err != nil {
			return err
		}
		if err := expireIfDue(tx, cur); err != nil {
			return err
		}
		after = cur
		if captured && cur.Status != InvoiceOpen {
			return nil // paid meanwhile, expired or canceled: no payment, no money
		}
		pr := ownerOf(cur)
		if _, err := writePayment(tx, pr, p, true, t, ledger, nil, func(*pb.Payment) proto.Message { return nil }, nil); err != nil {
			return err
		}
		if !captured {
			return nil
		}
		cur.PaymentID, cur.AmountPaid = p.ID, cur.Amount
		_, err = writeInvoice(tx, pr, cur, false, tInvoicePay, nil)
		return err
	})
	switch {
	case err != nil:
		s.renderFailure(w, r, err)
	case after.Status == InvoicePaid:
		s.redirectToCallback(w, r, after, redirectSuccess)
	case failure != "":
		s.renderInvoice(w, r, after, http.StatusPaymentRequired, failure)
	default:
		s.renderInvoice(w, r, after, http.StatusConflict, "")
	}
}

// cancelFromPage cancels an open invoice and sends the customer back.
func (s *Service) cancelFromPage(w http.ResponseWriter, r *http.Request, inv *store.Invoice) {
	switch inv.Status {
	case InvoiceCanceled:
		s.redirectToCallback(w, r, inv, redirectCancel) // a second click
		return
	case InvoiceOpen:
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

// pageData is what the invoice template shows.
type pageData struct {
	Merchant, ID, Reference, Status, StatusLabel string
	Amount, AmountDue, AmountPaid, Currency      string
	Description, CustomerName                    string
	ExpiresAt                                    string
	TestMode, Payable, CanPay, CanCancel         bool
	Crypto, Refresh                              bool
	Network, DepositAddress                      string
	ConfirmationsRequired                        int
	Receipts                                     []receiptView
	Methods                                      []methodView
	Error, Notice                                string
	ReturnURL                                    string
}

type receiptView struct {
	TxnID, Amount, Time string
	Confirmations       int
	Confirmed           bool
}

type methodView struct{ Value, Label string }

var testCardLabels = map[string]string{
	sandbox.CardVisa:              "Visa — succeeds",
	sandbox.CardMastercard:        "Mastercard — succeeds",
	sandbox.CardDeclined:          "Card declined",
	sandbox.CardInsufficientFunds: "Insufficient funds",
}

var statusLabels = map[string]string{
	InvoiceOpen:          "Awaiting payment",
	InvoicePartiallyPaid: "Partially paid",
	InvoicePaid:          "Paid",
	InvoiceExpired:       "Expired",
	InvoiceCanceled:      "Canceled",
}

func pageTime(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") }

// renderInvoice shows the invoice's page with an optional error message.
func (s *Service) renderInvoice(w http.ResponseWriter, r *http.Request, inv *store.Invoice, code int, errMsg string) {
	c, ok := LookupCurrency(inv.Currency)
	if !ok {
		c = Currency{Code: inv.Currency}
	}
	merchant := "Merchant"
	if a, err := s.store.Account(r.Context(), inv.AccountID); err == nil && a.Name != "" {
		merchant = a.Name
	}
	d := pageData{
		Merchant: merchant, ID: inv.ID, Reference: inv.TransactionReference, Status: inv.Status,
		StatusLabel: statusLabels[inv.Status], Amount: FormatAmount(inv.Amount, c), Currency: inv.Currency,
		AmountDue: FormatAmount(max(inv.Amount-inv.AmountPaid, 0), c), AmountPaid: FormatAmount(inv.AmountPaid, c),
		Description: inv.Description, CustomerName: inv.CustomerName, ExpiresAt: pageTime(inv.ExpiresAt),
		TestMode: !inv.Livemode, Payable: payable(inv.Status), Crypto: inv.Network != "",
		Network: inv.Network, DepositAddress: inv.DepositAddress, ConfirmationsRequired: inv.ConfirmationsRequired,
		Error: errMsg,
	}
	d.CanPay = inv.Status == InvoiceOpen && !d.Crypto
	d.CanCancel = inv.Status == InvoiceOpen
	d.Refresh = d.Crypto && d.Payable
	for _, m := range sandbox.Methods {
		d.Methods = append(d.Methods, methodView{Value: m, Label: testCardLabels[m]})
	}
	for _, rc := range inv.Receipts {
		d.Receipts = append(d.Receipts, receiptView{TxnID: rc.TxnID, Amount: FormatAmount(rc.Amount, c),
			Time: pageTime(rc.Created), Confirmations: rc.Confirmations, Confirmed: rc.Counted})
	}
	switch inv.Status {
	case InvoicePaid:
		d.Notice = "This invoice has been paid. Thank you!"
		d.ReturnURL, _ = callbackRedirect(inv.CallbackURL, redirectSuccess, inv)
	case InvoiceCanceled:
		d.Notice = "This invoice was canceled and can no longer be paid."
		d.ReturnURL, _ = callbackRedirect(inv.CallbackURL, redirectCancel, inv)
	case InvoiceExpired:
		d.Notice = "This invoice expired on " + pageTime(inv.ExpiresAt) + " and can no longer be paid."
	case InvoicePartiallyPaid:
		d.Notice = "Part of this invoice has been paid; send the amount due to complete it."
	}
	s.renderPage(w, code, "invoice.html", d, callbackOrigin(inv.CallbackURL))
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

func (s *Service) renderNotFound(w http.ResponseWriter) {
	s.renderMessage(w, http.StatusNotFound, "Invoice not found",
		"There is no invoice at this address. Check the link you were given, or ask the merchant for a new one.")
}

func (s *Service) renderFailure(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "payment page", "path", r.URL.Path, "error", err.Error())
	s.renderMessage(w, http.StatusInternalServerError, "Something went wrong",
		"The payment page could not be shown. Nothing was charged; reload the page in a moment.")
}

func (s *Service) renderMessage(w http.ResponseWriter, code int, title, message string) {
	s.renderPage(w, code, "message.html", struct{ Title, Message string }{title, message}, "")
}

// renderPage renders a template fully before writing anything, with the
// headers that keep the page from being framed, cached, or made to load or
// run anything but its own stylesheet.
func (s *Service) renderPage(w http.ResponseWriter, code int, name string, data any, formOrigin string) {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("payment page template", "template", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	formAction := "'self'"
	if formOrigin != "" {
		formAction += " " + formOrigin
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action "+formAction)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
