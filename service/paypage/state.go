package paypage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/store"
)

// What the hosted page shows of an invoice, and how it is sent. The page
// has these states (data-state on its <main>, one screenshot each in docs/):
//
//	open            a card invoice awaiting payment: test cards, Pay, Cancel
//	unsettled       a card payment was sent and has no definite answer yet
//	crypto          a crypto invoice awaiting transfers: QR code and address
//	partially_paid  a crypto invoice with some transfers counted
//	paid, canceled, expired
//
// and the message pages (not_found, failure, form).

// Page states beyond the invoice statuses.
const (
	pageStateUnsettled = "unsettled"
	pageStateCrypto    = "crypto"
)

// pageScript is the page's one script, allowed by its hash.
var (
	pageScript     = template.JS(mustReadPageFile("templates/page.js"))
	pageScriptHash = cspHash(string(pageScript))
)

// cspHash is a CSP source allowing an inline element of exactly this text.
func cspHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// pageData is what the invoice template shows.
type pageData struct {
	L                                       *pageLocale
	Digits                                  string
	Brand                                   brandView
	State                                   string
	ID, Reference, StatusLabel              string
	Amount, AmountDue, AmountPaid, Currency string
	Description, CustomerName               string
	ExpiresAt, Countdown, ExpiresUnix       string
	TestMode, Payable, CanPay, CanCancel    bool
	Crypto, Refresh, Unsettled              bool
	Network, NetworkName, DepositAddress    string
	QR                                      template.HTML
	ConfirmationsRequired                   string
	Receipts                                []receiptView
	Methods                                 []methodView
	Error, Notice                           string
	ReturnURL, FormAction, RefreshedAt      string
	Version                                 string
	Languages                               []languageLink
	Style                                   template.CSS
	Script                                  template.JS
	policy                                  pagePolicy
}

type receiptView struct {
	TxnID, Amount, Time, Confirmations string
	Confirmed                          bool
}

type methodView struct{ Value, Label string }

// languageLink is one entry of the page's language switch.
type languageLink struct {
	Tag, Name, Href string
	Current         bool
}

// testCardKey is the catalogue key of a test card's label: its method
// without the pm_ prefix (pm_card_visa → card_visa).
func testCardKey(method string) string { return strings.TrimPrefix(method, "pm_") }

// declineText is the catalogue key telling the customer why a card was
// declined. The provider's own message is written for the merchant.
func declineText(code string) string {
	switch code {
	case "card_declined":
		return "decline_card_declined"
	case "insufficient_funds":
		return "decline_insufficient"
	}
	return "decline_other"
}

