// Package paypage serves paymentd's hosted payment pages (GET and POST
// /pay/{id}): what a customer sees of an invoice paymentd serves itself
// (the sandbox's): the merchant's name, the amount and Pay / Cancel
// buttons, or for crypto invoices the deposit address and the transfers so
// far. Its only credential is the unguessable invoice id in the URL. It is
// plain HTML rendered by html/template, which escapes everything the
// merchant or customer typed; its stylesheet and script are embedded, and
// it loads nothing else.
//
// The page renders and the service decides: a Backend (package service)
// reads invoices and pays or cancels them through the domain's rules, in
// the same writes as the API's own calls.
package paypage

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/store"
)

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

// The status the redirect to callback_url carries.
const (
	RedirectSuccess = "success"
	RedirectCancel  = "cancel"
)

// Backend is what the page asks of the service.
type Backend interface {
	// Invoice returns the invoice with id if paymentd serves its page (an
	// invoice of the test provider), expired first if it is due; nil when
	// there is none, or when a provider serves it.
	Invoice(ctx context.Context, id string) (*store.Invoice, error)
	// UnsettledAttempt returns the open invoice's card payment that has no
	// definite answer yet, or whose late answer is not applied to the
	// invoice yet; nil when there is none. While there is one the page
	// offers no second payment.
	UnsettledAttempt(ctx context.Context, inv *store.Invoice) (*store.Payment, error)
	// Merchant returns the name and the checked brand the page shows for
	// the account (a zero brand when its stored one no longer passes).
	Merchant(ctx context.Context, accountID string) (name string, brand store.Brand, err error)
	// TestMethods lists the test cards the page offers, the first as the default.
	TestMethods() []string
	// Pay pays inv with a payment of method, recorded with the invoice's
	// change in one write, after reading the invoice again there.
	Pay(ctx context.Context, inv *store.Invoice, method string) (Payment, error)
	// Cancel cancels inv; a *paymentd.Error of KindConflict when it changed
	// meanwhile (paid, or expired).
	Cancel(ctx context.Context, inv *store.Invoice) error
	// Lock waits until no other payment attempt on inv's page runs, on any
	// replica (or ctx ends), and returns the function that ends this one's turn.
	Lock(ctx context.Context, inv *store.Invoice) (func(), error)
}

// Payment is what paying from the page came to.
type Payment struct {
	// Recorded is false when the provider failed before any money moved:
	// nothing was written, and the customer may try again.
	Recorded bool
	// Status is the payment's status, and FailureCode why it failed.
	Status      paymentd.PaymentStatus
	FailureCode string
	// Invoice is the invoice as the write that recorded the payment left it.
	Invoice *store.Invoice
}

// Pages serves the payment pages.
type Pages struct {
	b   Backend
	log *slog.Logger
}

// New returns the pages of invoices that b serves; failures are logged to log.
func New(b Backend, log *slog.Logger) *Pages { return &Pages{b: b, log: log} }

// Handler serves /pay/: the payment pages of invoices and their
// stylesheet. Form posts from other sites are refused (CSRF protection), so
// only the page itself can pay or cancel.
func (p *Pages) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pay/assets/style.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(pageCSS)
	})
	mux.HandleFunc("GET /pay/{id}", p.show)
	mux.HandleFunc("POST /pay/{id}", p.submit)
	mux.HandleFunc("/pay/", p.notFoundFor)
	return http.NewCrossOriginProtection().Handler(mux)
}

func (p *Pages) show(w http.ResponseWriter, r *http.Request) {
	inv, err := p.b.Invoice(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		p.Failure(w, r, err)
	case inv == nil:
		p.notFoundFor(w, r)
	default:
		p.renderInvoice(w, r, inv, http.StatusOK, "")
	}
}

func (p *Pages) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPageForm)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "form")
		return
	}
	inv, err := p.b.Invoice(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		p.Failure(w, r, err)
		return
	case inv == nil:
		p.notFoundFor(w, r)
		return
	}
	switch r.PostForm.Get("action") {
	case "pay":
		p.pay(w, r, inv)
	case "cancel":
		p.cancel(w, r, inv)
	default:
		p.renderInvoice(w, r, inv, http.StatusBadRequest, "err_choose_action")
	}
}

