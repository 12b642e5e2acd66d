// Package aspayds is the adapter for aspayds (payment.aspayds.net), a hosted
// invoice and payout API, following its document
// (../shared/provider-docs/aspayds.txt):
//
//   - base URL https://payment.aspayds.net/api; every call carries the
//     x-api-key and x-api-secret headers;
//   - invoices: POST /payment/create {amount, customer_name (≤255),
//     transaction_reference (≤20, unique), callback_url} → {status:
//     success, invoice_id, payment_url}; GET /payment/{id} by invoice id or
//     transaction reference → {invoice_id, status: paid|…, amount_paid,
//     paid_at}; POST /payment/batch/status {ids};
//   - payouts: GET /payout/methods; POST /payout/request {payout_method_id,
//     amount, recipient_name, recipient_account, transaction_reference
//     (≤50), description, callback_url} → 201 {payout_id, amount, fee,
//     total_amount, status: pending}; GET /payout/{id} by payout id or
//     reference; POST /payout/batch/status {ids}; statuses pending,
//     processing, completed, rejected, cancelled;
//   - webhooks: POST with X-Webhook-Event and X-Webhook-Timestamp (Unix
//     seconds) and {event, timestamp, data}; events payment.completed and
//     payout.completed|processing|rejected|cancelled. They carry no
//     signature: ParseWebhook checks the timestamp, and the document's rule
//     is to confirm every event with GET /payment/{id} or /payout/{id}
//     before acting (ConfirmWebhook does that).
//
// The field limits are checked before any call, with errors naming the
// parameter. The transaction_reference, unique per store, is what aspayds
// deduplicates on, so creating calls are retried with the same reference
// after an ambiguous failure.
//
// Assumptions where the document is silent, also listed in
// docs/providers.md:
//   - Amounts are numbers in major units of the store's currency (the
//     examples: amount 100, webhook amount 100.00, a bKash method with
//     min_amount 100 in BDT); they are converted exactly, never through
//     floats. The store's currency is configured (default BDT); other
//     currencies are refused before any call. The document calls amounts
//     "Numeric" and writes them as JSON numbers (or numeric strings); JSON
//     numbers may be in exponent form (1e2, 1.0E+2), which is read exactly
//     too. A negative, missing or null amount in an answer is malformed,
//     never money.
//   - Errors are answered as {"status":"error","message":…,"errors":{field:
//     [msg]}} with 4xx statuses (the Laravel convention the PHP example
//     suggests); 401/403 mean the key pair was refused; 402 a decline.
//   - A payment that has received part of its amount reports status
//     pending with amount_paid > 0: paymentd calls it partially_paid.
//     Status words other than the documented paid and pending map as:
//     completed|success → paid, expired → expired, cancelled|canceled|
//     cancel|failed → canceled.
//   - The create-payout answer repeats the key "status" ("success", then
//     "pending"); the last one, the payout's status, is the one read.
//   - Webhooks have no event id: an event's id is its event type, object id
//     and timestamp, which is what a retried delivery repeats.
package aspayds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/paymentd/paymentd/providers"
)

// Name is the provider's name in configuration.
const Name = "aspayds"

// DefaultBaseURL is the documented base URL.
const DefaultBaseURL = "https://payment.aspayds.net/api"

// Field limits from the document.
const (
	MaxCustomerName     = 255
	MaxInvoiceReference = 20
	MaxPayoutReference  = 50
	// MaxBatchIDs bounds the ids of one batch status call.
	MaxBatchIDs = 100
)

// DefaultWebhookTolerance bounds how far a webhook's timestamp may be from
// now, either way.
const DefaultWebhookTolerance = 5 * time.Minute

const (
	defaultCurrency        = "BDT"
	webhookEventHeader     = "X-Webhook-Event"
	webhookTimestampHeader = "X-Webhook-Timestamp"
	paymentCompleted       = "payment.completed"
	payoutEventPrefix      = "payout."
	invoiceOpen            = "open"
	invoicePaid            = "paid"
	invoicePartlyPaid      = "partially_paid"
)

// Options configure a Client.
type Options struct {
	Name      string // connection name, default "aspayds"
	BaseURL   string // default DefaultBaseURL
	APIKey    string // x-api-key
	APISecret string // x-api-secret
	// Currency is the store's currency (default BDT).
	Currency string
	// InvoiceCallbackURL, if set, is sent as every invoice's callback_url
	// instead of the caller's (e.g. a paymentd URL that records the
	// redirect and forwards the customer).
	InvoiceCallbackURL string
	// PayoutCallbackURL, if set, is sent as every payout's callback_url:
	// paymentd's inbound webhook URL for this connection.
	PayoutCallbackURL string
	// WebhookTolerance bounds how far a webhook's timestamp may be from now,
	// either way (default 5 minutes).
	WebhookTolerance time.Duration
	HTTP             providers.HTTPOptions
}

