// Package alppay is the adapter for alppay, a crypto payments API, following
// its "Create Payment" document (../shared/provider-docs/alppay.txt):
//
//   - POST https://api.alppay.io/v2/payment with headers Content-Type:
//     application/json, API-KEY and X-HMAC;
//   - body {amount: decimal string, asset: {short, network}, customer: {id
//     (integer), name, email}, clientId (persistent deposit address per
//     client), invoice (our reference), checkoutUrl};
//   - answer {id, transactions: [{txnId, receivedAmount, asset, date, …}],
//     amount, totalReceivedAmount, asset, addressTo, confirmsNeeded,
//     timeout, checkoutUrl, status: OPEN, invoice, paymentRedirectUrl,
//     createdAt, …}.
//
// paymentd maps an alppay payment onto a crypto invoice: payment_url is
// paymentRedirectUrl, the deposit address addressTo, confirmations_required
// confirmsNeeded, amount_paid totalReceivedAmount, and each transaction a
// receipt. Decimal strings are converted to minor units of the asset
// exactly (USDT and USDC have 6 decimals, BTC 8), never through floats; an
// answer with more decimals than the asset has is refused.
//
// Assumptions where the document is silent, also listed in
// docs/providers.md:
//   - X-HMAC is the lower-case hex HMAC-SHA256 of the raw request body,
//     keyed with the account's secret (the document says only "your HMAC
//     signature"); for a GET, of the empty body.
//   - The payment is read back with GET /v2/payment/{id} (configurable: the
//     document shows only creation). alppay sends no documented webhooks,
//     so paymentd learns of receipts by reading the payment.
//   - timeout is in seconds from createdAt (9000 = 2.5 hours).
//   - Status words besides the documented OPEN: PARTIALLY_PAID (also
//     PARTIAL, UNDERPAID), PAID (also COMPLETED, CONFIRMED, SUCCESS,
//     OVERPAID), EXPIRED (also TIMEOUT), CANCELED (also CANCELLED). An
//     invoice is paid only when alppay's status word says so: the
//     document's example answers status OPEN beside a received transaction
//     and confirmsNeeded 30, so money listed as received is not yet money
//     confirmed, whatever totalReceivedAmount says. While the word is not a
//     paid one, an invoice with money received is partially paid.
//   - Listed transactions are the ones counted in totalReceivedAmount. The
//     document gives a transaction no confirmations: a transaction's
//     confirmations are its own "confirmations" field when present, else
//     confirmsNeeded once the status word says alppay counted the money
//     (a paid or partially paid word), else 0: seen but not confirmed, as
//     under the document's OPEN (or EXPIRED, CANCELED, which do not say).
//     paymentd thus counts a transfer only when alppay says it is
//     confirmed. A totalReceivedAmount without listed transactions is
//     reported only under such a word. Under a partially paid word alppay
//     has not counted the whole amount, so when the listed transfers
//     together reach it some are unconfirmed, and none without its own
//     confirmations is taken as confirmed until alppay says more (a paid
//     word): paymentd may count less than alppay for a while, never more.
//     Limitation: below the amount, a transfer alppay lists unconfirmed
//     beside counted ones is taken as confirmed too; the document gives no
//     way to tell them apart.
//   - customer.id must be an integer: a numeric customer id is sent as is,
//     any other is sent as a stable 53-bit FNV-1a hash of it, and the id
//     itself goes in clientId so the deposit address stays the customer's.
//   - invoice carries paymentd's invoice id. alppay documents no
//     idempotency key, so creation is not retried after an ambiguous
//     failure, only after refusals.
//   - Errors are 4xx with a JSON {"message"} (or {"error"}); 402 would be a
//     decline.
package alppay

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/paymentd/paymentd/providers"
)

// Name is the provider's name in configuration.
const Name = "alppay"

// Defaults from the document (the GET path is an assumption).
const (
	DefaultBaseURL    = "https://api.alppay.io"
	DefaultCreatePath = "/v2/payment"
	DefaultGetPath    = "/v2/payment/{id}"
)

