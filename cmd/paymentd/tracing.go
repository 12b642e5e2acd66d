package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// testTracerProvider, when set by a test, is used instead of the OTEL_*
// variables (an in-memory exporter).
var testTracerProvider trace.TracerProvider

// setupTracing reads the standard OpenTelemetry variables. Tracing is off
// (nil provider) unless OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER is set, and
// off when OTEL_TRACES_EXPORTER=none. Spans go by OTLP over HTTP
// (http/protobuf, the default) or gRPC per OTEL_EXPORTER_OTLP_PROTOCOL /
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL; the exporter reads the endpoint,
// headers, TLS and timeout variables itself, and the SDK reads
// OTEL_TRACES_SAMPLER. OTEL_SERVICE_NAME defaults to paymentd. The returned
// function flushes and stops the exporter.
func setupTracing(ctx context.Context, getenv func(string) string) (trace.TracerProvider, func(), error) {
	if testTracerProvider != nil {
		return testTracerProvider, func() {}, nil
	}
	exporter := getenv("OTEL_TRACES_EXPORTER")
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") + getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if exporter == "none" || (exporter == "" && endpoint == "") {
		return nil, func() {}, nil
	}
	if exporter != "" && exporter != "otlp" {
		return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: paymentd exports traces by otlp only (or none to turn them off)", exporter)
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: use grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("OpenTelemetry exporter: %w", err)
	}
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = "paymentd"
	}
	res, err := resource.New(ctx, resource.WithAttributes(
		attribute.String("service.name", name), attribute.String("service.version", build().String())))
	if err != nil {
		return nil, nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}, nil
}

// instrumentation is the --instrumentation flag of serve and bench: on (the
// default) or off, a measurement aid that runs paymentd without its metrics'
// per-request work and without tracing, so that their cost can be measured
// as the difference (README "Running in production").
type instrumentation struct{ off bool }

func (i *instrumentation) String() string {
	if i != nil && i.off {
		return "off"
	}
	return "on"
}

func (i *instrumentation) Set(v string) error {
	switch v {
	case "on":
		i.off = false
	case "off":
		i.off = true
	default:
		return fmt.Errorf("%q: use on or off", v)
	}
	return nil
}

// register adds the flag to fs.
func (i *instrumentation) register(fs *flag.FlagSet) {
	fs.Var(i, "instrumentation", "on, or off to serve without metrics' per-request work and without tracing (a measurement aid: compare paymentd bench with each)")
}
