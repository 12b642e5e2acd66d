package service

import (
	"context"
	"net/http"

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
		otelhttp.WithTracerProvider(s.cfg.TracerProvider), otelhttp.WithPropagators(propagator),
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
	return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagator))
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
