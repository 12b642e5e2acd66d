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

// UnaryInterceptors returns the interceptor chain, outermost first: panic
// recovery, Prometheus gRPC metrics (grpc_server_handled_total and
// grpc_server_handling_seconds), request id, request log, invalid-UTF-8
// refusal (codec.go), default deadline,
// auth, rate limit, idempotency-key check, card-number refusal, page-token
// binding (pagetoken.go), and error conversion. With
// Config.InstrumentationOff the metrics interceptor is left out.
func (s *Service) UnaryInterceptors() []grpc.UnaryServerInterceptor {
	chain := []grpc.UnaryServerInterceptor{s.recoverUnary}
	if !s.cfg.InstrumentationOff {
		chain = append(chain, s.metrics.grpc.unaryInterceptor)
	}
	return append(chain, s.requestIDUnary, s.logUnary,
		s.checkUTF8Unary, s.deadlineUnary, s.authUnary, s.checkIdemKeyUnary, s.refusePANUnary, s.pageTokenUnary, s.errorsUnary)
}

func (s *Service) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = toGRPC(Errorf(KindInternal, "internal_error", "An internal error occurred; it has been logged."))
		}
	}()
	return h(ctx, req)
}

// logUnary writes one structured line per call: method, code, duration and
// account. It never logs request bodies, keys or headers.
func (s *Service) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	holder := &principalHolder{}
	resp, err := h(context.WithValue(ctx, holderKey{}, holder), req)
	st := status.Convert(err)
	level := slog.LevelInfo
	if st.Code() == codes.Internal || st.Code() == codes.Unknown {
		level = slog.LevelError
	}
	if s.log.Enabled(ctx, level) {
		attrs := []any{"method", info.FullMethod, "code", st.Code().String(), "duration_ms", float64(time.Since(start).Microseconds()) / 1000,
			"peer", callPeer(ctx)}
		if p := holder.p; p != nil {
			attrs = append(attrs, "account", p.AccountID, "key_id", p.KeyID, "mode", p.Mode())
		}
		if st.Code() == codes.ResourceExhausted && holder.p != nil {
			// One line per key per second, however many requests it sends.
			ok, n := s.rateLog.allow("grpc:"+holder.p.KeyID, time.Now())
			if !ok {
				return resp, err
			}
			attrs = append(attrs, "count", n)
		}
		if err != nil {
			attrs = append(attrs, "error", st.Message())
		}
		s.log.Log(ctx, level, "rpc", attrs...)
	}
	return resp, err
}

// The auth interceptor runs inside the log interceptor, so it leaves the
// principal in a holder the log interceptor put in the context.
type principalHolder struct{ p *Principal }
type holderKey struct{}

func (s *Service) deadlineUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.DefaultDeadline)
		defer cancel()
	}
	return h(ctx, req)
}

func (s *Service) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if s.publicMethod(info.FullMethod) {
		return h(ctx, req)
	}
	scope, known := methodScopes[info.FullMethod]
	if !known {
		return nil, toGRPC(Errorf(KindForbidden, "method_not_allowed", "%s is not available to API keys.", info.FullMethod))
	}
	p, err := s.auth.authenticate(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	if h, ok := ctx.Value(holderKey{}).(*principalHolder); ok {
		h.p = p
	}
	if !p.Has(scope) {
		return nil, toGRPC(&Error{Kind: KindForbidden, Code: "scope_missing",
			Message: "This API key lacks the " + scope + " scope needed for " + info.FullMethod + "; create a key with `paymentd keys create --scopes " + scope + "`."})
	}
	if ok, wait := s.limits.allow(p.KeyID); !ok {
		s.metrics.rateLimited.Inc()
		return nil, toGRPC(&Error{Kind: KindRateLimited, Code: "rate_limited", RetryAfter: wait,
			Message: "Too many requests for this API key; retry after the delay in Retry-After."})
	}
	return h(withPrincipal(ctx, p), req)
}

// refusePANUnary refuses, before anything runs, a request holding a card
// number (findPAN) or a field its schema does not take (unknownField).
func (s *Service) refusePANUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if field, found := findPAN(m.ProtoReflect()); found {
			return nil, toGRPC(Invalid(field, "card_number_refused",
				"%s looks like a raw card number; paymentd never accepts card numbers. Tokenize the card with your provider and send its payment method token (e.g. pm_card_visa in test mode).", field))
		}
		if e, found := unknownField(m.ProtoReflect()); found {
			return nil, toGRPC(e)
		}
	}
	return h(ctx, req)
}

// errorsUnary is the one place where handler errors become gRPC statuses.
func (s *Service) errorsUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
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
