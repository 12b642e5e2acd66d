// Package asyncpay is the adapter for Asyncpay (asyncpay.io). Its document
// (../shared/provider-docs/asyncpay.txt) defines only the frame every call
// shares, which the adapter follows exactly:
//
//   - base URL https://api.asyncpay.io (endpoints are written relative to
//     it, e.g. /v1/customers; the page also names https://asyncpay.io, which
//     is the dashboard's);
//   - the test or live secret key from the dashboard authenticates calls
//     (as "Authorization: Bearer <secret key>");
//   - JSON requests; every answer is the envelope {"status": "success" |
//     "failed", "message": …, "data": object or array}, and errors carry the
//     envelope with status "failed".
//
// The document names payments and payouts among Asyncpay's features but
// specifies none of their endpoints or fields. Every path is therefore
// configurable (Paths), and the shapes below are ASSUMPTIONS, also listed in
// docs/providers.md; check them against Asyncpay's API reference before
// going live and adjust the paths in the configuration:
//
//   - POST /v1/payments {amount, currency, reference, description,
//     payment_method} charges at once (no separate capture) → data {id,
//     reference, amount, currency, status: successful|pending|failed,
//     failure_reason}; GET /v1/payments/{id or reference} → the same data.
//   - POST /v1/refunds {payment_id, amount, reference} → data {id,
//     payment_id, amount, currency, status}.
//   - GET /v1/payout-channels → data [{id, name, type, currency,
//     min_amount, max_amount, fee_fixed, fee_percent_bps}].
//   - POST /v1/payouts {channel_id, amount, currency, reference, recipient:
//     {name, account}, description} → data {id, reference, amount, fee,
//     currency, status: pending|processing|completed|rejected|cancelled};
//     GET /v1/payouts/{id or reference}.
//   - Amounts are integers in the currency's minor unit.
//   - reference is paymentd's payment or payout id (the caller's
//     transaction reference goes first in a payout's description), so
//     either can be read back with GET …/{reference} and never be taken
//     for another account's; paymentd's object id is also sent as an
//     Idempotency-Key header. As Asyncpay documents neither, a POST is not
//     retried after an ambiguous failure (500, 502, 503, timeout: the
//     document does not say that a 503 comes before processing, and a
//     gateway's 503 may come after it), only after refusals (429, refused
//     connections). A payment left Unknown that way is looked up at once by
//     its reference, and reported as found; otherwise the reconciler asks.
//   - HTTP 402, or an answer whose data.status is failed, is a decline;
//     other 4xx are invalid requests, the envelope's message explaining.
package asyncpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/providers"
)

// Name is the provider's name in configuration.
const Name = "asyncpay"

// DefaultBaseURL is the documented base URL.
const DefaultBaseURL = "https://api.asyncpay.io"

// Paths are the endpoints the document leaves unspecified. "{id}" in a path
// is replaced by the object's id or reference.
type Paths struct {
	CreatePayment string // default /v1/payments
	GetPayment    string // default /v1/payments/{id}
	CreateRefund  string // default /v1/refunds
	PayoutMethods string // default /v1/payout-channels
	CreatePayout  string // default /v1/payouts
	GetPayout     string // default /v1/payouts/{id}
}

// DefaultPaths are the assumed endpoints.
var DefaultPaths = Paths{
	CreatePayment: "/v1/payments", GetPayment: "/v1/payments/{id}", CreateRefund: "/v1/refunds",
	PayoutMethods: "/v1/payout-channels", CreatePayout: "/v1/payouts", GetPayout: "/v1/payouts/{id}",
}

// Options configure a Client.
type Options struct {
	Name      string // connection name, default "asyncpay"
	BaseURL   string // default DefaultBaseURL
	SecretKey string // the test or live secret key
	Paths     Paths  // empty fields take DefaultPaths
	HTTP      providers.HTTPOptions
}

// Client talks to Asyncpay.
type Client struct {
	name, key string
	paths     Paths
	up        *providers.Upstream
}

var (
	_ providers.Provider            = (*Client)(nil)
	_ providers.Payments            = (*Client)(nil)
	_ providers.PaymentStatusGetter = (*Client)(nil)
	_ providers.Payouts             = (*Client)(nil)
	_ providers.StatusChecker       = (*Client)(nil)
)

