package service

import (
	"context"
	"log/slog"
	"net"
	"strings"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// RequestIDHeader carries a request's id: callers may send one, and every
// HTTP response and gRPC response header has it.
const RequestIDHeader = "X-Request-Id"

// PrefixRequest starts the ids paymentd makes for requests.
const PrefixRequest = "req_"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the id of the request ctx belongs to, if any. Log
// lines written with a *Context method of the service's logger get it as
// "request_id" by themselves.
func RequestIDFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok && id != ""
}

// requestID returns the caller's id when it is well formed — 1 to 128
// characters among letters, digits and - _ . : / + = — and holds no card
// number (it goes into every log line), or a new req_ id otherwise.
func requestID(caller string) string {
	if len(caller) == 0 || len(caller) > 128 {
		return NewID(PrefixRequest)
	}
	for i := 0; i < len(caller); i++ {
		c := caller[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:/+=", c) >= 0) {
			return NewID(PrefixRequest)
		}
	}
	if containsPAN(caller) {
		return NewID(PrefixRequest)
	}
	return caller
}

// withRequestID gives a gRPC call its request id (the caller's
// x-request-id when well formed; the gateway forwards the REST request's),
// returns it in the x-request-id response header and puts it in the context
// for the log lines and spans of the call.
func (s *Service) withRequestID(ctx context.Context) context.Context {
	var caller string
	// ValueFromIncomingContext reads without copying the whole metadata.
	if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) > 0 {
		caller = v[0]
	}
	id := requestID(caller)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attrRequestID.String(id))
	}
	return WithRequestID(ctx, id)
}

// callPeer is the address a gRPC call came from: the client's, or for a REST
// call through the loopback gateway, the HTTP client's that the gateway
// forwarded. The gateway appends that address to any X-Forwarded-For the
// HTTP client sent, so only the last entry is the gateway's word; it is
// logged only if it is an IP address (a client can write anything before it).
func callPeer(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	addr := p.Addr.String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			if v := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for"); len(v) > 0 {
				last := strings.TrimSpace(v[len(v)-1][strings.LastIndexByte(v[len(v)-1], ',')+1:])
				if ip := net.ParseIP(last); ip != nil {
					return ip.String()
				}
			}
		}
	}
	return addr
}

// contextHandler adds the request id and trace id of the context to every
// log record written with a *Context method.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := RequestIDFrom(ctx); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
