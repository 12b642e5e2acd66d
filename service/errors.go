// Package service implements paymentd's gRPC services: the domain rules for
// payments and refunds, authentication, idempotency, rate limits and the
// error model shared by gRPC and REST.
package service

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/store"
)

// Error, Kind and the kinds are the domain's (package paymentd); the names
// stay here too because every handler of this package builds errors. This
// file holds what is transport: the table that gives each kind its gRPC
// code, HTTP status and error type, and the conversion to a gRPC status.
type (
	Error = paymentd.Error
	Kind  = paymentd.Kind
)

// The kinds of error a caller can see (paymentd.Kind*).
const (
	KindInternal          = paymentd.KindInternal
	KindInvalid           = paymentd.KindInvalid
	KindUnauthenticated   = paymentd.KindUnauthenticated
	KindDeclined          = paymentd.KindDeclined
	KindForbidden         = paymentd.KindForbidden
	KindNotFound          = paymentd.KindNotFound
	KindConflict          = paymentd.KindConflict
	KindInFlight          = paymentd.KindInFlight
	KindIdempotency       = paymentd.KindIdempotency
	KindRateLimited       = paymentd.KindRateLimited
	KindUnavailable       = paymentd.KindUnavailable
	KindProviderUnsettled = paymentd.KindProviderUnsettled
	KindAlreadyExists     = paymentd.KindAlreadyExists
	KindInsufficientFunds = paymentd.KindInsufficientFunds
)

// Invalid is an invalid_request_error about one parameter (paymentd.Invalid).
func Invalid(param, code, format string, args ...any) *Error {
	return paymentd.Invalid(param, code, format, args...)
}

// Errorf builds an error of the given kind (paymentd.Errorf).
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return paymentd.Errorf(kind, code, format, args...)
}

type kindInfo struct {
	code     codes.Code
	http     int
	errType  string
	fallback string // code used when the error has none of its own
}

var kinds = map[Kind]kindInfo{
	KindInternal:          {codes.Internal, http.StatusInternalServerError, "api_error", "internal_error"},
	KindInvalid:           {codes.InvalidArgument, http.StatusBadRequest, "invalid_request_error", "parameter_invalid"},
	KindUnauthenticated:   {codes.Unauthenticated, http.StatusUnauthorized, "authentication_error", "api_key_invalid"},
	KindDeclined:          {codes.FailedPrecondition, http.StatusPaymentRequired, "card_error", "card_declined"},
	KindForbidden:         {codes.PermissionDenied, http.StatusForbidden, "permission_error", "scope_missing"},
	KindNotFound:          {codes.NotFound, http.StatusNotFound, "invalid_request_error", "resource_missing"},
	KindConflict:          {codes.FailedPrecondition, http.StatusConflict, "invalid_request_error", "unexpected_state"},
	KindInFlight:          {codes.Aborted, http.StatusConflict, "idempotency_error", "idempotency_key_in_use"},
	KindIdempotency:       {codes.InvalidArgument, http.StatusUnprocessableEntity, "idempotency_error", "idempotency_key_reused"},
	KindRateLimited:       {codes.ResourceExhausted, http.StatusTooManyRequests, "rate_limit_error", "rate_limited"},
	KindUnavailable:       {codes.Unavailable, http.StatusServiceUnavailable, "api_error", "service_unavailable"},
	KindProviderUnsettled: {codes.Unavailable, http.StatusServiceUnavailable, "api_error", "provider_unavailable"},
	KindAlreadyExists:     {codes.AlreadyExists, http.StatusConflict, "invalid_request_error", "resource_already_exists"},
	KindInsufficientFunds: {codes.FailedPrecondition, http.StatusPaymentRequired, "balance_error", "insufficient_funds"},
}

// grpcStatus converts a domain error to a gRPC status carrying ErrorInfo
// (reason is the code in UPPER_SNAKE, metadata has type, code and param),
// BadRequest for a parameter error, and RetryInfo for rate limits. Kinds
// that the table does not know are internal errors.
func grpcStatus(e *Error) *status.Status {
	info, ok := kinds[e.Kind]
	if !ok {
		info = kinds[KindInternal]
	}
	code := e.Code
	if code == "" {
		code = info.fallback
	}
	// A message or param may quote a caller's input: never a card number
	// or a secret.
	msg, param := redactText(e.Message), redactParam(e.Param)
	st := status.New(info.code, msg)
	md := map[string]string{"type": info.errType, "code": code}
	if param != "" {
		md["param"] = param
	}
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: strings.ToUpper(code), Domain: "paymentd", Metadata: md}}
	if param != "" && e.Kind == KindInvalid {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: param, Description: msg, Reason: strings.ToUpper(code)},
		}})
	}
	if e.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		return st
	}
	return withDetails
}

// toGRPC turns any error a handler returns into a gRPC status error: domain
// errors keep their details, anything else becomes an internal error whose
// cause is logged by the caller and never shown.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return grpcStatus(de).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, store.ErrFull):
		return grpcStatus(&Error{Kind: KindUnavailable, Code: "store_unavailable", RetryAfter: 5 * time.Second,
			Message: "paymentd could not store this change because its database or disk is full; nothing was recorded. Retry later (with the same idempotency key, if the request had one)."}).Err()
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "The request took longer than its deadline; retry it with the same idempotency key.")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "The request was canceled by the caller.")
	}
	return grpcStatus(Errorf(KindInternal, "internal_error", "An internal error occurred; it has been logged. Retry the request, with the same idempotency key.")).Err()
}

// HTTPStatus gives the REST status for a gRPC status produced by Error: the
// error type decides where it differs from the gRPC code's usual mapping.
func HTTPStatus(code codes.Code, errType string) int {
	for _, k := range kinds {
		if k.code == code && k.errType == errType {
			return k.http
		}
	}
	switch code {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted, codes.FailedPrecondition:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	case codes.Unimplemented:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}