// New returns a Client. Errors never contain the key.
func New(o Options) (*Client, error) {
	if o.SecretKey == "" {
		return nil, errors.New("asyncpay: the secret key is empty")
	}
	if o.Name == "" {
		o.Name = Name
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	p, d := &o.Paths, DefaultPaths
	for _, f := range []struct {
		v   *string
		def string
	}{
		{&p.CreatePayment, d.CreatePayment}, {&p.GetPayment, d.GetPayment}, {&p.CreateRefund, d.CreateRefund},
		{&p.PayoutMethods, d.PayoutMethods}, {&p.CreatePayout, d.CreatePayout}, {&p.GetPayout, d.GetPayout},
	} {
		if *f.v == "" {
			*f.v = f.def
		}
		if !strings.HasPrefix(*f.v, "/") {
			return nil, fmt.Errorf("asyncpay: path %q must start with /", *f.v)
		}
	}
	return &Client{name: o.Name, key: o.SecretKey, paths: o.Paths, up: providers.NewUpstream(o.Name, o.BaseURL, o.HTTP)}, nil
}

// Name returns the connection's name.
func (c *Client) Name() string { return c.name }

// envelope is every Asyncpay answer.
type envelope struct {
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Errors  map[string]any  `json:"errors"`
}

func withID(path, id string) string { return strings.ReplaceAll(path, "{id}", url.PathEscape(id)) }

// call sends a request and decodes the envelope's data into out. A 2xx
// envelope whose status is "failed" comes back as errFailedEnvelope with
// its message, for the caller to classify.
func (c *Client) call(ctx context.Context, method, path string, body any, idemKey string, out any) error {
	h := http.Header{"Authorization": {"Bearer " + c.key}}
	if idemKey != "" {
		h.Set("Idempotency-Key", idemKey)
	}
	// Asyncpay documents no idempotency key and no meaning of 503, so a 503
	// to a POST may follow its processing (a gateway's "upstream error"):
	// it is ambiguous, never retried blindly.
	call := providers.Call{Method: method, Path: path, Header: h, Mutating: method != http.MethodGet, Replayable: method == http.MethodGet,
		Ambiguous503: true}
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		call.Body = raw
	}
	resp, err := c.up.Do(ctx, call)
	if err != nil {
		return err
	}
	var env envelope
	parseErr := json.Unmarshal(resp.Body, &env)
	if !resp.OK() {
		return c.refusal(resp, env, call.Mutating)
	}
	if parseErr != nil || (env.Status != "success" && env.Status != "failed") {
		return providers.AnswerError(c.name, call.Mutating, "provider_malformed_answer",
			"answered HTTP %d to %s %s without the documented {status, message, data} envelope", resp.Status, method, path)
	}
	if len(env.Data) > 0 && string(env.Data) != "null" {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return providers.AnswerError(c.name, call.Mutating, "provider_malformed_answer",
				"answered %s %s with data of an unexpected shape", method, path)
		}
	}
	if env.Status == "failed" {
		return &failedEnvelope{message: env.Message}
	}
	return nil
}

// failedEnvelope is a 2xx answer whose envelope says "failed".
type failedEnvelope struct{ message string }

func (f *failedEnvelope) Error() string { return "asyncpay: " + f.message }

func (c *Client) refusal(resp *providers.Response, env envelope, mutating bool) error {
	if resp.AfterAmbiguous && mutating {
		return providers.RefusalAfterAmbiguous(c.name, resp.Status)
	}
	if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
		return providers.AuthError(c.name, resp.Status)
	}
	if resp.Status < 400 {
		return providers.AnswerError(c.name, mutating, "provider_unexpected_answer", "answered HTTP %d, which the API does not use", resp.Status)
	}
	msg := env.Message
	if msg == "" {
		msg = fmt.Sprintf("Asyncpay refused the request with HTTP %d.", resp.Status)
	}
	param := ""
	for k := range env.Errors {
		if param == "" || k < param {
			param = k
		}
	}
	switch resp.Status {
	case http.StatusPaymentRequired:
		return &providers.Error{Kind: providers.Declined, Code: "provider_declined", Message: "Asyncpay: " + msg}
	case http.StatusNotFound:
		return &providers.Error{Kind: providers.InvalidRequest, Code: "resource_missing", Message: "Asyncpay: " + msg}
	}
	return &providers.Error{Kind: providers.InvalidRequest, Code: "parameter_invalid", Param: param, Message: "Asyncpay: " + msg}
}

// failedAsDecline turns a "failed" envelope into a decline; other errors
// pass through.
func failedAsDecline(err error, code string) error {
	var f *failedEnvelope
	if errors.As(err, &f) {
		return &providers.Error{Kind: providers.Declined, Code: code, Message: f.Error()}
	}
	return err
}