// Options configure a Client.
type Options struct {
	Name       string // connection name, default "alppay"
	BaseURL    string // default DefaultBaseURL
	APIKey     string // the API-KEY header
	Secret     string // the account secret X-HMAC is keyed with
	CreatePath string // default DefaultCreatePath
	GetPath    string // default DefaultGetPath; "{id}" is replaced
	HTTP       providers.HTTPOptions
}

// Client talks to alppay.
type Client struct {
	name, key           string
	secret              []byte
	createPath, getPath string
	up                  *providers.Upstream
}

var (
	_ providers.Provider = (*Client)(nil)
	_ providers.Invoices = (*Client)(nil)
)

// New returns a Client. Errors never contain the credentials.
func New(o Options) (*Client, error) {
	if o.APIKey == "" || o.Secret == "" {
		return nil, errors.New("alppay: both the API key and the HMAC secret are required")
	}
	if o.Name == "" {
		o.Name = Name
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	if o.CreatePath == "" {
		o.CreatePath = DefaultCreatePath
	}
	if o.GetPath == "" {
		o.GetPath = DefaultGetPath
	}
	return &Client{name: o.Name, key: o.APIKey, secret: []byte(o.Secret), createPath: o.CreatePath, getPath: o.GetPath,
		up: providers.NewUpstream(o.Name, o.BaseURL, o.HTTP)}, nil
}

// Name returns the connection's name.
func (c *Client) Name() string { return c.name }

// Sign returns the X-HMAC of a raw body: hex HMAC-SHA256 keyed with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

type asset struct {
	Short   string `json:"short"`
	Network string `json:"network"`
}

type transaction struct {
	TxnID          string `json:"txnId"`
	ReceivedAmount string `json:"receivedAmount"`
	Asset          asset  `json:"asset"`
	Date           string `json:"date"`
	Confirmations  *int   `json:"confirmations"`
}

type payment struct {
	ID                  string        `json:"id"`
	Transactions        []transaction `json:"transactions"`
	Amount              string        `json:"amount"`
	TotalReceivedAmount string        `json:"totalReceivedAmount"`
	Asset               asset         `json:"asset"`
	AddressTo           string        `json:"addressTo"`
	ConfirmsNeeded      int           `json:"confirmsNeeded"`
	Timeout             int64         `json:"timeout"`
	Status              string        `json:"status"`
	Invoice             string        `json:"invoice"`
	PaymentRedirectURL  string        `json:"paymentRedirectUrl"`
	CreatedAt           string        `json:"createdAt"`
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	mutating := method != http.MethodGet
	resp, err := c.up.Do(ctx, providers.Call{Method: method, Path: path, Body: body, Mutating: mutating, Replayable: !mutating,
		Header: http.Header{"API-KEY": {c.key}, "X-HMAC": {Sign(c.secret, body)}}})
	if err != nil {
		return err
	}
	if !resp.OK() {
		return c.refusal(resp, mutating)
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return providers.AnswerError(c.name, mutating, "provider_malformed_answer",
			"answered HTTP %d to %s %s with a body that is not the documented JSON", resp.Status, method, path)
	}
	return nil
}

func (c *Client) refusal(resp *providers.Response, mutating bool) error {
	if resp.AfterAmbiguous && mutating {
		return providers.RefusalAfterAmbiguous(c.name, resp.Status)
	}
	if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
		return providers.AuthError(c.name, resp.Status)
	}
	if resp.Status < 400 {
		return providers.AnswerError(c.name, mutating, "provider_unexpected_answer", "answered HTTP %d", resp.Status)
	}
	var e struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal(resp.Body, &e)
	msg := e.Message
	if msg == "" {
		msg = e.Error
	}
	if msg == "" {
		msg = fmt.Sprintf("alppay refused the request with HTTP %d.", resp.Status)
	}
	switch resp.Status {
	case http.StatusPaymentRequired:
		return &providers.Error{Kind: providers.Declined, Code: "provider_declined", Message: "alppay: " + msg}
	case http.StatusNotFound:
		return &providers.Error{Kind: providers.InvalidRequest, Code: "resource_missing", Message: "alppay: " + msg}
	}
	return &providers.Error{Kind: providers.InvalidRequest, Code: "parameter_invalid", Message: "alppay: " + msg}
}

