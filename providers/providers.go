// Package providers defines what paymentd needs from a payment provider, one
// small interface per capability, in neutral types. Each adapter lives in its
// own package and imports only this one.
package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
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
	// Metadata is the caller's metadata, for providers whose API carries
	// key-value pairs (aikdata); adapters add their own keys beside it.
	Metadata map[string]string
	Livemode bool
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
	// Reason is the caller's reason (duplicate, fraudulent,
	// requested_by_customer), sent where the provider takes one.
	Reason string
	// Metadata is the caller's metadata, sent where the provider takes it.
	Metadata map[string]string
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

// CaptureRequest asks a provider to capture an authorized payment.
type CaptureRequest struct {
	// IdempotencyKey is paymentd's key for this capture (derived from the
	// payment's id, so that a retry and the reconciler send the same one);
	// adapters send it upstream where the provider takes one.
	IdempotencyKey string
	Reference      string // the provider's authorization
	Amount         int64
	Currency       string
}

// CaptureReferencer is implemented by payments providers whose capture
// creates a new provider object (Aslan's confirm answers a payment id
// distinct from the authorization's): CaptureReference captures like
// Capture, sending req.IdempotencyKey upstream, and returns the reference
// later calls, such as refunds, must use. Sending the same request again is
// safe: it answers the capture already made instead of making another.
type CaptureReferencer interface {
	CaptureReference(ctx context.Context, req CaptureRequest) (string, error)
}

// WholeCapturer is implemented by payments providers that can capture only
// the whole authorized amount (Aslan's confirm takes no amount). paymentd
// refuses a partial capture on such a connection before any call, since the
// provider would charge the whole authorization.
type WholeCapturer interface {
	CapturesWholeAuthorizationOnly() bool
}

// AlwaysAnswers is implemented by providers that answer every call they
// are given, such as the in-process sandbox: money cannot move there
// without paymentd hearing of it. Every other provider is across a network
// whose answer may be lost after the provider has acted.
type AlwaysAnswers interface {
	AlwaysAnswers() bool
}

// MayMoveMoneyUnanswered reports whether money may move at p without
// paymentd getting the answer: true unless p always answers. paymentd
// records a call to such a provider before making it (the boundary rule),
// so that a lost answer leaves a record the reconciler settles; for a
// provider that always answers, the one write of its answer suffices.
func MayMoveMoneyUnanswered(p any) bool {
	a, ok := p.(AlwaysAnswers)
	return !ok || !a.AlwaysAnswers()
}

// TestMethods is implemented by test providers whose payment methods are
// fixed tokens (the sandbox's pm_card_visa, …): paymentd's own payment page
// offers them as the cards a customer can try, the first as the default.
type TestMethods interface {
	TestMethods() []string
}