type paymentData struct {
	ID            string `json:"id"`
	Reference     string `json:"reference"`
	Amount        *int64 `json:"amount"`
	Currency      string `json:"currency"`
	Status        string `json:"status"`
	FailureReason string `json:"failure_reason"`
	PaymentID     string `json:"payment_id"`
}

func (c *Client) mismatch(what string, d paymentData, amount int64, currency string) error {
	if d.Amount == nil || *d.Amount != amount {
		got := "none"
		if d.Amount != nil {
			got = fmt.Sprint(*d.Amount)
		}
		return providers.AnswerError(c.name, true, "provider_amount_mismatch",
			"answered %s with amount %s for a request of %d; it is not taken as done", what, got, amount)
	}
	if currency != "" && !strings.EqualFold(d.Currency, currency) {
		return providers.AnswerError(c.name, true, "provider_currency_mismatch",
			"answered %s in %q for a request in %s; it is not taken as done", what, d.Currency, currency)
	}
	return nil
}

// Authorize charges the payment at once; Asyncpay payments are assumed to
// have no separate capture (see the package comment).
func (c *Client) Authorize(ctx context.Context, req providers.PaymentRequest) (providers.PaymentResult, error) {
	if !req.Capture {
		return providers.PaymentResult{}, &providers.Error{Kind: providers.InvalidRequest, Code: "capture_method_not_supported",
			Param: "capture_method", Message: "Asyncpay payments are captured at once; use capture_method automatic."}
	}
	body := map[string]any{"amount": req.Amount, "currency": strings.ToUpper(req.Currency), "reference": req.IdempotencyKey,
		"payment_method": req.PaymentMethod}
	if req.Description != "" {
		body["description"] = req.Description
	}
	var d paymentData
	if err := c.call(ctx, http.MethodPost, c.paths.CreatePayment, body, req.IdempotencyKey, &d); err != nil {
		// Only a provider error of kind Unknown: a "failed" envelope (not a
		// providers.Error, so KindOf would call it Unknown) is a decline.
		if pe := (*providers.Error)(nil); errors.As(err, &pe) && pe.Kind == providers.Unknown {
			return c.lookUpAfterUnknown(ctx, req, err)
		}
		return providers.PaymentResult{}, failedAsDecline(err, "payment_failed")
	}
	if d.ID == "" {
		return providers.PaymentResult{}, providers.AnswerError(c.name, true, "provider_malformed_answer", "answered a payment without an id")
	}
	if err := c.mismatch("the payment", d, req.Amount, req.Currency); err != nil {
		return providers.PaymentResult{}, err
	}
	switch paymentStatus(d.Status) {
	case "captured":
		return providers.PaymentResult{Reference: d.ID, Captured: true}, nil
	case "failed":
		code := d.FailureReason
		if code == "" {
			code = "payment_failed"
		}
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Declined, Code: code,
			Message: "Asyncpay declined the payment (" + code + ")."}
	}
	return providers.PaymentResult{}, providers.AnswerError(c.name, true, "provider_payment_pending",
		"answered payment %s with status %q; it is not settled yet", d.ID, d.Status)
}

// lookUpAfterUnknown reads back, by its reference (paymentd's id), a
// payment whose creation got no definite answer (cause), instead of
// creating it again: found with the request's amount and currency, it is
// reported as Asyncpay has it; otherwise the outcome stays Unknown (cause)
// for the reconciler, which asks the same way.
func (c *Client) lookUpAfterUnknown(ctx context.Context, req providers.PaymentRequest, cause error) (providers.PaymentResult, error) {
	if ctx.Err() != nil {
		return providers.PaymentResult{}, cause
	}
	st, err := c.GetPayment(ctx, req.IdempotencyKey)
	if err != nil || st.Amount != req.Amount || !strings.EqualFold(st.Currency, req.Currency) {
		return providers.PaymentResult{}, cause
	}
	switch st.Status {
	case "captured":
		return providers.PaymentResult{Reference: st.Reference, Captured: true}, nil
	case "failed":
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Declined, Code: "payment_failed",
			Message: "Asyncpay declined the payment (read back after an unanswered creation)."}
	}
	return providers.PaymentResult{Reference: st.Reference}, cause
}

func paymentStatus(s string) string {
	switch strings.ToLower(s) {
	case "successful", "success", "succeeded", "completed", "paid":
		return "captured"
	case "failed", "declined", "cancelled", "canceled":
		return "failed"
	}
	return "pending"
}

// Capture is refused: payments are captured when created.
func (c *Client) Capture(context.Context, string, int64, string) error {
	return &providers.Error{Kind: providers.InvalidRequest, Code: "capture_not_supported",
		Message: "Asyncpay payments are captured when created; there is nothing to capture."}
}