// customerID turns paymentd's customer id into alppay's integer id.
func customerID(id, fallback string) int64 {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && n > 0 {
		return n
	}
	if id == "" {
		id = fallback
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return int64(h.Sum64() & (1<<53 - 1))
}

// CreateInvoice creates an alppay payment for a crypto invoice: the
// currency is the asset (USDT, USDC, BTC) and Network its chain (tron, …).
func (c *Client) CreateInvoice(ctx context.Context, req providers.InvoiceRequest) (providers.InvoiceState, error) {
	short := strings.ToUpper(req.Currency)
	exp, ok := providers.CurrencyExponent(short)
	if !ok || exp < 6 {
		return providers.InvoiceState{}, &providers.Error{Kind: providers.InvalidRequest, Code: "currency_not_supported", Param: "currency",
			Message: "alppay takes crypto assets (USDT, USDC, BTC); route " + short + " invoices to another provider."}
	}
	if req.Network == "" {
		return providers.InvoiceState{}, &providers.Error{Kind: providers.InvalidRequest, Code: "parameter_missing", Param: "network",
			Message: "alppay needs the asset's network, e.g. tron for USDT."}
	}
	customer := map[string]any{"id": customerID(req.CustomerID, req.IdempotencyKey)}
	if req.CustomerName != "" {
		customer["name"] = req.CustomerName
	}
	if req.CustomerEmail != "" {
		customer["email"] = req.CustomerEmail
	}
	body := map[string]any{"amount": providers.FormatDecimalTrim(req.Amount, exp, 2),
		"asset": asset{Short: short, Network: req.Network}, "customer": customer, "invoice": req.IdempotencyKey}
	if req.CustomerID != "" {
		body["clientId"] = req.CustomerID
	}
	if req.CallbackURL != "" {
		body["checkoutUrl"] = req.CallbackURL
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return providers.InvoiceState{}, err
	}
	var p payment
	if err := c.do(ctx, http.MethodPost, c.createPath, raw, &p); err != nil {
		return providers.InvoiceState{}, err
	}
	if p.ID == "" || p.PaymentRedirectURL == "" {
		return providers.InvoiceState{}, providers.AnswerError(c.name, true, "provider_malformed_answer", "answered a payment without an id or paymentRedirectUrl")
	}
	if !strings.EqualFold(p.Asset.Short, short) || !strings.EqualFold(p.Asset.Network, req.Network) {
		return providers.InvoiceState{}, providers.AnswerError(c.name, true, "provider_currency_mismatch",
			"answered payment %s in %s on %s for a request in %s on %s; it is not taken as created", p.ID, p.Asset.Short, p.Asset.Network, short, req.Network)
	}
	if amt, err := providers.ParseDecimal(p.Amount, exp); err != nil || amt != req.Amount {
		return providers.InvoiceState{}, providers.AnswerError(c.name, true, "provider_amount_mismatch",
			"answered payment %s for %q %s, not the %s asked", p.ID, p.Amount, short, providers.FormatDecimal(req.Amount, exp))
	}
	if p.Invoice != "" && p.Invoice != req.IdempotencyKey {
		return providers.InvoiceState{}, providers.AnswerError(c.name, true, "provider_reference_mismatch",
			"answered payment %s for invoice %q, not %q", p.ID, p.Invoice, req.IdempotencyKey)
	}
	return c.state(p, true)
}

// GetInvoice reads an alppay payment by its id.
func (c *Client) GetInvoice(ctx context.Context, reference string) (providers.InvoiceState, error) {
	var p payment
	if err := c.do(ctx, http.MethodGet, strings.ReplaceAll(c.getPath, "{id}", url.PathEscape(reference)), nil, &p); err != nil {
		return providers.InvoiceState{}, err
	}
	if p.ID != reference {
		return providers.InvoiceState{}, providers.AnswerError(c.name, false, "provider_malformed_answer",
			"answered a lookup of %s with payment %q", reference, p.ID)
	}
	return c.state(p, false)
}

// state maps an alppay payment onto an InvoiceState.
func (c *Client) state(p payment, mutating bool) (providers.InvoiceState, error) {
	short := strings.ToUpper(p.Asset.Short)
	exp, ok := providers.CurrencyExponent(short)
	bad := func(what, v string) (providers.InvoiceState, error) {
		return providers.InvoiceState{}, providers.AnswerError(c.name, mutating, "provider_malformed_answer",
			"answered payment %s with %s %q", p.ID, what, v)
	}
	if !ok {
		return bad("asset", p.Asset.Short)
	}
	amount, err := providers.ParseDecimal(p.Amount, exp)
	if err != nil || amount <= 0 {
		return bad("amount", p.Amount)
	}
	received := int64(0)
	if p.TotalReceivedAmount != "" {
		if received, err = providers.ParseDecimal(p.TotalReceivedAmount, exp); err != nil || received < 0 {
			return bad("totalReceivedAmount", p.TotalReceivedAmount)
		}
	}
	counted := countedWord(p.Status)
	st := providers.InvoiceState{Reference: p.ID, PaymentURL: p.PaymentRedirectURL, Status: status(p.Status, received),
		Amount: amount, Currency: short, AmountPaid: received, DepositAddress: p.AddressTo, ConfirmationsRequired: p.ConfirmsNeeded}
	if len(p.Transactions) == 0 && !counted {
		// paymentd would take an unlisted total as one confirmed transfer.
		st.AmountPaid = 0
	}
	created, err := time.Parse(time.RFC3339, p.CreatedAt)
	if err != nil {
		created = time.Now()
	}
	if p.Timeout > 0 {
		st.ExpiresAt = created.Add(time.Duration(p.Timeout) * time.Second)
	}
	// Under a partially paid word alppay has not counted the whole amount:
	// when the listed transfers together reach it, some of them are not
	// confirmed, and the document does not say which, so none of those
	// without their own confirmations is taken as confirmed (paymentd never
	// counts money alppay may not have) until alppay says more.
	var listed int64
	for _, t := range p.Transactions {
		v, err := providers.ParseDecimal(t.ReceivedAmount, exp)
		if err != nil || v <= 0 {
			return bad("receivedAmount", t.ReceivedAmount)
		}
		listed += min(v, amount-listed) // at most amount: no overflow
	}
	presumeConfirmed := paidWord(p.Status) || (counted && listed < amount)
	for _, t := range p.Transactions {
		v, _ := providers.ParseDecimal(t.ReceivedAmount, exp)
		r := providers.Receipt{TxnID: t.TxnID, Amount: v}
		switch {
		case t.Confirmations != nil:
			r.Confirmations = *t.Confirmations
		case presumeConfirmed:
			r.Confirmations = p.ConfirmsNeeded
		}
		r.Time, _ = time.Parse(time.RFC3339, t.Date)
		st.Receipts = append(st.Receipts, r)
	}
	return st, nil
}

// paidWord reports whether alppay's status word says the payment is paid:
// its transfers are confirmed and counted.
func paidWord(word string) bool {
	switch strings.ToUpper(word) {
	case "PAID", "COMPLETED", "CONFIRMED", "SUCCESS", "OVERPAID":
		return true
	}
	return false
}

// countedWord reports whether alppay's status word says it counted the
// money received (paid, or partially paid): its transfers are confirmed.
func countedWord(word string) bool {
	switch strings.ToUpper(word) {
	case "PARTIALLY_PAID", "PARTIAL", "UNDERPAID":
		return true
	}
	return paidWord(word)
}

// status maps alppay's status word onto paymentd's invoice statuses: paid
// only when the word says so, never because totalReceivedAmount covers the
// amount (received money may be unconfirmed); expired and canceled as the
// word says; otherwise partially paid once something was received.
func status(word string, received int64) string {
	if paidWord(word) {
		return "paid"
	}
	switch strings.ToUpper(word) {
	case "EXPIRED", "TIMEOUT":
		return "expired" // partial receipts stay on the expired invoice
	case "CANCELED", "CANCELLED":
		return "canceled"
	}
	if received > 0 {
		return "partially_paid"
	}
	return "open"
}