// RecipientRejecter is implemented by test providers whose payouts paymentd
// moves along itself (the sandbox's: pending, then processing, then
// completed) and which always reject some test recipients, so that callers
// can see a rejection: RejectsRecipient reports whether a payout to account
// ends rejected, and the reason the payout then carries.
type RecipientRejecter interface {
	RejectsRecipient(account string) (reason string, rejected bool)
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

// PaymentState is a provider's current view of a payment, for reconciliation.
type PaymentState struct {
	Reference string
	// Status is one of: authorized, captured (succeeded), failed, pending.
	Status   string
	Amount   int64
	Currency string
	// Reason, if set, says why a failed payment failed.
	Reason string
}

// CodeAbsent is the code of a provider's definite answer to a read of one
// object by reference that it holds none under that reference (a 404 to
// GET …/{reference}), as opposed to a search that may not list the object
// yet. The reconciler settles a payment whose creation went unanswered as
// failed once its provider answers so to a status call that is not the
// first and comes long enough after the creation that no request of it can
// still be in flight (service/reconciler.go).
const CodeAbsent = "provider_object_absent"

// Codes of a capture (confirm) whose outcome the provider's answer leaves
// unknown and that asking again cannot settle: the provider says the
// authorization was already charged without naming the payment
// (CodeAlreadyConfirmed), or refuses the confirm in a way that does not say
// whether an earlier one charged (CodeConfirmRefusedUnclear). The
// reconciler makes each an operator item (service/boundary.go).
const (
	CodeAlreadyConfirmed      = "authorization_already_confirmed"
	CodeConfirmRefusedUnclear = "authorization_confirm_refused_unclear"
)

// Absent reports whether err is a provider's definite answer that it holds
// no object under the reference read (CodeAbsent).
func Absent(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Code == CodeAbsent
}

// PaymentStatusGetter asks a provider for a payment's current state, so the
// reconciler can settle payments left unknown. reference is the provider's
// id for the payment or, when the provider never answered with one (a
// timed-out Authorize), paymentd's payment id: the IdempotencyKey it sent.
type PaymentStatusGetter interface {
	GetPayment(ctx context.Context, reference string) (PaymentState, error)
}

// RefundState is a provider's current view of a refund, for reconciliation.
type RefundState struct {
	Reference string
	// Status is one of: succeeded, failed, pending.
	Status string
}

// RefundStatusGetter asks a provider for a refund's current state, so the
// reconciler can settle refunds left pending. reference is paymentd's
// refund id: the IdempotencyKey of the RefundRequest.
type RefundStatusGetter interface {
	GetRefund(ctx context.Context, reference string) (RefundState, error)
}

// InvoiceRequest asks a provider to create a hosted invoice.
type InvoiceRequest struct {
	IdempotencyKey string // paymentd's invoice id
	Reference      string // the caller's transaction_reference
	Amount         int64
	Currency       string
	Network        string // crypto only, e.g. tron
	CustomerName   string
	CustomerEmail  string
	CustomerID     string
	Description    string
	CallbackURL    string
	ExpiresAt      time.Time
	Livemode       bool
}

// Receipt is one incoming transfer towards an invoice (crypto invoices may
// have several).
type Receipt struct {
	TxnID         string
	Amount        int64
	Confirmations int
	Time          time.Time
}

// InvoiceState is a provider's view of an invoice.
type InvoiceState struct {
	Reference             string // the provider's invoice id
	PaymentURL            string
	Status                string // open | partially_paid | paid | expired | canceled
	Amount                int64
	Currency              string
	AmountPaid            int64
	Receipts              []Receipt
	DepositAddress        string
	ConfirmationsRequired int
	ExpiresAt             time.Time
}

// Invoices is the hosted-invoice capability.
type Invoices interface {
	CreateInvoice(ctx context.Context, req InvoiceRequest) (InvoiceState, error)
	GetInvoice(ctx context.Context, reference string) (InvoiceState, error)
}

// PayoutMethod is a way to pay money out, with its limits and fee. The fee is
// FeeFixed plus FeeBasisPoints/10000 of the amount, in minor units.
type PayoutMethod struct {
	ID             string
	Name           string
	Type           string // mobile_banking | bank_transfer | crypto
	Currency       string
	MinAmount      int64
	MaxAmount      int64
	FeeFixed       int64
	FeeBasisPoints int64
	AccountFormat  string // a hint for recipient_account
}

// PayoutRequest asks a provider to send money to a recipient.
type PayoutRequest struct {
	IdempotencyKey   string // paymentd's payout id
	Reference        string // the caller's transaction_reference
	MethodID         string
	Amount           int64
	Currency         string
	RecipientName    string
	RecipientAccount string
	Description      string
}

// DescriptionWithReference is the description to send with a payout whose
// own reference at the provider is paymentd's payout id: the caller's
// transaction reference, then the caller's description if any, so that
// the provider's dashboard still shows the caller's reference.
func (r PayoutRequest) DescriptionWithReference() string {
	switch {
	case r.Reference == "":
		return r.Description
	case r.Description == "":
		return r.Reference
	}
	return r.Reference + ": " + r.Description
}

// PayoutState is a provider's view of a payout.
type PayoutState struct {
	Reference string
	Status    string // pending | processing | completed | rejected | cancelled
	Reason    string // why it was rejected
	// Amount, Fee and TotalAmount are what the provider reports, in minor
	// units (0 when it does not say); adapters refuse answers whose amount
	// differs from the request.
	Amount, Fee, TotalAmount int64
}

// Payouts is the payout capability.
type Payouts interface {
	PayoutMethods(ctx context.Context) ([]PayoutMethod, error)
	CreatePayout(ctx context.Context, req PayoutRequest) (PayoutState, error)
	GetPayout(ctx context.Context, reference string) (PayoutState, error)
}

// WebhookEvent is an inbound provider webhook, verified and parsed.
type WebhookEvent struct {
	ID         string // the provider's event id, for deduplication
	Type       string // the provider's event type, e.g. payment.completed
	ObjectKind string // payment | invoice | payout
	Reference  string // the provider's id of the object
	Status     string // the status the webhook claims (to be confirmed by a status call)
	// MerchantReference is paymentd's id for the object (the IdempotencyKey
	// or transaction reference it sent), when the webhook carries it.
	MerchantReference string
}

// ErrWebhookSignature is returned (wrapped) by ParseWebhook when a webhook's
// signature or timestamp does not verify; paymentd answers 401.
var ErrWebhookSignature = errors.New("providers: webhook signature does not verify")

// WebhookParser verifies and parses a provider's inbound webhooks.
type WebhookParser interface {
	ParseWebhook(header http.Header, body []byte, now time.Time) (WebhookEvent, error)
}

// CaptureKey is the upstream idempotency key of the capture of paymentd's
// payment id: one per payment, so that a retried capture and the
// reconciler re-send the very same request.
func CaptureKey(paymentID string) string { return paymentID + "-capture" }

// InvoiceFinder is implemented by invoice providers that can find an
// invoice by the caller's transaction reference (aspayds' GET /payment/{id}
// takes it), so that a create whose answer was lost is found instead of
// made again. found is false only when the provider definitely has none.
type InvoiceFinder interface {
	FindInvoice(ctx context.Context, req InvoiceRequest) (st InvoiceState, found bool, err error)
}