// Client talks to aspayds.
type Client struct {
	name, key, secret string
	currency          string
	exp               int
	invoiceCallback   string
	payoutCallback    string
	tolerance         time.Duration
	up                *providers.Upstream
}

var (
	_ providers.Provider      = (*Client)(nil)
	_ providers.Invoices      = (*Client)(nil)
	_ providers.Payouts       = (*Client)(nil)
	_ providers.WebhookParser = (*Client)(nil)
	_ providers.StatusChecker = (*Client)(nil)

	_ providers.InvoiceBatchGetter = (*Client)(nil)
	_ providers.PayoutBatchGetter  = (*Client)(nil)
)

// New returns a Client. Errors never contain the credentials.
func New(o Options) (*Client, error) {
	if o.APIKey == "" || o.APISecret == "" {
		return nil, errors.New("aspayds: both the API key and the API secret are required")
	}
	if o.Name == "" {
		o.Name = Name
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	if o.Currency == "" {
		o.Currency = defaultCurrency
	}
	o.Currency = strings.ToUpper(o.Currency)
	exp, ok := providers.CurrencyExponent(o.Currency)
	if !ok {
		return nil, fmt.Errorf("aspayds: unknown currency %q", o.Currency)
	}
	if o.WebhookTolerance <= 0 {
		o.WebhookTolerance = DefaultWebhookTolerance
	}
	return &Client{name: o.Name, key: o.APIKey, secret: o.APISecret, currency: o.Currency, exp: exp,
		invoiceCallback: o.InvoiceCallbackURL, payoutCallback: o.PayoutCallbackURL, tolerance: o.WebhookTolerance,
		up: providers.NewUpstream(o.Name, o.BaseURL, o.HTTP)}, nil
}

// Name returns the connection's name.
func (c *Client) Name() string { return c.name }

// Currency returns the store's currency.
func (c *Client) Currency() string { return c.currency }

// decimal is an amount as aspayds writes it: a JSON number or string.
type decimal struct {
	raw string
	set bool
}

func (d *decimal) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		d.raw, d.set = s, true
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	d.raw, d.set = string(n), true
	return nil
}

// minor converts the amount to minor units of the store's currency.
func (c *Client) minor(d decimal) (int64, bool) {
	if !d.set {
		return 0, false
	}
	return parseAmount(d.raw, c.exp)
}

// amountForm is an amount in an answer: a non-negative JSON number (as a
// number or a numeric string), which JSON allows in exponent form.
var amountForm = regexp.MustCompile(`^([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]{1,3}))?$`)

// parseAmount converts a non-negative amount in major units to minor units
// with exp digits, exactly: plain decimals (100, 100.50) and exponent forms
// (1e2, 1.0E+2) alike, never through a float. Negative amounts, more
// digits than the currency has, and values beyond int64 are refused.
func parseAmount(raw string, exp int) (int64, bool) {
	m := amountForm.FindStringSubmatch(raw)
	if m == nil {
		return 0, false
	}
	whole, frac := m[1], m[2]
	if m[3] != "" {
		e, err := strconv.Atoi(m[3])
		if err != nil || e > 30 || e < -30 {
			return 0, false
		}
		digits := whole + frac
		point := len(whole) + e // the decimal point's place in digits
		switch {
		case point <= 0:
			whole, frac = "0", strings.Repeat("0", -point)+digits
		case point >= len(digits):
			whole, frac = digits+strings.Repeat("0", point-len(digits)), ""
		default:
			whole, frac = digits[:point], digits[point:]
		}
	}
	plain := whole
	if frac != "" {
		plain += "." + frac
	}
	v, err := providers.ParseDecimal(plain, exp)
	return v, err == nil && v >= 0
}

// rawAmount quotes an answer's amount for a message, or says it was missing.
func rawAmount(d decimal) string {
	if !d.set {
		return "missing or null"
	}
	return strconv.Quote(d.raw)
}

// number writes minor units as the JSON number aspayds expects.
func (c *Client) number(v int64) json.Number {
	return json.Number(providers.FormatDecimalTrim(v, c.exp, 0))
}

func (c *Client) call(ctx context.Context, method, path string, body any, out any) (*providers.Response, error) {
	call := providers.Call{Method: method, Path: path,
		Header: http.Header{"x-api-key": {c.key}, "x-api-secret": {c.secret}},
		// Reads, and creations keyed by a transaction_reference aspayds
		// keeps unique, are safe to send again.
		Replayable: true, Mutating: method != http.MethodGet}
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		call.Body = raw
	}
	resp, err := c.up.Do(ctx, call)
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return resp, c.refusal(resp, call.Mutating)
	}
	var env struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if json.Unmarshal(resp.Body, out) != nil || json.Unmarshal(resp.Body, &env) != nil {
		return resp, providers.AnswerError(c.name, call.Mutating, "provider_malformed_answer",
			"answered HTTP %d to %s %s with a body that is not the documented JSON", resp.Status, method, path)
	}
	if env.Status == "error" || env.Status == "failed" {
		return resp, &providers.Error{Kind: providers.InvalidRequest, Code: "provider_refused", Message: "aspayds: " + env.Message}
	}
	return resp, nil
}