// pageFor assembles what the page shows of inv in the request's language.
// errKey is a catalogue key of an error to show, or "".
func (p *Pages) pageFor(r *http.Request, inv *store.Invoice, errKey string) (*pageData, error) {
	l := pickLocale(r)
	c, ok := paymentd.LookupCurrency(inv.Currency)
	if !ok {
		c = paymentd.Currency{Code: inv.Currency}
	}
	name, brand, err := p.b.Merchant(r.Context(), inv.AccountID)
	if err != nil {
		return nil, err
	}
	unsettled, err := p.b.UnsettledAttempt(r.Context(), inv)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	due := max(inv.Amount-inv.AmountPaid, 0)
	d := &pageData{
		L: l, Digits: string(l.digits), Brand: newBrandView(name, brand), State: inv.Status,
		ID: inv.ID, Reference: inv.TransactionReference, Currency: inv.Currency,
		Amount: l.Amount(inv.Amount, c), AmountDue: l.Amount(due, c), AmountPaid: l.Amount(inv.AmountPaid, c),
		Description: inv.Description, CustomerName: inv.CustomerName,
		ExpiresAt: l.Time(inv.ExpiresAt), Countdown: l.Remaining(inv.ExpiresAt.Sub(now)),
		ExpiresUnix: strconv.FormatInt(inv.ExpiresAt.Unix(), 10),
		TestMode:    !inv.Livemode, Payable: paymentd.Payable(paymentd.InvoiceStatus(inv.Status)), Crypto: inv.Network != "",
		Network: inv.Network, DepositAddress: inv.DepositAddress,
		ConfirmationsRequired: l.Int(inv.ConfirmationsRequired),
		RefreshedAt:           l.Clock(now), FormAction: "/pay/" + inv.ID + langQuery(r),
		Script: pageScript,
	}
	statusKey := "status_" + inv.Status
	switch {
	case unsettled != nil:
		d.State, statusKey, d.Unsettled = pageStateUnsettled, "status_unsettled", true
	case d.Crypto && paymentd.InvoiceStatus(inv.Status) == paymentd.InvoiceOpen:
		d.State = pageStateCrypto
	}
	d.StatusLabel = l.T(statusKey)
	d.CanPay = paymentd.InvoiceStatus(inv.Status) == paymentd.InvoiceOpen && !d.Crypto && unsettled == nil
	d.CanCancel = paymentd.InvoiceStatus(inv.Status) == paymentd.InvoiceOpen && unsettled == nil
	d.Refresh = (d.Crypto && d.Payable) || unsettled != nil
	if errKey != "" {
		d.Error = l.T(errKey, "currency", inv.Currency)
	}
	if d.Crypto {
		d.NetworkName = inv.Network
		if key := "network_" + inv.Network; l.text[key] != "" {
			d.NetworkName = l.T(key)
		}
		if d.Payable && inv.DepositAddress != "" {
			qr, err := qrSVG(depositURI(inv.Network, inv.DepositAddress, due, c), l.T("qr_alt"))
			if err != nil {
				return nil, err
			}
			d.QR = qr
		}
	}
	for _, m := range p.b.TestMethods() {
		d.Methods = append(d.Methods, methodView{Value: m, Label: l.T(testCardKey(m))})
	}
	for _, rc := range inv.Receipts {
		d.Receipts = append(d.Receipts, receiptView{TxnID: rc.TxnID, Amount: l.Amount(rc.Amount, c),
			Time: l.Time(rc.Created), Confirmations: l.Int(rc.Confirmations), Confirmed: rc.Counted})
	}
	switch paymentd.InvoiceStatus(inv.Status) {
	case paymentd.InvoicePaid:
		d.Notice = l.T("notice_paid")
		d.ReturnURL, _ = callbackRedirect(inv.CallbackURL, RedirectSuccess, inv)
	case paymentd.InvoiceCanceled:
		d.Notice = l.T("notice_canceled")
		d.ReturnURL, _ = callbackRedirect(inv.CallbackURL, RedirectCancel, inv)
	case paymentd.InvoiceExpired:
		d.Notice = l.T("notice_expired", "time", l.Time(inv.ExpiresAt))
	case paymentd.InvoicePartiallyPaid:
		d.Notice = l.T("notice_partially_paid")
	}
	for _, tag := range []string{"en", "bn"} {
		other := pageLocales[tag]
		d.Languages = append(d.Languages, languageLink{Tag: tag, Name: other.Name, Current: other == l,
			Href: "/pay/" + inv.ID + "?lang=" + tag})
	}
	d.Version = pageVersion(d, inv)
	d.policy = pagePolicy{formOrigin: Origin(inv.CallbackURL), logoOrigin: d.Brand.LogoOrigin,
		script: true, connect: d.Refresh}
	if d.Brand.Accent != "" {
		d.Style = template.CSS(brandCSS(d.Brand))
		d.policy.style = cspHash(string(d.Style))
	}
	return d, nil
}

