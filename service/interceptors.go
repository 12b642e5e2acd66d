package service

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// methodScopes gives the scope each authenticated method needs. A method
// missing from this table and not public is refused, so a new RPC cannot be
// exposed without deciding who may call it.
var methodScopes = map[string]string{
	pb.PaymentsService_CreatePayment_FullMethodName:  ScopeWrite,
	pb.PaymentsService_CapturePayment_FullMethodName: ScopeWrite,
	pb.PaymentsService_CancelPayment_FullMethodName:  ScopeWrite,
	pb.PaymentsService_CreateRefund_FullMethodName:   ScopeWrite,
	pb.PaymentsService_GetPayment_FullMethodName:     ScopeRead,
	pb.PaymentsService_ListPayments_FullMethodName:   ScopeRead,
	pb.PaymentsService_GetRefund_FullMethodName:      ScopeRead,
	pb.PaymentsService_ListRefunds_FullMethodName:    ScopeRead,
	// Payouts move money out: creating and cancelling them needs the payouts scope.
	pb.PayoutsService_ListPayoutMethods_FullMethodName: ScopeRead,
	pb.PayoutsService_CreatePayout_FullMethodName:      ScopePayouts,
	pb.PayoutsService_GetPayout_FullMethodName:         ScopeRead,
	pb.PayoutsService_BatchGetPayouts_FullMethodName:   ScopeRead,
	pb.PayoutsService_ListPayouts_FullMethodName:       ScopeRead,
	pb.PayoutsService_CancelPayout_FullMethodName:      ScopePayouts,
	pb.PayoutsService_GetBalance_FullMethodName:        ScopeRead,
	// Invoices. Receipts are a test-mode helper (live keys get NOT_FOUND).
	pb.InvoicesService_CreateInvoice_FullMethodName:     ScopeWrite,
	pb.InvoicesService_GetInvoice_FullMethodName:        ScopeRead,
	pb.InvoicesService_BatchGetInvoices_FullMethodName:  ScopeRead,
	pb.InvoicesService_ListInvoices_FullMethodName:      ScopeRead,
	pb.InvoicesService_CancelInvoice_FullMethodName:     ScopeWrite,
	pb.InvoicesService_RecordTestReceipt_FullMethodName: ScopeWrite,
	// Events and webhooks. Signing secrets are shown to write keys only.
	pb.EventsService_ListEvents_FullMethodName:                 ScopeRead,
	pb.EventsService_GetEvent_FullMethodName:                   ScopeRead,
	pb.EventsService_RedeliverEvent_FullMethodName:             ScopeWrite,
	pb.EventsService_CreateWebhookEndpoint_FullMethodName:      ScopeWrite,
	pb.EventsService_ListWebhookEndpoints_FullMethodName:       ScopeRead,
	pb.EventsService_DeleteWebhookEndpoint_FullMethodName:      ScopeWrite,
	pb.EventsService_RotateWebhookSecret_FullMethodName:        ScopeWrite,
	pb.EventsService_GetAccountWebhookSecret_FullMethodName:    ScopeWrite,
	pb.EventsService_RotateAccountWebhookSecret_FullMethodName: ScopeWrite,
}

// publicMethod reports methods that need no API key: status, health,
// reflection and any configured public service.
func (s *Service) publicMethod(full string) bool {
	if full == pb.StatusService_GetStatus_FullMethodName ||
		strings.HasPrefix(full, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(full, "/grpc.reflection.") {
		return true
	}
	for _, svc := range s.cfg.PublicServices {
		if strings.HasPrefix(full, "/"+svc+"/") {
			return true
		}
	}
	return false
}

// UnaryInterceptor returns paymentd's interceptor chain as one
// interceptor. Its steps, outermost first: panic recovery, Prometheus gRPC
// metrics (grpc_server_handled_total, grpc_server_handling_seconds, …:
// grpcmetrics.go), request id (requestid.go), request log, invalid-UTF-8
// refusal (codec.go), default deadline, auth and rate limit, idempotency-key
// check (idemkey.go), card-number and unknown-field refusal, page-token
// binding (pagetoken.go), and error conversion. With
// Config.InstrumentationOff the metrics step is left out.
//
// One function, not grpc-go's chain of eleven interceptors: the chain
// allocates a handler closure per interceptor on every call and adds a call
// frame for each, where most of the steps are a check before the handler.
func (s *Service) UnaryInterceptor() grpc.UnaryServerInterceptor { return s.unary }

func (s *Service) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	var m *methodMetrics
	if !s.metrics.off {
		m = s.metrics.grpc.begin(info.FullMethod)
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, toGRPC(Errorf(KindInternal, "internal_error", "An internal error occurred; it has been logged."))
		}
		if m != nil {
			m.end(s.metrics.grpc, err, start)
		}
	}()
	ctx = s.withRequestID(ctx)
	var p *Principal
	resp, err = s.checkedCall(ctx, req, info, h, &p)
	s.logCall(ctx, info, start, p, err)
	return resp, err
}