func (c *Client) refusal(resp *providers.Response, mutating bool) error {
	if resp.AfterAmbiguous && mutating {
		return providers.RefusalAfterAmbiguous(c.name, resp.Status)
	}
	if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
		return providers.AuthError(c.name, resp.Status)
	}
	if resp.Status < 400 {
		return providers.AnswerError(c.name, mutating, "provider_unexpected_answer", "answered HTTP %d, which the API does not use", resp.Status)
	}
	var e struct {
		Message string              `json:"message"`
		Errors  map[string][]string `json:"errors"`
	}
	_ = json.Unmarshal(resp.Body, &e)
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("aspayds refused the request with HTTP %d.", resp.Status)
	}
	param := ""
	if len(e.Errors) > 0 {
		keys := make([]string, 0, len(e.Errors))
		for k := range e.Errors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		param = keys[0]
		if len(e.Errors[param]) > 0 {
			msg += " " + e.Errors[param][0]
		}
	}
	switch {
	case resp.Status == http.StatusPaymentRequired:
		return &providers.Error{Kind: providers.Declined, Code: "provider_declined", Message: "aspayds: " + msg}
	case resp.Status == http.StatusNotFound:
		return &providers.Error{Kind: providers.InvalidRequest, Code: "resource_missing", Message: "aspayds: " + msg}
	case resp.Status == http.StatusConflict || strings.Contains(strings.ToLower(msg), "already"):
		return &providers.Error{Kind: providers.InvalidRequest, Code: "duplicate_transaction_reference",
			Param: "transaction_reference", Message: "aspayds: " + msg}
	}
	return &providers.Error{Kind: providers.InvalidRequest, Code: "parameter_invalid", Param: param, Message: "aspayds: " + msg}
}