// Cancel is refused: payments are captured when created; refund instead.
func (c *Client) Cancel(context.Context, string) error {
	return &providers.Error{Kind: providers.InvalidRequest, Code: "cancel_not_supported",
		Message: "Asyncpay payments are captured when created; refund the payment instead."}
}

// Refund refunds part or all of a payment.
func (c *Client) Refund(ctx context.Context, req providers.RefundRequest) (providers.RefundResult, error) {
	body := map[string]any{"payment_id": req.Reference, "amount": req.Amount, "reference": req.IdempotencyKey}
	var d paymentData
	if err := c.call(ctx, http.MethodPost, c.paths.CreateRefund, body, req.IdempotencyKey, &d); err != nil {
		return providers.RefundResult{}, failedAsDecline(err, "refund_failed")
	}
	if d.ID == "" {
		return providers.RefundResult{}, providers.AnswerError(c.name, true, "provider_malformed_answer", "answered a refund without an id")
	}
	if err := c.mismatch("the refund", d, req.Amount, req.Currency); err != nil {
		return providers.RefundResult{}, err
	}
	switch paymentStatus(d.Status) {
	case "captured":
		return providers.RefundResult{Reference: d.ID}, nil
	case "failed":
		return providers.RefundResult{}, &providers.Error{Kind: providers.Declined, Code: "refund_failed", Message: "Asyncpay could not refund the payment."}
	}
	return providers.RefundResult{}, providers.AnswerError(c.name, true, "provider_refund_pending", "answered the refund with status %q", d.Status)
}

// GetPayment reads a payment by Asyncpay's id or by paymentd's id (the
// reference it was created with).
func (c *Client) GetPayment(ctx context.Context, reference string) (providers.PaymentState, error) {
	var d paymentData
	if err := c.call(ctx, http.MethodGet, withID(c.paths.GetPayment, reference), nil, "", &d); err != nil {
		return providers.PaymentState{}, readError(err, "payment", reference)
	}
	if d.ID == "" || d.Amount == nil || (d.ID != reference && d.Reference != reference) {
		return providers.PaymentState{}, providers.AnswerError(c.name, false, "provider_malformed_answer",
			"answered a lookup of %s with payment %q", reference, d.ID)
	}
	return providers.PaymentState{Reference: d.ID, Status: paymentStatus(d.Status), Amount: *d.Amount,
		Currency: strings.ToUpper(d.Currency)}, nil
}

// readError is the error of a read of one object (kind) by its id or
// reference: a "failed" envelope is a refusal, and a 404 Asyncpay's
// definite word that it holds no such object (providers.CodeAbsent).
func readError(err error, kind, reference string) error {
	var f *failedEnvelope
	var pe *providers.Error
	switch {
	case errors.As(err, &f):
		return &providers.Error{Kind: providers.Unavailable, Code: "provider_refused", Message: f.Error()}
	case errors.As(err, &pe) && pe.Code == "resource_missing":
		return &providers.Error{Kind: providers.InvalidRequest, Code: providers.CodeAbsent,
			Message: fmt.Sprintf("Asyncpay holds no %s under %s (%s)", kind, reference, pe.Message)}
	}
	return err
}

// PayoutMethods lists the payout channels.
func (c *Client) PayoutMethods(ctx context.Context) ([]providers.PayoutMethod, error) {
	var data []struct {
		ID            flexID `json:"id"`
		Name          string `json:"name"`
		Type          string `json:"type"`
		Currency      string `json:"currency"`
		MinAmount     int64  `json:"min_amount"`
		MaxAmount     int64  `json:"max_amount"`
		FeeFixed      int64  `json:"fee_fixed"`
		FeePercentBPS int64  `json:"fee_percent_bps"`
		AccountFormat string `json:"account_format"`
	}
	if err := c.call(ctx, http.MethodGet, c.paths.PayoutMethods, nil, "", &data); err != nil {
		return nil, err
	}
	out := make([]providers.PayoutMethod, 0, len(data))
	for _, d := range data {
		if d.ID == "" || d.Currency == "" || d.MinAmount <= 0 || d.MaxAmount < d.MinAmount {
			return nil, providers.AnswerError(c.name, false, "provider_malformed_answer", "answered payout channel %q without a usable id, currency or limits", d.Name)
		}
		out = append(out, providers.PayoutMethod{ID: string(d.ID), Name: d.Name, Type: d.Type, Currency: strings.ToUpper(d.Currency),
			MinAmount: d.MinAmount, MaxAmount: d.MaxAmount, FeeFixed: d.FeeFixed, FeeBasisPoints: d.FeePercentBPS, AccountFormat: d.AccountFormat})
	}
	return out, nil
}

