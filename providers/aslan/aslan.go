// Package aslan is the adapter for Aslan (aslanpay.xyz), a card payments API
// for AI agents, following its API reference
// (../shared/provider-docs/aslan.txt):
//
//   - POST /api/v1/authorize {amount, description} authorizes a payment;
//     POST /api/v1/confirm {authorizationId} confirms (captures) it and
//     answers the payment {id, amount, currency, status: succeeded, …};
//   - POST /api/v1/refund {paymentId, amount, reason} refunds part or all of
//     a payment;
//   - POST https://api.aslanpay.xyz/v1/purchase {amount, description,
//     agent_id} is the SDK's one-shot purchase;
//   - GET /api/status reports the service's health (no key needed);
//   - every call carries "Authorization: Bearer ak_live_…" (or ak_test_…);
//   - amounts are integer cents of USD; errors are
//     {"error":{"type","code","message","param"}} with 400, 401, 403, 404,
//     429 and 500.
//
// Assumptions where the document is silent, also listed in
// docs/providers.md:
//   - The authorize answer is not shown; it is taken to be an authorization
//     object {id: "auth_…", amount, currency, status: "authorized"}, since
//     confirm takes that id as authorizationId.
//   - Declines are answered 402 (or with error type card_error) and the
//     code, e.g. card_declined, as Stripe does (the receipts Aslan returns
//     are Stripe's).
//   - Aslan documents no idempotency key. paymentd sends its object id as
//     an Idempotency-Key header anyway but does not rely on it: authorize and
//     refund are not retried after an ambiguous failure (500, timeout);
//     confirm is, since an authorization can be confirmed only once. A
//     confirm refused with a 4xx other than a decline is Unknown, never a
//     refusal: a re-sent confirm is refused although the first one charged.
//   - Aslan takes USD only ("Amount must be at least $0.50 USD"); other
//     currencies are refused before any call.
//   - Confirm takes no amount: it captures the whole authorization, so a
//     partial capture is refused when Aslan answers another amount.
//   - There is no void endpoint: canceling an authorization sends nothing,
//     as an authorization that is never confirmed never charges.
//   - The one-shot purchase answers status "authorized" in its only
//     example. "authorized" is the word of an authorization, which only a
//     confirm charges ("Confirm and execute a previously authorized
//     payment. This charges the payment method."), so such a purchase is
//     reported as authorized, not captured: the payment waits for a capture
//     (a confirm of the transaction_id as authorizationId) or a cancel.
//     Only status "succeeded", the word of a charged payment, is captured.
package aslan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/paymentd/paymentd/providers"
)

// Name is the provider's name in configuration.
const Name = "aslan"

// Default endpoints, from the API reference.
const (
	DefaultBaseURL     = "https://aslanpay.xyz"
	DefaultPurchaseURL = "https://api.aslanpay.xyz/v1/purchase"
)

// Options configure a Client.
type Options struct {
	// Name is the connection's name (default "aslan"); payments record it.
	Name string
	// BaseURL is where /api/v1/… and /api/status live (default DefaultBaseURL).
	BaseURL string
	// PurchaseURL is the one-shot purchase endpoint; default
	// DefaultPurchaseURL, or BaseURL + "/v1/purchase" when BaseURL is not the
	// default (a fake or a proxy serving both).
	PurchaseURL string
	// APIKey is an ak_live_… or ak_test_… key.
	APIKey string
	// OneShot makes automatically captured payments use the one-shot
	// purchase instead of authorize + confirm.
	OneShot bool
	// AgentID is sent as the purchase's agent_id (default "paymentd").
	AgentID string
	HTTP    providers.HTTPOptions
}

// Client talks to Aslan.
type Client struct {
	name        string
	key         string
	purchaseURL string
	oneShot     bool
	agentID     string
	up          *providers.Upstream
}