func invalid(param, code, format string, args ...any) error {
	return &providers.Error{Kind: providers.InvalidRequest, Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

func (c *Client) checkCurrency(code string) error {
	if !strings.EqualFold(code, c.currency) {
		return invalid("currency", "currency_not_supported",
			"This aspayds store is in %s; use currency %s, or route %s to another provider.", c.currency, c.currency, strings.ToUpper(code))
	}
	return nil
}

// checkAmount refuses, before any call, an amount aspayds cannot be sent:
// zero or negative (the document's amounts are positive numbers).
func (c *Client) checkAmount(v int64) error {
	if v <= 0 {
		return invalid("amount", "amount_invalid",
			"aspayds takes positive amounts; send amount as a positive whole number of minor units of %s (got %d).", c.currency, v)
	}
	return nil
}

// CreateInvoice creates a hosted invoice. The caller's transaction
// reference is aspayds' transaction_reference, so it must fit in 20
// characters; the customer's name is required and fits in 255.
func (c *Client) CreateInvoice(ctx context.Context, req providers.InvoiceRequest) (providers.InvoiceState, error) {
	if err := c.checkCurrency(req.Currency); err != nil {
		return providers.InvoiceState{}, err
	}
	if req.Network != "" {
		// POST /payment/create has no network field: the invoice would be
		// an ordinary store-currency invoice, not one on that network.
		return providers.InvoiceState{}, invalid("network", "network_not_supported",
			"aspayds invoices are paid in %s through its hosted payment page and take no network; omit network %q, or route crypto invoices to a crypto provider.",
			c.currency, req.Network)
	}
	if err := c.checkAmount(req.Amount); err != nil {
		return providers.InvoiceState{}, err
	}
	callback := req.CallbackURL
	if c.invoiceCallback != "" {
		callback = c.invoiceCallback
	}
	switch n := utf8.RuneCountInString(req.CustomerName); {
	case strings.TrimSpace(req.CustomerName) == "":
		return providers.InvoiceState{}, invalid("customer.name", "parameter_missing",
			"aspayds requires the customer's full name; set customer.name.")
	case n > MaxCustomerName:
		return providers.InvoiceState{}, invalid("customer.name", "string_too_long",
			"aspayds accepts customer names of at most %d characters; this one has %d.", MaxCustomerName, n)
	}
	switch n := utf8.RuneCountInString(req.Reference); {
	case req.Reference == "":
		return providers.InvoiceState{}, invalid("transaction_reference", "parameter_missing",
			"aspayds requires a transaction_reference.")
	case n > MaxInvoiceReference:
		return providers.InvoiceState{}, invalid("transaction_reference", "string_too_long",
			"aspayds accepts invoice transaction references of at most %d characters; this one has %d. Use a shorter transaction_reference for invoices in %s.",
			MaxInvoiceReference, n, c.currency)
	}
	if callback == "" {
		return providers.InvoiceState{}, invalid("callback_url", "parameter_missing",
			"aspayds requires a callback_url to send the customer back to.")
	}
	body := map[string]any{"amount": c.number(req.Amount), "customer_name": req.CustomerName,
		"transaction_reference": req.Reference, "callback_url": callback}
	var out struct {
		Status     string  `json:"status"`
		InvoiceID  string  `json:"invoice_id"`
		PaymentURL string  `json:"payment_url"`
		Amount     decimal `json:"amount"`
		Currency   string  `json:"currency"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/payment/create", body, &out); err != nil {
		return providers.InvoiceState{}, err
	}
	if out.InvoiceID == "" || out.PaymentURL == "" {
		return providers.InvoiceState{}, providers.AnswerError(c.name, true, "provider_malformed_answer",
			"answered the invoice without an invoice_id or payment_url")
	}
	// The documented answer carries no amount; if it ever does, it must match.
	if v, ok := c.minor(out.Amount); (out.Amount.set && (!ok || v != req.Amount)) ||
		(out.Currency != "" && !strings.EqualFold(out.Currency, c.currency)) {
		return providers.InvoiceState{}, providers.AnswerError(c.name, true, "provider_amount_mismatch",
			"answered invoice %s with amount %s %s for a request of %s %s", out.InvoiceID, out.Amount.raw, out.Currency,
			providers.FormatDecimal(req.Amount, c.exp), c.currency)
	}
	return providers.InvoiceState{Reference: out.InvoiceID, PaymentURL: out.PaymentURL, Status: invoiceOpen,
		Amount: req.Amount, Currency: c.currency, ExpiresAt: req.ExpiresAt}, nil
}

type invoiceAnswer struct {
	InvoiceID            string  `json:"invoice_id"`
	TransactionReference string  `json:"transaction_reference"`
	Status               string  `json:"status"`
	Amount               decimal `json:"amount"`
	AmountPaid           decimal `json:"amount_paid"`
	PaidAt               string  `json:"paid_at"`
}

// invoiceStatus maps aspayds' payment status words onto paymentd's.
func invoiceStatus(word string, amount, paid int64) string {
	switch strings.ToLower(word) {
	case "paid", "completed", "success":
		if amount > 0 && paid < amount {
			return invoicePartlyPaid
		}
		return invoicePaid
	case "expired":
		return "expired"
	case "cancelled", "canceled", "cancel", "failed":
		return "canceled"
	}
	if paid > 0 {
		return invoicePartlyPaid
	}
	return invoiceOpen
}

func (c *Client) invoiceState(a invoiceAnswer) (providers.InvoiceState, error) {
	// amount_paid is in every documented invoice answer: a missing, null
	// or negative one is a malformed answer, never an amount of money.
	paid, ok := c.minor(a.AmountPaid)
	if !ok {
		return providers.InvoiceState{}, providers.AnswerError(c.name, false, "provider_malformed_answer",
			"answered invoice %s with amount_paid %s, not a non-negative amount in %s", a.InvoiceID, rawAmount(a.AmountPaid), c.currency)
	}
	amount, ok := c.minor(a.Amount)
	if a.Amount.set && !ok {
		return providers.InvoiceState{}, providers.AnswerError(c.name, false, "provider_malformed_answer",
			"answered invoice %s with amount %s, not a non-negative amount in %s", a.InvoiceID, rawAmount(a.Amount), c.currency)
	}
	// aspayds reports only the total paid, no transfers: Receipts stay
	// empty and paymentd records each increase of AmountPaid as one.
	return providers.InvoiceState{Reference: a.InvoiceID, Status: invoiceStatus(a.Status, amount, paid), Amount: amount,
		Currency: c.currency, AmountPaid: paid}, nil
}

// GetInvoice reads an invoice by aspayds' invoice id or the transaction
// reference, as the document says to do before trusting any callback.
func (c *Client) GetInvoice(ctx context.Context, reference string) (providers.InvoiceState, error) {
	var a invoiceAnswer
	if _, err := c.call(ctx, http.MethodGet, "/payment/"+url.PathEscape(reference), nil, &a); err != nil {
		return providers.InvoiceState{}, err
	}
	if a.InvoiceID == "" {
		return providers.InvoiceState{}, providers.AnswerError(c.name, false, "provider_malformed_answer",
			"answered GET /payment/%s without an invoice_id", reference)
	}
	return c.invoiceState(a)
}

// BatchInvoices reads up to 100 invoices by invoice id or transaction
// reference in one call; ids aspayds does not know come back in notFound.
func (c *Client) BatchInvoices(ctx context.Context, ids []string) (found []providers.InvoiceState, notFound []string, err error) {
	if len(ids) == 0 || len(ids) > MaxBatchIDs {
		return nil, nil, invalid("ids", "parameter_invalid", "Give between 1 and %d ids.", MaxBatchIDs)
	}
	var out struct {
		Invoices    []invoiceAnswer `json:"invoices"`
		NotFoundIDs []string        `json:"not_found_ids"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/payment/batch/status", map[string]any{"ids": ids}, &out); err != nil {
		return nil, nil, err
	}
	for _, a := range out.Invoices {
		if !a.Amount.set { // the documented batch answer carries each invoice's amount
			return nil, nil, providers.AnswerError(c.name, false, "provider_malformed_answer",
				"answered invoice %s in a batch status without its amount", a.InvoiceID)
		}
		st, err := c.invoiceState(a)
		if err != nil {
			return nil, nil, err
		}
		found = append(found, st)
	}
	return found, out.NotFoundIDs, nil
}

// PayoutMethods lists the payout methods configured in the store.
func (c *Client) PayoutMethods(ctx context.Context) ([]providers.PayoutMethod, error) {
	var out struct {
		Data []struct {
			ID          json.Number `json:"id"`
			Name        string      `json:"name"`
			Type        string      `json:"type"`
			AccountType string      `json:"account_type"`
			Currency    string      `json:"currency"`
			MinAmount   decimal     `json:"min_amount"`
			MaxAmount   decimal     `json:"max_amount"`
		} `json:"data"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/payout/methods", nil, &out); err != nil {
		return nil, err
	}
	methods := make([]providers.PayoutMethod, 0, len(out.Data))
	for _, d := range out.Data {
		cur := strings.ToUpper(d.Currency)
		if cur == "" {
			cur = c.currency
		}
		exp, ok := providers.CurrencyExponent(cur)
		if !ok {
			continue // a currency paymentd cannot account for
		}
		lo, ok1 := parseAmount(d.MinAmount.raw, exp)
		hi, ok2 := parseAmount(d.MaxAmount.raw, exp)
		if d.ID == "" || !d.MinAmount.set || !d.MaxAmount.set || !ok1 || !ok2 || hi < lo {
			return nil, providers.AnswerError(c.name, false, "provider_malformed_answer", "answered payout method %q without a usable id or limits", d.Name)
		}
		m := providers.PayoutMethod{ID: d.ID.String(), Name: d.Name, Type: d.Type, Currency: cur, MinAmount: lo, MaxAmount: hi}
		switch d.Type {
		case "mobile_banking":
			m.AccountFormat = "mobile wallet number, e.g. 01712345678"
		case "bank", "bank_transfer":
			m.Type, m.AccountFormat = "bank_transfer", "bank account number"
		case "crypto":
			m.AccountFormat = "wallet address"
		}
		if d.AccountType != "" && m.AccountFormat != "" {
			m.AccountFormat += " (" + d.AccountType + " account)"
		}
		methods = append(methods, m)
	}
	return methods, nil
}

type payoutAnswer struct {
	PayoutID             string  `json:"payout_id"`
	TransactionReference string  `json:"transaction_reference"`
	Status               string  `json:"status"`
	Amount               decimal `json:"amount"`
	Fee                  decimal `json:"fee"`
	TotalAmount          decimal `json:"total_amount"`
}

func payoutStatus(word string) (string, bool) {
	switch w := strings.ToLower(word); w {
	case "pending", "processing", "completed", "rejected", "cancelled":
		return w, true
	case "canceled":
		return "cancelled", true
	case "success", "":
		return "pending", true // only the envelope's word: the payout was just created
	}
	return "", false
}

func (c *Client) payoutState(a payoutAnswer, mutating bool) (providers.PayoutState, error) {
	status, ok := payoutStatus(a.Status)
	if a.PayoutID == "" || !ok {
		return providers.PayoutState{}, providers.AnswerError(c.name, mutating, "provider_malformed_answer",
			"answered a payout without a payout_id or with status %q", a.Status)
	}
	st := providers.PayoutState{Reference: a.PayoutID, Status: status}
	malformed := func(format string, args ...any) (providers.PayoutState, error) {
		return providers.PayoutState{}, providers.AnswerError(c.name, mutating, "provider_malformed_answer",
			"answered payout %s with %s", a.PayoutID, fmt.Sprintf(format, args...))
	}
	for _, f := range []struct {
		d   decimal
		dst *int64
	}{{a.Amount, &st.Amount}, {a.Fee, &st.Fee}, {a.TotalAmount, &st.TotalAmount}} {
		if !f.d.set {
			continue
		}
		v, ok := c.minor(f.d)
		if !ok {
			return malformed("the amount %q", f.d.raw)
		}
		*f.dst = v
	}
	// aspayds' fee is known only from its payout answers (its payout
	// methods carry none): the fee and total_amount are reported when the
	// answer gives them for its amount, one derived from the other if only
	// one is given, and must add up (checked: no overflow). Without them
	// (the batch status answer) both stay 0: not said.
	switch {
	case !a.Amount.set || (!a.Fee.set && !a.TotalAmount.set):
		st.Fee, st.TotalAmount = 0, 0
	case a.Fee.set && st.Fee > math.MaxInt64-st.Amount:
		return malformed("amount %q and fee %q, whose sum overflows", a.Amount.raw, a.Fee.raw)
	case a.Fee.set && a.TotalAmount.set && st.TotalAmount != st.Amount+st.Fee:
		return malformed("total_amount %q, not amount %q plus fee %q", a.TotalAmount.raw, a.Amount.raw, a.Fee.raw)
	case a.Fee.set:
		st.TotalAmount = st.Amount + st.Fee
	case st.TotalAmount < st.Amount:
		return malformed("total_amount %q below its amount %q", a.TotalAmount.raw, a.Amount.raw)
	default:
		st.Fee = st.TotalAmount - st.Amount
	}
	return st, nil
}

// CreatePayout requests a payout. aspayds' transaction_reference, which it
// keeps unique and finds payouts by, is paymentd's payout id (the request's
// IdempotencyKey, po_…, at most 50 characters): unique per payout, unlike
// the caller's reference, which is unique only per paymentd account and
// mode. The caller's reference goes in the description (the document's
// optional note), ahead of the caller's own description.
func (c *Client) CreatePayout(ctx context.Context, req providers.PayoutRequest) (providers.PayoutState, error) {
	if err := c.checkCurrency(req.Currency); err != nil {
		return providers.PayoutState{}, err
	}
	if err := c.checkAmount(req.Amount); err != nil {
		return providers.PayoutState{}, err
	}
	methodID, err := strconv.ParseInt(req.MethodID, 10, 64)
	if err != nil || methodID <= 0 {
		return providers.PayoutState{}, invalid("payout_method_id", "parameter_invalid",
			"aspayds payout methods have numeric ids (from GET /payout/methods); %q is not one.", req.MethodID)
	}
	switch n := utf8.RuneCountInString(req.IdempotencyKey); {
	case req.IdempotencyKey == "":
		return providers.PayoutState{}, invalid("transaction_reference", "parameter_missing",
			"aspayds requires a transaction_reference: paymentd's payout id, which this request lacks.")
	case n > MaxPayoutReference:
		return providers.PayoutState{}, invalid("transaction_reference", "string_too_long",
			"aspayds accepts payout transaction references of at most %d characters; the payout id %q has %d.", MaxPayoutReference, req.IdempotencyKey, n)
	}
	if strings.TrimSpace(req.RecipientName) == "" {
		return providers.PayoutState{}, invalid("recipient_name", "parameter_missing", "aspayds requires the recipient's full name.")
	}
	if strings.TrimSpace(req.RecipientAccount) == "" {
		return providers.PayoutState{}, invalid("recipient_account", "parameter_missing", "aspayds requires the recipient's account or mobile number.")
	}
	body := map[string]any{"payout_method_id": methodID, "amount": c.number(req.Amount), "recipient_name": req.RecipientName,
		"recipient_account": req.RecipientAccount, "transaction_reference": req.IdempotencyKey}
	if desc := req.DescriptionWithReference(); desc != "" {
		body["description"] = desc
	}
	if c.payoutCallback != "" {
		body["callback_url"] = c.payoutCallback
	}
	var a payoutAnswer
	resp, err := c.call(ctx, http.MethodPost, "/payout/request", body, &a)
	if err != nil {
		if resp != nil && resp.AfterAmbiguous {
			// An earlier attempt may have created it: aspayds finds
			// payouts by our transaction_reference.
			return c.recoverPayout(ctx, req)
		}
		return providers.PayoutState{}, err
	}
	if a.TransactionReference != "" && a.TransactionReference != req.IdempotencyKey {
		return providers.PayoutState{}, providers.AnswerError(c.name, true, "provider_reference_mismatch",
			"answered payout %s for transaction_reference %q, not %q", a.PayoutID, a.TransactionReference, req.IdempotencyKey)
	}
	return c.checkPayout(a, req)
}

// PayoutReference is the transaction_reference a payout is sent under and
// found by: paymentd's payout id, never the caller's reference.
func (c *Client) PayoutReference(payoutID, _ string) string { return payoutID }

func (c *Client) checkPayout(a payoutAnswer, req providers.PayoutRequest) (providers.PayoutState, error) {
	st, err := c.payoutState(a, true)
	if err != nil {
		return st, err
	}
	if !a.Amount.set || st.Amount != req.Amount {
		return providers.PayoutState{}, providers.AnswerError(c.name, true, "provider_amount_mismatch",
			"answered payout %s with amount %q for a request of %s %s; it is not taken as accepted",
			st.Reference, a.Amount.raw, providers.FormatDecimal(req.Amount, c.exp), c.currency)
	}
	return st, nil
}

// recoverPayout reads back a payout whose creation may have been made by an
// earlier, unanswered attempt, by the transaction_reference sent (our
// payout id). GET /payout/{id} takes a payout id OR a transaction
// reference, so the answer is ours only when it names our transaction
// reference and recipient; anything else leaves the outcome unknown.
func (c *Client) recoverPayout(ctx context.Context, req providers.PayoutRequest) (providers.PayoutState, error) {
	var a struct {
		payoutAnswer
		RecipientName    string `json:"recipient_name"`
		RecipientAccount string `json:"recipient_account"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/payout/"+url.PathEscape(req.IdempotencyKey), nil, &a); err != nil {
		return providers.PayoutState{}, providers.RefusalAfterAmbiguous(c.name, 0)
	}
	if a.TransactionReference != req.IdempotencyKey || a.RecipientAccount != req.RecipientAccount ||
		(a.RecipientName != "" && a.RecipientName != req.RecipientName) {
		return providers.PayoutState{}, &providers.Error{Kind: providers.Unknown, Code: "provider_no_answer", Message: fmt.Sprintf(
			"%s refused a retry as a duplicate after an earlier attempt went unanswered, and the payout it holds under %q is another one (reference %q, recipient %q); the outcome is unknown and must be reconciled.",
			c.name, req.IdempotencyKey, a.TransactionReference, a.RecipientAccount)}
	}
	return c.checkPayout(a.payoutAnswer, req)
}

// GetPayout reads a payout by aspayds' payout id or the transaction
// reference paymentd sent (its payout id). {id} may be either, so the
// answer must be the payout of that id or of that transaction_reference;
// another payout is an error, not its state.
func (c *Client) GetPayout(ctx context.Context, reference string) (providers.PayoutState, error) {
	var a payoutAnswer
	if _, err := c.call(ctx, http.MethodGet, "/payout/"+url.PathEscape(reference), nil, &a); err != nil {
		return providers.PayoutState{}, err
	}
	if a.PayoutID != reference && a.TransactionReference != reference {
		return providers.PayoutState{}, providers.AnswerError(c.name, false, "provider_reference_mismatch",
			"answered GET /payout/%s with payout %q of transaction_reference %q", reference, a.PayoutID, a.TransactionReference)
	}
	return c.payoutState(a, false)
}

// BatchPayouts reads up to 100 payouts by id or transaction reference.
func (c *Client) BatchPayouts(ctx context.Context, ids []string) (found []providers.PayoutState, notFound []string, err error) {
	if len(ids) == 0 || len(ids) > MaxBatchIDs {
		return nil, nil, invalid("ids", "parameter_invalid", "Give between 1 and %d ids.", MaxBatchIDs)
	}
	var out struct {
		Payouts     []payoutAnswer `json:"payouts"`
		NotFoundIDs []string       `json:"not_found_ids"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/payout/batch/status", map[string]any{"ids": ids}, &out); err != nil {
		return nil, nil, err
	}
	for _, a := range out.Payouts {
		st, err := c.payoutState(a, false)
		if err != nil {
			return nil, nil, err
		}
		found = append(found, st)
	}
	return found, out.NotFoundIDs, nil
}

// ParseWebhook checks an aspayds webhook's timestamp (within the
// tolerance, either way) and that its header and body agree, and parses it.
// aspayds does not sign webhooks, so the event's status is a claim: confirm
// it with ConfirmWebhook (GET) before acting on it.
func (c *Client) ParseWebhook(header http.Header, body []byte, now time.Time) (providers.WebhookEvent, error) {
	reject := func(format string, args ...any) (providers.WebhookEvent, error) {
		return providers.WebhookEvent{}, fmt.Errorf("%w: aspayds: %s", providers.ErrWebhookSignature, fmt.Sprintf(format, args...))
	}
	event := header.Get(webhookEventHeader)
	tsText := strings.TrimSpace(header.Get(webhookTimestampHeader))
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if event == "" || err != nil {
		return reject("the %s and a numeric %s header are required", webhookEventHeader, webhookTimestampHeader)
	}
	if ts > 1e12 { // milliseconds
		ts /= 1000
	}
	sent := time.Unix(ts, 0)
	if d := now.Sub(sent); d > c.tolerance || d < -c.tolerance {
		return reject("the webhook's timestamp %s is %v away from now; at most %v is accepted", sent.UTC().Format(time.RFC3339), d.Round(time.Second), c.tolerance)
	}
	var p struct {
		Event string `json:"event"`
		Data  struct {
			InvoiceID            string `json:"invoice_id"`
			PayoutID             string `json:"payout_id"`
			TransactionReference string `json:"transaction_reference"`
			Status               string `json:"status"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return providers.WebhookEvent{}, &providers.Error{Kind: providers.InvalidRequest, Code: "webhook_malformed", Message: "aspayds: the webhook body is not JSON"}
	}
	if p.Event != event {
		return reject("the %s header says %q but the body says %q", webhookEventHeader, event, p.Event)
	}
	ev := providers.WebhookEvent{Type: event, MerchantReference: p.Data.TransactionReference}
	switch {
	case event == paymentCompleted:
		ev.ObjectKind, ev.Reference, ev.Status = "invoice", p.Data.InvoiceID, invoicePaid
	case strings.HasPrefix(event, payoutEventPrefix):
		st, ok := payoutStatus(strings.TrimPrefix(event, payoutEventPrefix))
		if !ok || st == "pending" {
			return providers.WebhookEvent{}, &providers.Error{Kind: providers.InvalidRequest, Code: "webhook_event_unknown",
				Message: "aspayds: unknown webhook event " + event}
		}
		ev.ObjectKind, ev.Reference, ev.Status = "payout", p.Data.PayoutID, st
	default:
		return providers.WebhookEvent{}, &providers.Error{Kind: providers.InvalidRequest, Code: "webhook_event_unknown",
			Message: "aspayds: unknown webhook event " + event}
	}
	if ev.Reference == "" {
		return providers.WebhookEvent{}, &providers.Error{Kind: providers.InvalidRequest, Code: "webhook_malformed",
			Message: "aspayds: the webhook names no invoice_id or payout_id"}
	}
	ev.ID = event + ":" + ev.Reference + ":" + strconv.FormatInt(ts, 10)
	return ev, nil
}

// ConfirmWebhook asks aspayds for the current state of the webhook's object
// (GET /payment/{id} or /payout/{id}) and returns the event with that
// confirmed status, as the document requires before acting.
func (c *Client) ConfirmWebhook(ctx context.Context, ev providers.WebhookEvent) (providers.WebhookEvent, error) {
	switch ev.ObjectKind {
	case "invoice":
		st, err := c.GetInvoice(ctx, ev.Reference)
		if err != nil {
			return ev, err
		}
		ev.Status = st.Status
	case "payout":
		st, err := c.GetPayout(ctx, ev.Reference)
		if err != nil {
			return ev, err
		}
		ev.Status = st.Status
	default:
		return ev, fmt.Errorf("aspayds: cannot confirm a %q event", ev.ObjectKind)
	}
	return ev, nil
}

// CheckStatus lists the payout methods: an authenticated read that moves
// nothing (aspayds has no status endpoint).
func (c *Client) CheckStatus(ctx context.Context) error {
	_, err := c.PayoutMethods(ctx)
	return err
}

var _ providers.InvoiceFinder = (*Client)(nil)

// FindInvoice looks an invoice up by its transaction reference. GET
// /payment/{id} cannot be used: its {id} is an invoice id OR a transaction
// reference, and its answer carries neither the reference nor the amount,
// so a reference that is another invoice's id would find that invoice. The
// batch status call answers each invoice's transaction_reference and
// amount: only an invoice whose transaction_reference is req.Reference is
// taken, with its amount, so paymentd can refuse one of another amount.
// aspayds not knowing the reference means it has none; an answer about
// other invoices only is an error (it cannot be told whether ours exists).
// The answer carries no payment_url.
func (c *Client) FindInvoice(ctx context.Context, req providers.InvoiceRequest) (providers.InvoiceState, bool, error) {
	if req.Reference == "" {
		return providers.InvoiceState{}, false, invalid("transaction_reference", "parameter_missing", "aspayds requires a transaction_reference.")
	}
	var out struct {
		Invoices    []invoiceAnswer `json:"invoices"`
		NotFoundIDs []string        `json:"not_found_ids"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/payment/batch/status", map[string]any{"ids": []string{req.Reference}}, &out); err != nil {
		return providers.InvoiceState{}, false, err
	}
	var match []invoiceAnswer
	for _, a := range out.Invoices {
		if a.TransactionReference == req.Reference {
			match = append(match, a)
		}
	}
	switch {
	case len(match) == 0 && len(out.Invoices) == 0 && slices.Contains(out.NotFoundIDs, req.Reference):
		return providers.InvoiceState{}, false, nil
	case len(match) != 1:
		return providers.InvoiceState{}, false, providers.AnswerError(c.name, false, "provider_ambiguous_answer",
			"answered a lookup of transaction_reference %q with %d invoices of that reference (and %d others)",
			req.Reference, len(match), len(out.Invoices)-len(match))
	}
	a := match[0]
	if a.InvoiceID == "" || !a.Amount.set {
		return providers.InvoiceState{}, false, providers.AnswerError(c.name, false, "provider_malformed_answer",
			"answered a lookup of transaction_reference %q without an invoice_id or amount", req.Reference)
	}
	st, err := c.invoiceState(a)
	if err != nil {
		return providers.InvoiceState{}, false, err
	}
	if st.Amount == 0 && a.Amount.set {
		return providers.InvoiceState{}, false, providers.AnswerError(c.name, false, "provider_malformed_answer",
			"answered invoice %s with amount %q", a.InvoiceID, a.Amount.raw)
	}
	return st, true, nil
}
