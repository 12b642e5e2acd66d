// Package sandbox is the built-in test provider: it settles payments
// in-process, with no network and no credentials, according to the test
// payment method used.
package sandbox

import (
	"context"
	"strings"
	"sync"

	"github.com/paymentd/paymentd/providers"
)

// Name is the provider's name in configuration and on objects.
const Name = "sandbox"

// The test payment methods and what they do.
const (
	CardVisa              = "pm_card_visa"               // succeeds
	CardMastercard        = "pm_card_mastercard"         // succeeds
	CardDeclined          = "pm_card_declined"           // declined: card_declined
	CardInsufficientFunds = "pm_card_insufficient_funds" // declined: insufficient_funds
	// CardTimeout never answers: Authorize waits until its deadline and
	// returns an Unknown error, so the payment becomes unknown; GetPayment
	// then reports it captured (authorized, if it asked for a manual
	// capture), and the reconciler settles it as succeeded (requires_capture).
	CardTimeout = "pm_card_timeout"
)

// Methods lists every test payment method, for documentation and errors.
var Methods = []string{CardVisa, CardMastercard, CardDeclined, CardInsufficientFunds, CardTimeout}

// Provider is the sandbox provider. It keeps almost no state: paymentd's
// own records are the only record of sandbox payments, except for the
// pm_card_timeout payments that asked for a manual capture, which it
// remembers as authorized, not captured, until they are captured or
// canceled (GetPayment): in memory, so a restart of paymentd forgets them
// and they are then reported captured, as every other payment is.
type Provider struct {
	// WebhookSecret signs the sandbox's webhooks; empty means DefaultWebhookSecret.
	WebhookSecret string

	mu            sync.Mutex
	authorizedFor map[string]bool // sandbox reference (sb_pay_…) → authorized, not captured
}

// maxAuthorized bounds what the sandbox remembers (test mode only).
const maxAuthorized = 10_000

var (
	_ providers.Payments      = (*Provider)(nil)
	_ providers.StatusChecker = (*Provider)(nil)
	_ providers.Provider      = (*Provider)(nil)
	_ providers.AlwaysAnswers = (*Provider)(nil)
	_ providers.TestMethods   = (*Provider)(nil)
	// Payouts, which paymentd moves along itself (payout_processor.go).
	_ providers.RecipientRejecter = (*Provider)(nil)
	// Reconciliation and inbound webhooks (webhooks.go).
	_ providers.PaymentStatusGetter = (*Provider)(nil)
	_ providers.RefundStatusGetter  = (*Provider)(nil)
	_ providers.WebhookParser       = (*Provider)(nil)
)

// New returns a sandbox provider.
func New() *Provider { return &Provider{} }

// TestMethods returns Methods, the test cards of paymentd's payment page.
func (*Provider) TestMethods() []string { return Methods }

// AlwaysAnswers reports true: the sandbox runs inside paymentd and moves no
// real money, so each of its answers is heard (a payment takes one write).
func (*Provider) AlwaysAnswers() bool { return true }

// Name returns "sandbox".
func (*Provider) Name() string { return Name }

// Authorize succeeds or declines according to req.PaymentMethod. The
// provider's reference is derived from paymentd's id, so retries are idempotent.
func (p *Provider) Authorize(ctx context.Context, req providers.PaymentRequest) (providers.PaymentResult, error) {
	switch req.PaymentMethod {
	case CardVisa, CardMastercard:
		return providers.PaymentResult{Reference: "sb_" + req.IdempotencyKey, Captured: req.Capture}, nil
	case CardDeclined:
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Declined, Code: "card_declined",
			Message: "The card was declined. Ask the customer for another payment method."}
	case CardInsufficientFunds:
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Declined, Code: "insufficient_funds",
			Message: "The card has insufficient funds. Ask the customer for another payment method."}
	case CardTimeout:
		if !req.Capture {
			p.mu.Lock()
			if p.authorizedFor == nil || len(p.authorizedFor) >= maxAuthorized {
				p.authorizedFor = map[string]bool{}
			}
			p.authorizedFor[sandboxRef(req.IdempotencyKey)] = true
			p.mu.Unlock()
		}
		<-ctx.Done()
		return providers.PaymentResult{}, &providers.Error{Kind: providers.Unknown, Code: "provider_timeout",
			Message: "The sandbox did not answer before the deadline (pm_card_timeout); the payment will be reconciled."}
	}
	return providers.PaymentResult{}, &providers.Error{Kind: providers.InvalidRequest, Code: "payment_method_invalid",
		Param: "payment_method", Message: "Unknown sandbox payment method; use one of pm_card_visa, pm_card_mastercard, pm_card_declined, pm_card_insufficient_funds, pm_card_timeout."}
}

// Capture always succeeds in the sandbox.
func (p *Provider) Capture(_ context.Context, reference string, _ int64, _ string) error {
	p.settled(reference)
	return nil
}

// Cancel always succeeds in the sandbox.
func (p *Provider) Cancel(_ context.Context, reference string) error {
	p.settled(reference)
	return nil
}

// settled forgets a payment remembered as authorized once it is captured or
// canceled.
func (p *Provider) settled(reference string) {
	p.mu.Lock()
	delete(p.authorizedFor, sandboxRef(reference))
	p.mu.Unlock()
}

// authorized reports whether the payment is remembered as authorized, not
// captured.
func (p *Provider) authorized(reference string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.authorizedFor[sandboxRef(reference)]
}

// Refund always succeeds in the sandbox.
func (*Provider) Refund(_ context.Context, req providers.RefundRequest) (providers.RefundResult, error) {
	return providers.RefundResult{Reference: "sb_" + req.IdempotencyKey}, nil
}

// CheckStatus always reports the sandbox as reachable.
func (*Provider) CheckStatus(context.Context) error { return nil }

// TronZeroAddress is base58check(0x41 + 20 zero bytes), a valid Tron
// address the sandbox always rejects as a payout recipient.
const TronZeroAddress = "T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb"

// RejectsRecipient reports whether the sandbox rejects a payout to account:
// an all-zero wallet or bank account number (e.g. "0000000000"), the Tron
// zero address TronZeroAddress or the EVM zero address
// 0x0000000000000000000000000000000000000000. It lets callers test
// rejections.
func (*Provider) RejectsRecipient(account string) (string, bool) {
	digits := strings.TrimPrefix(account, "+")
	zero := digits != "" && strings.Trim(digits, "0") == ""
	if !zero && account != TronZeroAddress && !strings.EqualFold(account, "0x"+strings.Repeat("0", 40)) {
		return "", false
	}
	return "The sandbox rejects payouts to the test recipient account " + account +
		"; use any other valid account to see a payout complete.", true
}