// flexID is an id written as a JSON string or number.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexID(n)
	return nil
}

type payoutData struct {
	ID        string `json:"id"`
	Reference string `json:"reference"`
	Amount    *int64 `json:"amount"`
	Fee       *int64 `json:"fee"`
	Currency  string `json:"currency"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
}

func payoutStatus(s string) (string, bool) {
	switch w := strings.ToLower(s); w {
	case "pending", "processing", "completed", "rejected", "cancelled":
		return w, true
	case "successful", "success":
		return "completed", true
	case "failed":
		return "rejected", true
	case "canceled":
		return "cancelled", true
	}
	return "", false
}

func (c *Client) payoutState(d payoutData, mutating bool) (providers.PayoutState, error) {
	st, ok := payoutStatus(d.Status)
	if d.ID == "" || !ok || d.Amount == nil {
		return providers.PayoutState{}, providers.AnswerError(c.name, mutating, "provider_malformed_answer",
			"answered a payout without an id or amount, or with status %q", d.Status)
	}
	ps := providers.PayoutState{Reference: d.ID, Status: st, Reason: d.Reason, Amount: *d.Amount}
	// An answer without a fee says nothing of what the payout costs: its
	// total stays 0 (unknown), never read as "no fee".
	if d.Fee != nil {
		total, ok := paymentd.AddChecked(*d.Amount, *d.Fee)
		if *d.Fee < 0 || !ok {
			return providers.PayoutState{}, providers.AnswerError(c.name, mutating, "provider_malformed_answer",
				"answered payout %s with fee %d on amount %d", d.ID, *d.Fee, *d.Amount)
		}
		ps.Fee, ps.TotalAmount = *d.Fee, total
	}
	return ps, nil
}

// CreatePayout requests a payout through a payout channel.
func (c *Client) CreatePayout(ctx context.Context, req providers.PayoutRequest) (providers.PayoutState, error) {
	if req.MethodID == "" || req.RecipientAccount == "" {
		return providers.PayoutState{}, &providers.Error{Kind: providers.InvalidRequest, Code: "parameter_missing", Param: "recipient_account",
			Message: "Asyncpay payouts need a payout channel and a recipient account."}
	}
	ref := c.PayoutReference(req.IdempotencyKey, req.Reference)
	body := map[string]any{"channel_id": req.MethodID, "amount": req.Amount, "currency": strings.ToUpper(req.Currency),
		"reference": ref, "recipient": map[string]string{"name": req.RecipientName, "account": req.RecipientAccount}}
	if d := req.DescriptionWithReference(); d != "" {
		body["description"] = d
	}
	var d payoutData
	if err := c.call(ctx, http.MethodPost, c.paths.CreatePayout, body, req.IdempotencyKey, &d); err != nil {
		return providers.PayoutState{}, failedAsDecline(err, "payout_declined")
	}
	st, err := c.payoutState(d, true)
	if err != nil {
		return st, err
	}
	if st.Amount != req.Amount || !strings.EqualFold(d.Currency, req.Currency) {
		return providers.PayoutState{}, providers.AnswerError(c.name, true, "provider_amount_mismatch",
			"answered payout %s with %d %s for a request of %d %s; it is not taken as accepted", st.Reference, st.Amount, d.Currency, req.Amount, req.Currency)
	}
	if d.Reference != "" && d.Reference != ref {
		return providers.PayoutState{}, providers.AnswerError(c.name, true, "provider_reference_mismatch",
			"answered payout %s for reference %q, not %q", st.Reference, d.Reference, ref)
	}
	return st, nil
}

// PayoutReference is the reference a payout is sent under and found by:
// paymentd's payout id, unique across accounts, never the caller's
// transaction reference (unique only within an account and mode), so that
// reading back an unanswered payout can never find another account's.
func (c *Client) PayoutReference(payoutID, _ string) string { return payoutID }

// GetPayout reads a payout by Asyncpay's id or paymentd's reference.
func (c *Client) GetPayout(ctx context.Context, reference string) (providers.PayoutState, error) {
	var d payoutData
	if err := c.call(ctx, http.MethodGet, withID(c.paths.GetPayout, reference), nil, "", &d); err != nil {
		return providers.PayoutState{}, readError(err, "payout", reference)
	}
	return c.payoutState(d, false)
}

// CheckStatus lists the payout channels: an authenticated read that moves
// nothing (no status endpoint is documented).
func (c *Client) CheckStatus(ctx context.Context) error {
	_, err := c.PayoutMethods(ctx)
	return err
}