// pay pays a card invoice through the backend (a payment of the test
// provider, made as every payment is): the provider call happens first,
// outside the write; then one write records the payment (with its ledger
// entries and event) and the invoice's change, after checking again that
// the invoice is still open, so that paying twice, or paying an invoice
// that expired or was canceled meanwhile, never moves money.
func (p *Pages) pay(w http.ResponseWriter, r *http.Request, inv *store.Invoice) {
	switch {
	case paymentd.InvoiceStatus(inv.Status) == paymentd.InvoicePaid:
		p.Redirect(w, r, inv, RedirectSuccess) // a second click, or the back button
		return
	case inv.Network != "":
		p.renderInvoice(w, r, inv, http.StatusConflict, "err_crypto_pay")
		return
	case paymentd.InvoiceStatus(inv.Status) != paymentd.InvoiceOpen:
		p.renderInvoice(w, r, inv, http.StatusConflict, "")
		return
	}
	methods := p.b.TestMethods()
	method := r.PostForm.Get("payment_method")
	if method == "" && len(methods) > 0 {
		method = methods[0]
	}
	if !slices.Contains(methods, method) {
		p.renderInvoice(w, r, inv, http.StatusBadRequest, "err_choose_card")
		return
	}
	// One attempt at a time per invoice: a second click waits for the
	// first to finish, then sees what it did, on whichever replica it lands.
	release, err := p.b.Lock(r.Context(), inv)
	if err != nil {
		p.Failure(w, r, err)
		return
	}
	defer release()
	if inv, err = p.b.Invoice(r.Context(), inv.ID); err != nil || inv == nil {
		p.Failure(w, r, errors.Join(err, errors.New("invoice vanished")))
		return
	}
	switch unsettledAttempt, err := p.b.UnsettledAttempt(r.Context(), inv); {
	case err != nil:
		p.Failure(w, r, err)
		return
	case paymentd.InvoiceStatus(inv.Status) == paymentd.InvoicePaid:
		p.Redirect(w, r, inv, RedirectSuccess)
		return
	case paymentd.InvoiceStatus(inv.Status) != paymentd.InvoiceOpen || unsettledAttempt != nil:
		// An earlier attempt has no definite answer yet: the provider may
		// have taken the money, so no second payment (issue 10 case 4).
		p.renderInvoice(w, r, inv, http.StatusConflict, "")
		return
	}
	out, err := p.b.Pay(r.Context(), inv, method)
	switch {
	case err != nil:
		p.Failure(w, r, err)
	case !out.Recorded:
		p.renderInvoice(w, r, inv, http.StatusServiceUnavailable, "err_unavailable")
	case paymentd.InvoiceStatus(out.Invoice.Status) == paymentd.InvoicePaid:
		p.Redirect(w, r, out.Invoice, RedirectSuccess)
	case out.Status == paymentd.PaymentFailed:
		p.renderInvoice(w, r, out.Invoice, http.StatusPaymentRequired, declineText(out.FailureCode))
	case out.Status != paymentd.PaymentSucceeded:
		// Authorized only, or no answer (the reconciler settles it and
		// applies it to the invoice): the merchant or the reconciler
		// finishes it, never a second payment. The page shows the
		// unsettled attempt (pageFor) and no Pay button.
		p.renderInvoice(w, r, out.Invoice, http.StatusAccepted, "")
	default:
		p.renderInvoice(w, r, out.Invoice, http.StatusConflict, "")
	}
}

// cancel cancels an open invoice and sends the customer back.
func (p *Pages) cancel(w http.ResponseWriter, r *http.Request, inv *store.Invoice) {
	switch paymentd.InvoiceStatus(inv.Status) {
	case paymentd.InvoiceCanceled:
		p.Redirect(w, r, inv, RedirectCancel) // a second click
		return
	case paymentd.InvoiceOpen:
	default:
		p.renderInvoice(w, r, inv, http.StatusConflict, "")
		return
	}
	err := p.b.Cancel(r.Context(), inv)
	var de *paymentd.Error
	switch {
	case errors.As(err, &de) && de.Kind == paymentd.KindConflict:
		// It changed meanwhile (paid, or expired): show what it is now.
		if cur, err := p.b.Invoice(r.Context(), inv.ID); err != nil || cur == nil {
			p.Failure(w, r, errors.Join(err, errors.New("invoice vanished")))
		} else {
			p.renderInvoice(w, r, cur, http.StatusConflict, "")
		}
	case err != nil:
		p.Failure(w, r, err)
	default:
		p.Redirect(w, r, inv, RedirectCancel)
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

// Redirect sends the customer back to inv's callback_url with status
// (RedirectSuccess or RedirectCancel), as the invoice's own page does.
func (p *Pages) Redirect(w http.ResponseWriter, r *http.Request, inv *store.Invoice, status string) {
	target, err := callbackRedirect(inv.CallbackURL, status, inv)
	if err != nil {
		p.Failure(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

var plainOrigin = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]+)?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]+)?$`)

// Origin is the origin of a URL, for a page's content security policy (the
// form's redirect goes to the callback's, the logo comes from its own), or
// "" if it is not a plain origin that a policy can name.
func Origin(callback string) string {
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