// checkedCall runs the steps between the request log and the handler. It
// leaves the caller's principal in *who once known, for the log line.
func (s *Service) checkedCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler, who **Principal) (any, error) {
	msg, _ := req.(proto.Message)
	if msg != nil {
		if err := refuseMarked(msg); err != nil {
			return nil, toGRPC(err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.DefaultDeadline)
		defer cancel()
	}
	ctx, err := s.authorize(ctx, info, who)
	if err != nil {
		return nil, toGRPC(err)
	}
	// ValueFromIncomingContext reads without copying the whole metadata.
	if err := checkIdempotencyKey(metadata.ValueFromIncomingContext(ctx, idemKeyMetadata)); err != nil {
		return nil, toGRPC(err)
	}
	if msg == nil {
		return s.handle(ctx, req, info, h)
	}
	if err := refuseCardsAndUnknownFields(msg.ProtoReflect()); err != nil {
		return nil, toGRPC(err)
	}
	return s.pagedCall(ctx, msg, info, h)
}

// logCall writes one structured line per call: method, code, duration and
// account. It never logs request bodies, keys or headers.
func (s *Service) logCall(ctx context.Context, info *grpc.UnaryServerInfo, start time.Time, p *Principal, err error) {
	st := status.Convert(err)
	level := slog.LevelInfo
	if st.Code() == codes.Internal || st.Code() == codes.Unknown {
		level = slog.LevelError
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := []any{"method", info.FullMethod, "code", st.Code().String(), "duration_ms", float64(time.Since(start).Microseconds()) / 1000,
		"peer", callPeer(ctx)}
	if p != nil {
		attrs = append(attrs, "account", p.AccountID, "key_id", p.KeyID, "mode", p.Mode())
	}
	if st.Code() == codes.ResourceExhausted && p != nil {
		// One line per key per second, however many requests it sends.
		ok, n := s.rateLog.allow("grpc:"+p.KeyID, time.Now())
		if !ok {
			return
		}
		attrs = append(attrs, "count", n)
	}
	if err != nil {
		attrs = append(attrs, "error", st.Message())
	}
	s.log.Log(ctx, level, "rpc", attrs...)
}

// authorize authenticates the call's API key, checks that it has the
// method's scope and is within its rate limit, and returns ctx carrying the
// principal. Public methods need no key.
func (s *Service) authorize(ctx context.Context, info *grpc.UnaryServerInfo, who **Principal) (context.Context, error) {
	if s.publicMethod(info.FullMethod) {
		return ctx, nil
	}
	scope, known := methodScopes[info.FullMethod]
	if !known {
		return nil, Errorf(KindForbidden, "method_not_allowed", "%s is not available to API keys.", info.FullMethod)
	}
	p, err := s.auth.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	*who = p
	if !p.Has(scope) {
		return nil, &Error{Kind: KindForbidden, Code: "scope_missing",
			Message: "This API key lacks the " + scope + " scope needed for " + info.FullMethod + "; create a key with `paymentd keys create --scopes " + scope + "`."}
	}
	if ok, wait := s.limits.allow(p.KeyID); !ok {
		s.metrics.rateLimited.Inc()
		return nil, &Error{Kind: KindRateLimited, Code: "rate_limited", RetryAfter: wait,
			Message: "Too many requests for this API key; retry after the delay in Retry-After."}
	}
	return withPrincipal(ctx, p), nil
}

// refuseCardsAndUnknownFields refuses, before anything runs, a request
// holding a card number or U+0000 (findRefused) or a field its schema does
// not take (unknownField).
func refuseCardsAndUnknownFields(m protoreflect.Message) error {
	switch field, why := findRefused(m); why {
	case refusedCardNumber:
		return Invalid(field, "card_number_refused",
			"%s looks like a raw card number; paymentd never accepts card numbers. Tokenize the card with your provider and send its payment method token (e.g. pm_card_visa in test mode).", field)
	case refusedNUL:
		return Invalid(field, "parameter_invalid",
			"%s contains a NUL character (U+0000), which paymentd does not store; remove it.", field)
	}
	if e, found := unknownField(m); found {
		return e
	}
	return nil
}

// handle runs the handler; it is the one place where handler errors become
// gRPC statuses.
func (s *Service) handle(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		var de *Error
		if _, isStatus := status.FromError(err); !errors.As(err, &de) && !isStatus && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "internal error", "method", info.FullMethod, "error", err.Error())
		}
		return nil, toGRPC(err)
	}
	return resp, nil
}

// unknownField finds the first field of m, or of a message inside it, that
// the request's schema does not take: a field number this server does not
// know (a client built from a newer or another API), or a known field sent
// with another wire type (a string field sent as a number), which protobuf
// keeps aside instead of refusing. REST refuses unknown fields as well.
func unknownField(m protoreflect.Message) (*Error, bool) {
	if raw := m.GetUnknown(); len(raw) > 0 {
		num, typ, _ := protowire.ConsumeTag(raw)
		if fd := m.Descriptor().Fields().ByNumber(num); fd != nil {
			return Invalid(string(fd.Name()), "invalid_request_body",
				"%s (field %d) was sent with protobuf wire type %d, which is not that of a %s field; send it as the API's proto declares.", fd.Name(), num, typ, fd.Kind()), true
		}
		return Invalid("", "parameter_unknown",
			"The request has field number %d, which %s does not have; build the client from paymentd's protos of this version.", num, m.Descriptor().FullName()), true
	}
	// Only message fields can hold more: walk the descriptor's message
	// fields that are set, not every field through Range (which boxes
	// each value and allocates its closure on every call).
	var out *Error
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len() && out == nil; i++ {
		fd := fields.Get(i)
		if fd.Kind() != protoreflect.MessageKind || !m.Has(fd) { // a map's entries are messages too
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					out, _ = unknownField(mv.Message())
					return out == nil
				})
			}
		case fd.IsList():
			for j := 0; j < v.List().Len() && out == nil; j++ {
				out, _ = unknownField(v.List().Get(j).Message())
			}
		default:
			out, _ = unknownField(v.Message())
			if out != nil && out.Param != "" {
				out.Param = string(fd.Name()) + "." + out.Param
			}
		}
	}
	return out, out != nil
}
