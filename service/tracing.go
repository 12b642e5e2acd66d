package service

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// Span attributes paymentd sets. None ever holds a credential, a card
// number or an amount.
var (
	attrRequestID  = attribute.Key("paymentd.request_id")
	attrConnection = attribute.Key("paymentd.provider.connection")
	attrOperation  = attribute.Key("paymentd.provider.operation")
	attrOutcome    = attribute.Key("paymentd.provider.outcome")
)

// tracing is on when Config.TracerProvider is set: then every RPC (otelgrpc
// as the gRPC server's stats handler), every HTTP request (otelhttp around
// the HTTP port), every store write a call waits on, every provider call
// and every webhook attempt gets a span, and W3C traceparent is read from
// callers and sent to providers and webhook receivers. Off, none of this is
// installed at all. Config.InstrumentationOff turns it off too.
func (s *Service) tracingOn() bool { return s.cfg.TracerProvider != nil && !s.cfg.InstrumentationOff }

// propagator is W3C trace context and baggage.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Propagator is what paymentd reads and writes trace context with.
func Propagator() propagation.TextMapPropagator { return propagator }

// grpcServerOptions are the gRPC server's tracing options: none when off.
func (s *Service) grpcServerOptions() []grpc.ServerOption {
	if !s.tracingOn() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(s.cfg.TracerProvider), otelgrpc.WithPropagators(propagator)))}
}

// GatewayDialOptions are the options the REST gateway's loopback gRPC
// client needs, so that a REST call's trace continues into the gRPC server.
func (s *Service) GatewayDialOptions() []grpc.DialOption {
	if !s.tracingOn() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(s.cfg.TracerProvider), otelgrpc.WithPropagators(propagator),
		otelgrpc.WithFilter(func(*stats.RPCTagInfo) bool { return true })))}
}

// traceHTTP wraps the HTTP port's handler in an otelhttp server span.
func (s *Service) traceHTTP(h http.Handler) http.Handler {
	if !s.tracingOn() {
		return h
	}
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithTracerProvider(queryFree{s.cfg.TracerProvider}), otelhttp.WithPropagators(propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + httpHandlerLabel(r.URL.Path) }))
}

// TraceTransport wraps an outbound HTTP transport (provider and webhook
// clients) so that each request gets a client span and carries traceparent;
// with tracing off it returns rt unchanged.
func TraceTransport(tp trace.TracerProvider, rt http.RoundTripper) http.RoundTripper {
	if tp == nil {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(queryFree{tp}), otelhttp.WithPropagators(propagator))
}

// queryFree is the tracer provider of otelhttp's spans: it keeps a URL's
// query out of them, as the access and delivery log lines do. otelhttp
// records a client request's whole URL (url.full, and in the status of a
// failed request the error, which quotes the URL) and may record a served
// request's query (url.query); a webhook callback_url's query often holds
// the receiver's token, and a request's query holds whatever its client
// sent, a card number paymentd then refuses included. The query becomes "…".
type queryFree struct{ trace.TracerProvider }

func (p queryFree) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return queryFreeTracer{p.TracerProvider.Tracer(name, opts...)}
}

type queryFreeTracer struct{ trace.Tracer }

func (t queryFreeTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	if attrs := cfg.Attributes(); len(attrs) > 0 {
		if fixed := withoutQueries(attrs); &fixed[0] != &attrs[0] {
			opts = append(opts, trace.WithAttributes(fixed...)) // a later value of a key replaces the earlier
		}
	}
	ctx, span := t.Tracer.Start(ctx, name, opts...)
	span = queryFreeSpan{span}
	return trace.ContextWithSpan(ctx, span), span
}

type queryFreeSpan struct{ trace.Span }

func (s queryFreeSpan) SetAttributes(kv ...attribute.KeyValue) {
	s.Span.SetAttributes(withoutQueries(kv)...)
}

func (s queryFreeSpan) SetStatus(code codes.Code, description string) {
	s.Span.SetStatus(code, urlQuery.ReplaceAllString(description, "$1?…"))
}

// urlQuery is the query of a URL quoted in text (an error message).
var urlQuery = regexp.MustCompile(`(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'?#]*)\?[^\s"'#]*`)

func withoutQueries(kv []attribute.KeyValue) []attribute.KeyValue {
	out := kv
	for i, a := range kv {
		var v string
		switch a.Key {
		case "url.full":
			u, q, ok := strings.Cut(a.Value.AsString(), "?")
			if !ok || q == "" {
				continue
			}
			v = u + "?…"
		case "url.query":
			if a.Value.AsString() == "" {
				continue
			}
			v = "…"
		default:
			continue
		}
		if &out[0] == &kv[0] {
			out = slices.Clone(kv) // the caller's slice stays as it was
		}
		out[i] = attribute.String(string(a.Key), v)
	}
	return out
}

func (s *Service) tracer() trace.Tracer {
	return s.cfg.TracerProvider.Tracer("github.com/paymentd/paymentd/service")
}

// startProviderSpan starts the span of one provider call.
func (s *Service) startProviderSpan(ctx context.Context, connection, operation string) (context.Context, func(error)) {
	if !s.tracingOn() {
		return ctx, func(error) {}
	}
	ctx, span := s.tracer().Start(ctx, "provider "+operation, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrConnection.String(connection), attrOperation.String(operation)))
	return ctx, func(err error) {
		out := providerOutcome(err)
		span.SetAttributes(attrOutcome.String(out))
		if out != outcomeOK {
			// The error text is the adapter's, which never holds
			// credentials or card data.
			span.SetStatus(codes.Error, out)
		}
		span.End()
	}
}