// pageVersion identifies what the live part of the page shows, so that the
// page's script replaces it only when something changed (and a keyboard
// user's focus is not taken away every refresh).
func pageVersion(d *pageData, inv *store.Invoice) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%d|%d|%s|%s|%d", d.State, inv.Status, inv.AmountPaid, inv.Amount, d.Error, d.Notice, len(inv.Receipts))
	for _, rc := range inv.Receipts {
		fmt.Fprintf(h, "|%s:%d:%d:%t", rc.TxnID, rc.Amount, rc.Confirmations, rc.Counted)
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// brandCSS sets the page's accent colour: the Pay button's background with
// whichever text colour contrasts more, and links and focus rings where the
// colour itself has AA contrast on white.
func brandCSS(b brandView) string {
	link := ""
	if contrastRatio(b.Accent, "#ffffff") >= 4.5 {
		link = "--link:" + b.Accent + ";"
	}
	return ".branded{--accent:" + b.Accent + ";--accent-text:" + b.AccentText + ";" + link + "}"
}

// langQuery keeps an explicit ?lang= on the page's own form posts.
func langQuery(r *http.Request) string {
	if _, ok := pageLocales[strings.ToLower(r.URL.Query().Get("lang"))]; ok {
		return "?lang=" + url.QueryEscape(strings.ToLower(r.URL.Query().Get("lang")))
	}
	return ""
}

// renderInvoice shows the invoice's page with an optional error, given as a
// catalogue key.
func (p *Pages) renderInvoice(w http.ResponseWriter, r *http.Request, inv *store.Invoice, code int, errKey string) {
	d, err := p.pageFor(r, inv, errKey)
	if err != nil {
		p.Failure(w, r, err)
		return
	}
	p.renderPage(w, r, code, "invoice.html", d, d.policy)
}

// NotFound shows the page for an invoice that is not here, in English
// (notFoundFor speaks the request's language).
func (p *Pages) NotFound(w http.ResponseWriter) {
	p.renderMessage(w, nil, http.StatusNotFound, "notfound")
}

func (p *Pages) notFoundFor(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/pay/")
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost && rest != "" && !strings.Contains(rest, "/") {
		// A page's own address with a method it does not take (PUT,
		// DELETE, …): saying there is no invoice there would be false.
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "Method not allowed: a payment page takes GET and POST.", http.StatusMethodNotAllowed)
		return
	}
	p.renderMessage(w, r, http.StatusNotFound, "notfound")
}

func (p *Pages) Failure(w http.ResponseWriter, r *http.Request, err error) {
	p.log.ErrorContext(r.Context(), "payment page", "path", r.URL.Path, "error", err.Error())
	p.renderMessage(w, r, http.StatusInternalServerError, "failure")
}

// renderMessage shows a page of one message: kind names its catalogue keys
// (kind_title, kind_message) and is its data-state.
func (p *Pages) renderMessage(w http.ResponseWriter, r *http.Request, code int, kind string) {
	l := pickLocale(r)
	p.renderPage(w, r, code, "message.html", struct {
		L                     *pageLocale
		State, Title, Message string
	}{l, kind, l.T(kind + "_title"), l.T(kind + "_message")}, pagePolicy{})
}

// pagePolicy is what a page's content security policy allows beyond
// default-src 'none' and its own stylesheet.
type pagePolicy struct {
	formOrigin string // the callback's origin: the form's redirect goes there
	logoOrigin string // the merchant's logo, the only image from elsewhere
	style      string // hash of the inline brand style, if any
	script     bool   // the page's script, by hash
	connect    bool   // the script's refresh fetches the page itself
}

func (p pagePolicy) String() string {
	var b strings.Builder
	b.WriteString("default-src 'none'; style-src 'self'")
	if p.style != "" {
		b.WriteString(" " + p.style)
	}
	b.WriteString("; img-src 'self'")
	if p.logoOrigin != "" {
		b.WriteString(" " + p.logoOrigin)
	}
	if p.script {
		b.WriteString("; script-src " + pageScriptHash)
	}
	if p.connect {
		b.WriteString("; connect-src 'self'")
	}
	b.WriteString("; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
	if p.formOrigin != "" {
		b.WriteString(" " + p.formOrigin)
	}
	return b.String()
}

// renderPage renders a template fully before writing anything, with the
// headers that keep the page from being framed, cached, or made to load or
// run anything but its own stylesheet, script and the merchant's logo. r
// (nil for a page shown outside a request) gives a failure's log line the
// request id.
func (p *Pages) renderPage(w http.ResponseWriter, r *http.Request, code int, name string, data any, policy pagePolicy) {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		ctx := context.Background()
		if r != nil {
			ctx = r.Context()
		}
		p.log.ErrorContext(ctx, "payment page template", "template", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", policy.String())
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept-Language") // the language is chosen from it
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
