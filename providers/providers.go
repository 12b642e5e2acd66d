// Package providers defines what paymentd needs from a payment provider, one
// small interface per capability, in neutral types. Each adapter lives in its
// own package and imports only this one.
package providers

import (
	"context"
	"errors"
	"fmt"
)

// PaymentRequest asks a provider to authorize (and possibly capture) a payment.
type PaymentRequest struct {
	// IdempotencyKey is paymentd's payment id; adapters send it upstream
	// where the provider supports idempotency keys.
	IdempotencyKey string
	Amount         int64 // minor units
	Currency       string
	PaymentMethod  string
	Capture        bool // capture at once (automatic capture)
	Description    string
	Livemode       bool
}

// PaymentResult is what the provider did with a PaymentRequest that it answered.
type PaymentResult struct {
	Reference string // the provider's id for the payment
	Captured  bool   // true when the money was captured, false when only authorized
}

// RefundRequest asks a provider to refund part or all of a captured payment.
type RefundRequest struct {
	IdempotencyKey string // paymentd's refund id
	Reference      string // the provider's payment id
	Amount         int64
	Currency       string
}

// RefundResult is the provider's answer to a RefundRequest.
type RefundResult struct {
	Reference string
}

// Payments is the card-style payments capability.
type Payments interface {
	// Authorize authorizes, and with req.Capture captures, a payment.
	Authorize(ctx context.Context, req PaymentRequest) (PaymentResult, error)
	// Capture captures amount of an authorized payment; the rest is released.
	Capture(ctx context.Context, reference string, amount int64, currency string) error
	// Cancel releases an authorized payment.
	Cancel(ctx context.Context, reference string) error
	// Refund returns captured money.
	Refund(ctx context.Context, req RefundRequest) (RefundResult, error)
}

// StatusChecker reports whether a provider can be reached.
type StatusChecker interface {
	CheckStatus(ctx context.Context) error
}

// Provider is one configured provider: its name and the capabilities it has.
type Provider interface {
	Name() string
}

// ErrorKind says what a provider error means for the payment.
type ErrorKind int

// Provider error kinds.
const (
	// Declined: the provider answered and refused; no money moved.
	Declined ErrorKind = iota + 1
	// InvalidRequest: the provider rejected the request's content.
	InvalidRequest
	// Unavailable: the provider failed before any money could move; another
	// provider may be tried.
	Unavailable
	// Unknown: the provider did not answer (timeout, dropped connection); money
	// may or may not have moved, and the payment must be reconciled.
	Unknown
)

// Error is an error reported by a provider adapter.
type Error struct {
	Kind    ErrorKind
	Code    string // e.g. card_declined, insufficient_funds
	Message string
	Param   string
}

func (e *Error) Error() string { return fmt.Sprintf("provider: %s: %s", e.Code, e.Message) }

// KindOf returns the kind of a provider error, 0 for nil, or Unknown for any
// other error: an error that is not understood must never be taken to mean
// "no money moved".
func KindOf(err error) ErrorKind {
	if err == nil {
		return 0
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return Unknown
}
