// Package aikdata is the adapter for the aikdata Payments API, following its
// OpenAPI 3.0 document (../shared/provider-docs/aikdata-openapi.txt):
//
//   - server https://api.aikdata.com/v1/payments, bearer auth;
//   - POST /charge {amount (cents), currency (ISO 4217), description,
//     metadata} → {id, amount, currency, status: succeeded, created_at};
//   - GET /charge/{id} → {id, amount, currency, status};
//   - GET /charges?limit&offset&status → {data, total, limit, offset};
//   - POST /refund {charge_id, amount (omit for full), reason, metadata} →
//     {id, charge_id, amount, status};
//   - errors: 400 {"error":{"code":"card_declined","message":…}}, 401.
//
// Assumptions where the document is silent, also listed in
// docs/providers.md:
//   - A charge is captured at once: there is no authorize-only call, so
//     manual capture is refused before any call, and Capture and Cancel
//     are never needed.
//   - Decline codes are card_declined (documented) and the usual card
//     network codes (insufficient_funds, expired_card, …); any other 400 is
//     an invalid request. A 402, if ever answered, is a decline.
//   - Charge and refund statuses other than succeeded are pending (money
//     may still move: Unknown) and failed (a decline).
//   - aikdata documents no idempotency key. paymentd sends its object id as
//     an Idempotency-Key header and in metadata.paymentd_id, but does not
//     rely on it: charges and refunds are not retried after an ambiguous
//     failure (500, timeout), only after refusals (429, 503, refused
//     connections).
//   - "Amount in cents" is read as the currency's minor unit.
package aikdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/paymentd/paymentd/providers"
)

// Name is the provider's name in configuration.
const Name = "aikdata"

// DefaultBaseURL is the server of the OpenAPI document.
const DefaultBaseURL = "https://api.aikdata.com/v1/payments"

// Options configure a Client.
type Options struct {
	Name    string // connection name, default "aikdata"
	BaseURL string // default DefaultBaseURL
	Token   string // the bearer token
	HTTP    providers.HTTPOptions
}

// Client talks to aikdata.
type Client struct {
	name  string
	token string
	up    *providers.Upstream
}

var (
	_ providers.Provider            = (*Client)(nil)
	_ providers.Payments            = (*Client)(nil)
	_ providers.PaymentStatusGetter = (*Client)(nil)
	_ providers.PaymentLister       = (*Client)(nil)
	_ providers.StatusChecker       = (*Client)(nil)
)

