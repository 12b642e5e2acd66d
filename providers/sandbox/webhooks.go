package sandbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/paymentd/paymentd/providers"
)

// The sandbox's status calls and its webhook format, so that reconciliation
// and inbound provider webhooks can be exercised without a real provider.
//
// A sandbox webhook is a POST of
//
//	{"id":"sbevt_…","type":"payment.captured","created":1770672600,
//	 "data":{"object":"payment","reference":"sb_pay_…","payment_id":"pay_…","status":"captured"}}
//
// with the header Sandbox-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>,
// the secret being Provider.WebhookSecret (DefaultWebhookSecret unless set).
// Timestamps more than WebhookTolerance from the receiver's clock are refused.

// DefaultWebhookSecret signs sandbox webhooks unless Provider.WebhookSecret is set.
// It is public: sandbox webhooks only concern test-mode objects, and every
// claim is confirmed with GetPayment before it is applied.
const DefaultWebhookSecret = "whsec_sandbox_0000000000000000000000000000"

// WebhookSignatureHeader is the header carrying a sandbox webhook's signature.
const WebhookSignatureHeader = "Sandbox-Signature"

// WebhookTolerance is how far a sandbox webhook's timestamp may be from now.
const WebhookTolerance = 5 * time.Minute

func (p *Provider) webhookSecret() string {
	if p.WebhookSecret != "" {
		return p.WebhookSecret
	}
	return DefaultWebhookSecret
}

// sandboxRef is the reference the sandbox gives a payment or refund: its
// paymentd id with an sb_ prefix.
func sandboxRef(id string) string {
	if strings.HasPrefix(id, "sb_") {
		return id
	}
	return "sb_" + id
}

// GetPayment reports a payment's state. Every payment it is asked about (by
// its sb_ reference or, after a timeout, by paymentd's payment id) is
// reported captured, which is what pm_card_timeout's payments eventually
// are — except one that asked for a manual capture, which is authorized
// until it is captured or canceled (Provider).
func (p *Provider) GetPayment(_ context.Context, reference string) (providers.PaymentState, error) {
	ref := sandboxRef(reference)
	if !strings.HasPrefix(ref, "sb_pay_") {
		return providers.PaymentState{}, &providers.Error{Kind: providers.InvalidRequest, Code: "resource_missing",
			Message: "The sandbox has no payment " + reference + "."}
	}
	if p.authorized(ref) {
		return providers.PaymentState{Reference: ref, Status: "authorized"}, nil
	}
	return providers.PaymentState{Reference: ref, Status: "captured"}, nil
}

// GetRefund reports a refund's state: every sandbox refund succeeds.
func (*Provider) GetRefund(_ context.Context, reference string) (providers.RefundState, error) {
	ref := sandboxRef(reference)
	if !strings.HasPrefix(ref, "sb_re_") {
		return providers.RefundState{}, &providers.Error{Kind: providers.InvalidRequest, Code: "resource_missing",
			Message: "The sandbox has no refund " + reference + "."}
	}
	return providers.RefundState{Reference: ref, Status: "succeeded"}, nil
}

// WebhookPayload is the body of a sandbox webhook.
type WebhookPayload struct {
	ID      string      `json:"id"`
	Type    string      `json:"type"` // payment.captured | payment.failed | payment.authorized
	Created int64       `json:"created"`
	Data    WebhookData `json:"data"`
}

// WebhookData is the object a sandbox webhook is about.
type WebhookData struct {
	Object    string `json:"object"`     // payment
	Reference string `json:"reference"`  // the sandbox's reference, sb_pay_…
	PaymentID string `json:"payment_id"` // paymentd's id, pay_…
	Status    string `json:"status"`     // captured | failed | authorized
}

// SignWebhook returns the Sandbox-Signature header value for body sent at t.
func SignWebhook(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// ParseWebhook verifies a sandbox webhook's signature and timestamp and
// parses it. A bad signature or stale timestamp wraps providers.ErrWebhookSignature.
func (p *Provider) ParseWebhook(header http.Header, body []byte, now time.Time) (providers.WebhookEvent, error) {
	if err := p.verify(header.Get(WebhookSignatureHeader), body, now); err != nil {
		return providers.WebhookEvent{}, err
	}
	var pl WebhookPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return providers.WebhookEvent{}, fmt.Errorf("sandbox webhook: %w", err)
	}
	if pl.ID == "" || pl.Type == "" {
		return providers.WebhookEvent{}, fmt.Errorf("sandbox webhook: id and type are required")
	}
	if pl.Data.Object != "payment" {
		return providers.WebhookEvent{}, fmt.Errorf("sandbox webhook: data.object %q is not payment", pl.Data.Object)
	}
	return providers.WebhookEvent{ID: pl.ID, Type: pl.Type, ObjectKind: "payment", Reference: pl.Data.Reference,
		Status: pl.Data.Status, MerchantReference: pl.Data.PaymentID}, nil
}

func (p *Provider) verify(header string, body []byte, now time.Time) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: %s must be t=<unix>,v1=<hex>", providers.ErrWebhookSignature, WebhookSignatureHeader)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return fmt.Errorf("%w: timestamp %s is more than %s from now", providers.ErrWebhookSignature, ts, WebhookTolerance)
	}
	want := webhookMAC(p.webhookSecret(), ts, body)
	ok := false
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: no v1 matches", providers.ErrWebhookSignature)
	}
	return nil
}
