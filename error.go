package paymentd

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error for the caller. Each kind has exactly one gRPC
// code, HTTP status and error type; the service package holds that table,
// because transports are not the domain's business.
type Kind int

// The kinds of error a caller can see.
const (
	KindInternal Kind = iota
	KindInvalid
	KindUnauthenticated
	KindDeclined
	KindForbidden
	KindNotFound
	KindConflict          // the object is not in a state that allows the call
	KindInFlight          // the same idempotency key is still being processed
	KindIdempotency       // the idempotency key was used with a different request
	KindRateLimited       // too many requests for this key
	KindUnavailable       // a dependency is down; retry later
	KindProviderUnsettled // the provider did not answer; the outcome is not known yet
	KindAlreadyExists     // a unique value (e.g. a transaction_reference) is already taken
	KindInsufficientFunds // the balance cannot cover the call (e.g. a payout's total_amount)
)

// Error is a domain error: what went wrong, which parameter, and what to
// change. Its Code is on the wire (snake_case, e.g. amount_too_small).
type Error struct {
	Kind    Kind
	Code    string // snake_case, e.g. amount_too_small
	Message string // says what to change
	Param   string // the request field at fault, if any
	// RetryAfter, for rate limits, says when to try again.
	RetryAfter time.Duration
	// Err is the named error this one is an instance of, for errors.Is
	// (ErrUnexpectedState for a refused transition); nil for most.
	Err error
}

// ErrUnexpectedState is what a transition applied from a status it does not
// start from returns (wrapped in an *Error of KindConflict that names the
// object and says what to do instead).
var ErrUnexpectedState = errors.New("the object's status does not allow the change")

func (e *Error) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Param, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the named error e is an instance of, if any.
func (e *Error) Unwrap() error { return e.Err }

// Invalid is an invalid_request_error about one parameter.
func Invalid(param, code, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

// Errorf builds an error of the given kind.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}