var (
	_ providers.Provider          = (*Client)(nil)
	_ providers.Payments          = (*Client)(nil)
	_ providers.StatusChecker     = (*Client)(nil)
	_ providers.CaptureReferencer = (*Client)(nil)
	_ providers.WholeCapturer     = (*Client)(nil)
)

// CapturesWholeAuthorizationOnly reports true: confirm takes no amount and
// charges the whole authorization, so paymentd refuses partial captures
// before calling Aslan.
func (c *Client) CapturesWholeAuthorizationOnly() bool { return true }

// New returns a Client, or an error when the options cannot work. Errors
// never contain the key.
func New(o Options) (*Client, error) {
	if !strings.HasPrefix(o.APIKey, "ak_live_") && !strings.HasPrefix(o.APIKey, "ak_test_") {
		return nil, errors.New("aslan: the API key must start with ak_live_ or ak_test_")
	}
	if o.Name == "" {
		o.Name = Name
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	if o.PurchaseURL == "" {
		o.PurchaseURL = DefaultPurchaseURL
		if strings.TrimRight(o.BaseURL, "/") != DefaultBaseURL {
			o.PurchaseURL = strings.TrimRight(o.BaseURL, "/") + "/v1/purchase"
		}
	}
	if o.AgentID == "" {
		o.AgentID = "paymentd"
	}
	return &Client{name: o.Name, key: o.APIKey, purchaseURL: o.PurchaseURL, oneShot: o.OneShot, agentID: o.AgentID,
		up: providers.NewUpstream(o.Name, o.BaseURL, o.HTTP)}, nil
}

// Name returns the connection's name.
func (c *Client) Name() string { return c.name }

// Livemode reports whether the key is a live key.
func (c *Client) Livemode() bool { return strings.HasPrefix(c.key, "ak_live_") }

type apiError struct {
	Error struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Param   string `json:"param"`
	} `json:"error"`
}