// New returns a Client. Errors never contain the token.
func New(o Options) (*Client, error) {
	if o.Token == "" {
		return nil, errors.New("aikdata: the bearer token is empty")
	}
	if o.Name == "" {
		o.Name = Name
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	return &Client{name: o.Name, token: o.Token, up: providers.NewUpstream(o.Name, o.BaseURL, o.HTTP)}, nil
}

// Name returns the connection's name.
func (c *Client) Name() string { return c.name }

type charge struct {
	ID        string `json:"id"`
	Amount    *int64 `json:"amount"`
	Currency  string `json:"currency"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
}

type refund struct {
	ID       string `json:"id"`
	ChargeID string `json:"charge_id"`
	Amount   *int64 `json:"amount"`
	Status   string `json:"status"`
}

// declineCodes are the error codes that mean the payer's bank said no.
var declineCodes = map[string]bool{
	"card_declined": true, "insufficient_funds": true, "expired_card": true, "incorrect_cvc": true,
	"lost_card": true, "stolen_card": true, "do_not_honor": true, "fraudulent": true,
}

func (c *Client) call(ctx context.Context, method, path string, body any, idemKey string, out any) error {
	h := http.Header{"Authorization": {"Bearer " + c.token}}
	call := providers.Call{Method: method, Path: path, Header: h, Replayable: method == http.MethodGet, Mutating: method != http.MethodGet}
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		call.Body = raw
	}
	if idemKey != "" {
		h.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.up.Do(ctx, call)
	if err != nil {
		return err
	}
	if !resp.OK() {
		return c.refusal(resp, call.Mutating)
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return providers.AnswerError(c.name, call.Mutating, "provider_malformed_answer",
			"answered HTTP %d to %s %s with a body that is not the documented JSON", resp.Status, method, strings.SplitN(path, "?", 2)[0])
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
		return providers.AnswerError(c.name, mutating, "provider_unexpected_answer", "answered HTTP %d, which the API does not use", resp.Status)
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(resp.Body, &e)
	code, msg := e.Error.Code, e.Error.Message
	if code == "" {
		code = fmt.Sprintf("provider_http_%d", resp.Status)
	}
	if msg == "" {
		msg = fmt.Sprintf("aikdata refused the request with HTTP %d.", resp.Status)
	}
	if declineCodes[code] || resp.Status == http.StatusPaymentRequired {
		return &providers.Error{Kind: providers.Declined, Code: code, Message: msg}
	}
	if resp.Status == http.StatusNotFound {
		return &providers.Error{Kind: providers.InvalidRequest, Code: "resource_missing", Message: "aikdata: " + msg}
	}
	return &providers.Error{Kind: providers.InvalidRequest, Code: code, Message: "aikdata: " + msg}
}

func (c *Client) mismatch(what string, got *int64, want int64) error {
	if got != nil && *got == want {
		return nil
	}
	g := "none"
	if got != nil {
		g = strconv.FormatInt(*got, 10)
	}
	return providers.AnswerError(c.name, true, "provider_amount_mismatch",
		"answered %s with amount %s for a request of %d; it is not taken as done", what, g, want)
}

// Authorize creates a charge, which aikdata captures at once.
func (c *Client) Authorize(ctx context.Context, req providers.PaymentRequest) (providers.PaymentResult, error) {
	if !req.Capture {
		return providers.PaymentResult{}, &providers.Error{Kind: providers.InvalidRequest, Code: "capture_method_not_supported",
			Param: "capture_method", Message: "aikdata captures charges at once; use capture_method automatic, or route manual captures to another provider."}
	}
	if !isISO4217(req.Currency) {
		return providers.PaymentResult{}, &providers.Error{Kind: providers.InvalidRequest, Code: "currency_not_supported", Param: "currency",
			Message: "aikdata takes ISO 4217 currency codes; route " + strings.ToUpper(req.Currency) + " payments to another provider."}
	}
	body := map[string]any{"amount": req.Amount, "currency": strings.ToUpper(req.Currency),
		"metadata": withPaymentdID(req.Metadata, req.IdempotencyKey)}
	if req.Description != "" {
		body["description"] = req.Description
	}
	var ch charge
	if err := c.call(ctx, http.MethodPost, "/charge", body, req.IdempotencyKey, &ch); err != nil {
		return providers.PaymentResult{}, err
	}
	if ch.ID == "" {
		return providers.PaymentResult{}, providers.AnswerError(c.name, true, "provider_malformed_answer", "answered a charge without an id")
	}
	if err := c.mismatch("the charge", ch.Amount, req.Amount); err != nil {
		return providers.PaymentResult{}, err
	}
	if !strings.EqualFold(ch.Currency, req.Currency) {
		return providers.PaymentResult{}, providers.AnswerError(c.name, true, "provider_currency_mismatch",
			"answered the charge in %q for a request in %s; it is not taken as done", ch.Currency, req.Currency)
	}
	switch ch.Status {
	case "succeeded":
		return providers.PaymentResult{Reference: ch.ID, Captured: true}, nil
	case "failed", "declined":
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Declined, Code: "card_declined",
			Message: "aikdata did not complete the charge (status " + ch.Status + ")."}
	}
	return providers.PaymentResult{}, providers.AnswerError(c.name, true, "provider_payment_pending",
		"answered charge %s with status %q; it is not settled yet", ch.ID, ch.Status)
}

// isISO4217 reports whether code can be an ISO 4217 currency code, as the
// document's charge currency must be: three letters, and not one of the
// crypto assets of paymentd's currency table (BTC has 8 decimals; no ISO
// 4217 currency has more than 4).
func isISO4217(code string) bool {
	if len(code) != 3 {
		return false
	}
	for _, r := range code {
		if (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') {
			return false
		}
	}
	exp, known := providers.CurrencyExponent(code)
	return !known || exp <= 4
}

// Capture is refused: aikdata charges are captured when created.
func (c *Client) Capture(context.Context, string, int64, string) error {
	return &providers.Error{Kind: providers.InvalidRequest, Code: "capture_not_supported",
		Message: "aikdata charges are captured when created; there is nothing to capture."}
}

// Cancel is refused: aikdata charges are captured when created; refund instead.
func (c *Client) Cancel(context.Context, string) error {
	return &providers.Error{Kind: providers.InvalidRequest, Code: "cancel_not_supported",
		Message: "aikdata charges are captured when created; refund the payment instead."}
}

// Refund refunds part or all of a charge.
func (c *Client) Refund(ctx context.Context, req providers.RefundRequest) (providers.RefundResult, error) {
	body := map[string]any{"charge_id": req.Reference, "amount": req.Amount,
		"metadata": withPaymentdID(req.Metadata, req.IdempotencyKey)}
	if req.Reason != "" {
		body["reason"] = req.Reason
	}
	var r refund
	if err := c.call(ctx, http.MethodPost, "/refund", body, req.IdempotencyKey, &r); err != nil {
		return providers.RefundResult{}, err
	}
	if r.ID == "" {
		return providers.RefundResult{}, providers.AnswerError(c.name, true, "provider_malformed_answer", "answered a refund without an id")
	}
	if err := c.mismatch("the refund", r.Amount, req.Amount); err != nil {
		return providers.RefundResult{}, err
	}
	if r.ChargeID != "" && r.ChargeID != req.Reference {
		return providers.RefundResult{}, providers.AnswerError(c.name, true, "provider_reference_mismatch",
			"answered a refund of charge %s for a request about %s", r.ChargeID, req.Reference)
	}
	switch r.Status {
	case "succeeded":
		return providers.RefundResult{Reference: r.ID}, nil
	case "failed":
		return providers.RefundResult{}, &providers.Error{Kind: providers.Declined, Code: "refund_failed",
			Message: "aikdata could not refund the charge."}
	}
	return providers.RefundResult{}, providers.AnswerError(c.name, true, "provider_refund_pending", "answered the refund with status %q", r.Status)
}

// paymentStatus maps aikdata's charge statuses onto PaymentState's words.
func paymentStatus(s string) string {
	switch s {
	case "succeeded":
		return "captured"
	case "failed", "declined":
		return "failed"
	}
	return "pending"
}

// GetPayment reads a charge, for reconciliation. A reference that is not an
// aikdata charge id (ch_…) is paymentd's payment id, sent when a charge was
// never answered: the recent charges are then searched for the one whose
// metadata.paymentd_id it is. Not finding it is an error, never "failed":
// the charge may be older than the search or not listed yet.
func (c *Client) GetPayment(ctx context.Context, reference string) (providers.PaymentState, error) {
	if !strings.HasPrefix(reference, "ch_") {
		return c.findByPaymentdID(ctx, reference)
	}
	var ch charge
	if err := c.call(ctx, http.MethodGet, "/charge/"+url.PathEscape(reference), nil, "", &ch); err != nil {
		return providers.PaymentState{}, err
	}
	if ch.ID != reference || ch.Amount == nil {
		return providers.PaymentState{}, providers.AnswerError(c.name, false, "provider_malformed_answer",
			"answered GET /charge/%s with charge %q", reference, ch.ID)
	}
	return providers.PaymentState{Reference: ch.ID, Status: paymentStatus(ch.Status), Amount: *ch.Amount,
		Currency: strings.ToUpper(ch.Currency)}, nil
}

// searchPages bounds the search for a charge by paymentd's id.
const searchPages, searchPageSize = 5, 100

func (c *Client) findByPaymentdID(ctx context.Context, id string) (providers.PaymentState, error) {
	// offset advances by the charges answered, not by the limit asked: the
	// answer's limit may be smaller than ours (the document's example
	// answers limit 20), and stepping by ours would skip charges.
	offset := 0
	for range searchPages {
		var list struct {
			Data []struct {
				charge
				Metadata map[string]string `json:"metadata"`
			} `json:"data"`
			Total int `json:"total"`
		}
		path := fmt.Sprintf("/charges?limit=%d&offset=%d", searchPageSize, offset)
		if err := c.call(ctx, http.MethodGet, path, nil, "", &list); err != nil {
			return providers.PaymentState{}, err
		}
		for _, ch := range list.Data {
			if ch.Metadata["paymentd_id"] == id {
				return c.GetPayment(ctx, ch.ID)
			}
		}
		offset += len(list.Data)
		if len(list.Data) == 0 || offset >= list.Total {
			break
		}
	}
	return providers.PaymentState{}, &providers.Error{Kind: providers.Unavailable, Code: "provider_payment_not_found",
		Message: "aikdata lists no recent charge with metadata.paymentd_id " + id + "; it may not exist, or not be listed yet."}
}

// ChargeList is one page of GET /charges.
type ChargeList struct {
	Charges              []providers.PaymentState
	Total, Limit, Offset int
}

// ListCharges lists charges, optionally of one aikdata status (e.g.
// succeeded), limit per page from offset.
func (c *Client) ListCharges(ctx context.Context, limit, offset int, status string) (ChargeList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	if status != "" {
		q.Set("status", status)
	}
	path := "/charges"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page struct {
		Data   []charge `json:"data"`
		Total  int      `json:"total"`
		Limit  int      `json:"limit"`
		Offset int      `json:"offset"`
	}
	if err := c.call(ctx, http.MethodGet, path, nil, "", &page); err != nil {
		return ChargeList{}, err
	}
	out := ChargeList{Total: page.Total, Limit: page.Limit, Offset: page.Offset}
	for _, ch := range page.Data {
		st := providers.PaymentState{Reference: ch.ID, Status: paymentStatus(ch.Status), Currency: strings.ToUpper(ch.Currency)}
		if ch.Amount != nil {
			st.Amount = *ch.Amount
		}
		out.Charges = append(out.Charges, st)
	}
	return out, nil
}

// CheckStatus lists one charge: an authenticated read that moves nothing.
func (c *Client) CheckStatus(ctx context.Context) error {
	_, err := c.ListCharges(ctx, 1, 0, "")
	return err
}

// listPages bounds ListPayments: at 100 charges a page, a million charges
// (fewer when aikdata answers smaller pages).
const listPages = 10000

// ListPayments pages through GET /charges, newest first, for
// reconciliation. A charge that is listed twice because new ones arrived
// while paging (offsets shift) is passed to each once.
func (c *Client) ListPayments(ctx context.Context, each func(providers.ListedPayment) error) error {
	seen := map[string]bool{}
	offset := 0 // advanced by the charges answered (see findByPaymentdID)
	for range listPages {
		var list struct {
			Data []struct {
				charge
				Metadata map[string]string `json:"metadata"`
			} `json:"data"`
			Total int `json:"total"`
		}
		path := fmt.Sprintf("/charges?limit=%d&offset=%d", searchPageSize, offset)
		if err := c.call(ctx, http.MethodGet, path, nil, "", &list); err != nil {
			return err
		}
		for _, ch := range list.Data {
			if ch.ID == "" || seen[ch.ID] {
				continue
			}
			seen[ch.ID] = true
			lp := providers.ListedPayment{PaymentdID: ch.Metadata["paymentd_id"], PaymentState: providers.PaymentState{
				Reference: ch.ID, Status: paymentStatus(ch.Status), Currency: strings.ToUpper(ch.Currency)}}
			if ch.Amount != nil {
				lp.Amount = *ch.Amount
			}
			if err := each(lp); err != nil {
				return err
			}
		}
		offset += len(list.Data)
		if len(list.Data) == 0 || offset >= list.Total {
			return nil
		}
	}
	return nil
}

// withPaymentdID returns the caller's metadata with paymentd's id added as
// paymentd_id (which the reconciler looks charges up by, so it wins over a
// caller's key of that name).
func withPaymentdID(meta map[string]string, id string) map[string]string {
	out := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		out[k] = v
	}
	out["paymentd_id"] = id
	return out
}