type authorization struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Amount   *int64 `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

type payment struct {
	ID              string `json:"id"`
	Object          string `json:"object"`
	Amount          *int64 `json:"amount"`
	Currency        string `json:"currency"`
	Status          string `json:"status"`
	AuthorizationID string `json:"authorizationId"`
}

type refund struct {
	ID        string `json:"id"`
	Amount    *int64 `json:"amount"`
	Currency  string `json:"currency"`
	PaymentID string `json:"paymentId"`
	Status    string `json:"status"`
}

type purchase struct {
	Success       bool   `json:"success"`
	TransactionID string `json:"transaction_id"`
	Status        string `json:"status"`
	Amount        *int64 `json:"amount"`
}

func (c *Client) header(idemKey string) http.Header {
	h := http.Header{"Authorization": {"Bearer " + c.key}}
	if idemKey != "" {
		h.Set("Idempotency-Key", idemKey)
	}
	return h
}

// post sends a JSON body and decodes a 2xx answer into out.
func (c *Client) post(ctx context.Context, url, path string, body any, idemKey string, replayable bool, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := c.up.Do(ctx, providers.Call{Method: http.MethodPost, URL: url, Path: path, Header: c.header(idemKey),
		Body: raw, Mutating: true, Replayable: replayable})
	if err != nil {
		return err
	}
	if !resp.OK() {
		return c.refusal(resp)
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return providers.AnswerError(c.name, true, "provider_malformed_answer",
			"answered HTTP %d to %s with a body that is not the documented JSON", resp.Status, path)
	}
	return nil
}

// refusal maps a non-2xx answer in Aslan's error shape onto a provider error.
func (c *Client) refusal(resp *providers.Response) error {
	if resp.AfterAmbiguous {
		return providers.RefusalAfterAmbiguous(c.name, resp.Status)
	}
	if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
		return providers.AuthError(c.name, resp.Status)
	}
	if resp.Status < 400 {
		return providers.AnswerError(c.name, true, "provider_unexpected_answer", "answered HTTP %d, which the API does not use", resp.Status)
	}
	var e apiError
	_ = json.Unmarshal(resp.Body, &e)
	code, msg := e.Error.Code, e.Error.Message
	if code == "" {
		code = fmt.Sprintf("provider_http_%d", resp.Status)
	}
	if msg == "" {
		msg = "Aslan refused the request with HTTP " + fmt.Sprint(resp.Status) + "."
	}
	if resp.Status == http.StatusPaymentRequired || e.Error.Type == "card_error" {
		return &providers.Error{Kind: providers.Declined, Code: code, Message: msg}
	}
	return &providers.Error{Kind: providers.InvalidRequest, Code: code, Message: "Aslan: " + msg, Param: e.Error.Param}
}

func (c *Client) checkAmount(what string, got *int64, want int64) error {
	if got == nil || *got != want {
		g := "none"
		if got != nil {
			g = fmt.Sprint(*got)
		}
		return providers.AnswerError(c.name, true, "provider_amount_mismatch",
			"answered %s with amount %s for a request of %d; it is not taken as done", what, g, want)
	}
	return nil
}

func (c *Client) checkCurrency(what, got string, required bool) error {
	if (got == "" && required) || (got != "" && !strings.EqualFold(got, "usd")) {
		return providers.AnswerError(c.name, true, "provider_currency_mismatch",
			"answered %s in currency %q for a USD request; it is not taken as done", what, got)
	}
	return nil
}

// Authorize authorizes req's amount and, with req.Capture, confirms it (or
// makes a one-shot purchase when the client was made with OneShot).
func (c *Client) Authorize(ctx context.Context, req providers.PaymentRequest) (providers.PaymentResult, error) {
	if !strings.EqualFold(req.Currency, "USD") {
		return providers.PaymentResult{}, &providers.Error{Kind: providers.InvalidRequest, Code: "currency_not_supported", Param: "currency",
			Message: "Aslan takes payments in USD only; use currency USD or route " + strings.ToUpper(req.Currency) + " to another provider."}
	}
	desc := req.Description
	if desc == "" {
		desc = "paymentd " + req.IdempotencyKey
	}
	if req.Capture && c.oneShot {
		return c.purchase(ctx, req, desc)
	}
	var a authorization
	err := c.post(ctx, "", "/api/v1/authorize", map[string]any{"amount": req.Amount, "description": desc},
		req.IdempotencyKey, false, &a)
	if err != nil {
		return providers.PaymentResult{}, err
	}
	if a.ID == "" {
		return providers.PaymentResult{}, providers.AnswerError(c.name, true, "provider_malformed_answer", "answered an authorization without an id")
	}
	if err := c.checkAmount("the authorization", a.Amount, req.Amount); err != nil {
		return providers.PaymentResult{}, err
	}
	if err := c.checkCurrency("the authorization", a.Currency, false); err != nil {
		return providers.PaymentResult{}, err
	}
	switch a.Status {
	case "authorized", "requires_confirmation", "requires_capture", "":
	case "declined", "failed", "canceled":
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Declined, Code: "card_declined",
			Message: "Aslan declined the authorization (status " + a.Status + ")."}
	default:
		return providers.PaymentResult{}, providers.AnswerError(c.name, true, "provider_unexpected_status",
			"answered an authorization with status %q", a.Status)
	}
	if !req.Capture {
		return providers.PaymentResult{Reference: a.ID}, nil
	}
	ref, err := c.CaptureReference(ctx, providers.CaptureRequest{IdempotencyKey: providers.CaptureKey(req.IdempotencyKey),
		Reference: a.ID, Amount: req.Amount, Currency: req.Currency})
	if err != nil {
		// The authorization exists: keep its id with the error, so that the
		// payment left unknown can be settled by confirming it again (Aslan
		// has no status endpoint; a confirm of one authorization is done once).
		return providers.PaymentResult{Reference: a.ID}, err
	}
	return providers.PaymentResult{Reference: ref, Captured: true}, nil
}

func (c *Client) purchase(ctx context.Context, req providers.PaymentRequest, desc string) (providers.PaymentResult, error) {
	var p purchase
	err := c.post(ctx, c.purchaseURL, "/v1/purchase", map[string]any{"amount": req.Amount, "description": desc, "agent_id": c.agentID},
		req.IdempotencyKey, false, &p)
	if err != nil {
		return providers.PaymentResult{}, err
	}
	if !p.Success {
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Declined, Code: "purchase_declined",
			Message: "Aslan did not complete the purchase (status " + p.Status + ")."}
	}
	if p.TransactionID == "" {
		return providers.PaymentResult{}, providers.AnswerError(c.name, true, "provider_malformed_answer", "answered a purchase without a transaction_id")
	}
	if err := c.checkAmount("the purchase", p.Amount, req.Amount); err != nil {
		return providers.PaymentResult{}, err
	}
	switch p.Status {
	case "succeeded":
		return providers.PaymentResult{Reference: p.TransactionID, Captured: true}, nil
	case "authorized", "requires_confirmation", "requires_capture":
		// Held, not charged: reported as the authorization it is.
		return providers.PaymentResult{Reference: p.TransactionID}, nil
	case "declined", "failed", "canceled":
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Declined, Code: "purchase_declined",
			Message: "Aslan did not complete the purchase (status " + p.Status + ")."}
	}
	// pending, processing or a word we do not know: money may move.
	return providers.PaymentResult{Reference: p.TransactionID}, providers.AnswerError(c.name, true, "provider_unexpected_status",
		"answered the purchase %s with status %q", p.TransactionID, p.Status)
}

// CaptureReference confirms an authorization and returns the id of the
// payment Aslan creates for it (pay_…), which refunds must name. It sends
// req.IdempotencyKey as Idempotency-Key, so that a confirmation re-sent
// after a lost answer may be answered with the payment already made; Aslan
// does not document that it is. A confirm can charge, so only a definite
// answer settles it: a charged payment, or a decline (402, card_error). Any
// other 4xx (see confirmRefusal) is Unknown, since a confirm re-sent after
// a lost answer is refused although the first one charged, and Aslan has no
// call that reads an authorization or payment back.
func (c *Client) CaptureReference(ctx context.Context, req providers.CaptureRequest) (string, error) {
	reference, amount, currency := req.Reference, req.Amount, req.Currency
	if !strings.EqualFold(currency, "USD") {
		return "", &providers.Error{Kind: providers.InvalidRequest, Code: "currency_not_supported", Param: "currency",
			Message: "Aslan takes payments in USD only."}
	}
	if strings.HasPrefix(reference, "pay_") {
		return reference, nil // already confirmed
	}
	var p payment
	if err := c.post(ctx, "", "/api/v1/confirm", map[string]any{"authorizationId": reference}, req.IdempotencyKey, true, &p); err != nil {
		return "", confirmRefusal(reference, err)
	}
	if p.ID == "" {
		return "", providers.AnswerError(c.name, true, "provider_malformed_answer", "answered a confirmation without a payment id")
	}
	if err := c.checkAmount("the confirmation (Aslan captures the whole authorization)", p.Amount, amount); err != nil {
		return "", err
	}
	if err := c.checkCurrency("the confirmation", p.Currency, true); err != nil {
		return "", err
	}
	switch p.Status {
	case "succeeded":
		return p.ID, nil
	case "failed", "declined", "canceled":
		return "", &providers.Error{Kind: providers.Declined, Code: "card_declined",
			Message: "Aslan could not charge the payment method (status " + p.Status + ")."}
	}
	// pending, processing or a word we do not know: money may move.
	return "", providers.AnswerError(c.name, true, "provider_payment_pending", "answered the confirmation with status %q", p.Status)
}

// confirmRefusal classifies a failed confirm of authorization reference.
// Declines (402, card_error: the card was not charged), refused credentials
// and rate limits (nothing was done) and Unknown outcomes pass through. A
// 4xx refusal of any other kind does not prove that nothing was charged:
// the document names no refusal of a confirm, and Aslan refuses a confirm
// re-sent after a lost answer with codes such as
// authorization_already_confirmed, payment_already_confirmed or
// resource_already_exists although the first confirm charged. It is
// Unknown (providers.CodeConfirmRefusedUnclear), and as Aslan has no call
// to read it back an operator settles it.
func confirmRefusal(reference string, err error) error {
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.InvalidRequest {
		return err
	}
	if pe.Code == providers.CodeAlreadyConfirmed {
		return &providers.Error{Kind: providers.Unknown, Code: providers.CodeAlreadyConfirmed,
			Message: "Aslan says authorization " + reference + " was already confirmed (charged), without the payment's id."}
	}
	return &providers.Error{Kind: providers.Unknown, Code: providers.CodeConfirmRefusedUnclear, Message: fmt.Sprintf(
		"Aslan refused the confirmation of authorization %s (%s: %s). Its API names no such refusal of a confirm, and a confirm re-sent after a lost answer is refused although the first one charged; Aslan has no call to read the authorization back, so the outcome is unknown.",
		reference, pe.Code, pe.Message)}
}

// Capture confirms an authorization (the whole amount; see the package
// comment).
func (c *Client) Capture(ctx context.Context, reference string, amount int64, currency string) error {
	_, err := c.CaptureReference(ctx, providers.CaptureRequest{Reference: reference, Amount: amount, Currency: currency})
	return err
}

// Cancel sends nothing: Aslan has no void endpoint, and an authorization
// that is never confirmed never charges.
func (c *Client) Cancel(context.Context, string) error { return nil }

// Refund refunds part or all of a confirmed payment.
func (c *Client) Refund(ctx context.Context, req providers.RefundRequest) (providers.RefundResult, error) {
	var r refund
	body := map[string]any{"paymentId": req.Reference, "amount": req.Amount}
	if req.Reason != "" {
		body["reason"] = req.Reason
	}
	err := c.post(ctx, "", "/api/v1/refund", body, req.IdempotencyKey, false, &r)
	if err != nil {
		return providers.RefundResult{}, err
	}
	if r.ID == "" {
		return providers.RefundResult{}, providers.AnswerError(c.name, true, "provider_malformed_answer", "answered a refund without an id")
	}
	if err := c.checkAmount("the refund", r.Amount, req.Amount); err != nil {
		return providers.RefundResult{}, err
	}
	if err := c.checkCurrency("the refund", r.Currency, false); err != nil {
		return providers.RefundResult{}, err
	}
	if r.PaymentID != "" && r.PaymentID != req.Reference {
		return providers.RefundResult{}, providers.AnswerError(c.name, true, "provider_reference_mismatch",
			"answered a refund of payment %s for a request about %s", r.PaymentID, req.Reference)
	}
	switch r.Status {
	case "succeeded":
		return providers.RefundResult{Reference: r.ID}, nil
	case "failed", "canceled":
		return providers.RefundResult{}, &providers.Error{Kind: providers.Declined, Code: "refund_failed",
			Message: "Aslan could not refund the payment (status " + r.Status + ")."}
	}
	return providers.RefundResult{}, providers.AnswerError(c.name, true, "provider_refund_pending", "answered the refund with status %q", r.Status)
}

// CheckStatus asks GET /api/status and reports an error unless Aslan says
// it is operational.
func (c *Client) CheckStatus(ctx context.Context) error {
	resp, err := c.up.Do(ctx, providers.Call{Method: http.MethodGet, Path: "/api/status", Replayable: true})
	if err != nil {
		return err
	}
	var st struct {
		Status string `json:"status"`
	}
	if !resp.OK() || json.Unmarshal(resp.Body, &st) != nil {
		return providers.AnswerError(c.name, false, "provider_status_unreadable", "answered its status check with HTTP %d", resp.Status)
	}
	if st.Status != "operational" {
		return &providers.Error{Kind: providers.Unavailable, Code: "provider_degraded", Message: "Aslan reports status " + st.Status}
	}
	return nil
}
