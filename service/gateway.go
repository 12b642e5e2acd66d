package service

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/paymentd/paymentd/gen/openapiv2"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// MaxBodyBytes bounds REST request bodies; larger bodies get 413.
const MaxBodyBytes = 1 << 20

// GatewayRegistrar registers extra gateway routes, e.g. the benchmark's echo.
type GatewayRegistrar func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error

// HTTPHandler returns everything served on the HTTP port: the REST API
// (grpc-gateway routes that call the gRPC server through conn, so every
// interceptor applies to REST exactly as to gRPC) and GET /openapi.json.
func (s *Service) HTTPHandler(ctx context.Context, conn *grpc.ClientConn, extra ...GatewayRegistrar) (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, restMarshaler()),
		runtime.SetQueryParameterParser(strictQueryParser{}),
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			switch strings.ToLower(key) {
			case "idempotency-key":
				return "idempotency-key", true
			case "x-request-id":
				return "x-request-id", true
			}
			return "", false // Authorization is forwarded by the gateway itself
		}),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithErrorHandler(s.gatewayError),
		runtime.WithRoutingErrorHandler(routingError),
	)
	if err := pb.RegisterPaymentsServiceHandler(ctx, gw, conn); err != nil {
		return nil, err
	}
	if err := pb.RegisterStatusServiceHandler(ctx, gw, conn); err != nil {
		return nil, err
	}
	if err := pb.RegisterPayoutsServiceHandler(ctx, gw, conn); err != nil {
		return nil, err
	}
	if err := pb.RegisterInvoicesServiceHandler(ctx, gw, conn); err != nil {
		return nil, err
	}
	if err := pb.RegisterEventsServiceHandler(ctx, gw, conn); err != nil {
		return nil, err
	}
	for _, register := range extra {
		if err := register(ctx, gw, conn); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", limitBody(checkRESTHeaders(checkURLText(refuseQuery(queryFreeRoutes(), gw)))))
	mux.Handle("/pay/", s.pages.Handler()) // hosted invoice pages (package paypage)
	// Inbound provider webhooks (provider_webhooks.go).
	mux.HandleFunc("POST /v1/provider-webhooks/{provider}", inboundHooks{s}.providerWebhook)
	mux.HandleFunc("GET /v1/provider-webhooks/{provider}", inboundHooks{s}.providerReturn) // customers returning from a provider's page
	mux.HandleFunc("GET /healthz", s.healthz)                                              // liveness and readiness probes (health.go)
	mux.HandleFunc("GET /readyz", s.readyz)
	if !s.cfg.SeparateMetrics {
		mux.Handle("GET /metrics", s.MetricsHandler())
	}
	doc, err := openapiDocument(s.cfg.Version)
	if err != nil {
		return nil, err
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	// Anything else is a JSON 404, as the gateway's own are; /v1 itself
	// too, which http.ServeMux would otherwise redirect (an HTML 307) to /v1/.
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeRESTError(w, http.StatusNotFound, restErrorBody{Type: "invalid_request_error", Code: "route_not_found",
			Message: "No route matches " + r.Method + " " + truncate(r.URL.Path, 200) + "; see /openapi.json for the routes."})
	}
	mux.HandleFunc("/v1", notFound)
	mux.HandleFunc("/", notFound)
	return s.traceHTTP(s.observeHTTP(limitHeaders(canonicalPaths(mux)))), nil
}

// MaxHeaderBytes bounds a request's line and headers. The HTTP server
// reads up to HeaderReadLimit of them, so that a request over this bound is
// answered with a JSON 431 naming the limit (limitHeaders) rather than
// net/http's plain-text one, which remains for requests over
// HeaderReadLimit.
const (
	MaxHeaderBytes  = 64 << 10
	HeaderReadLimit = 1 << 20
)

// limitHeaders refuses a request whose line and headers exceed
// MaxHeaderBytes with 431 header_too_large.
func limitHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4 // "k: v\r\n"
			}
		}
		if n > MaxHeaderBytes {
			writeRESTError(w, http.StatusRequestHeaderFieldsTooLarge, restErrorBody{Type: "invalid_request_error", Code: "header_too_large",
				Message: fmt.Sprintf("The request line and headers are %d bytes; at most %d are accepted. Send fewer or shorter headers (cookies, forwarded tokens).", n, MaxHeaderBytes)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// canonicalPaths answers a path with // or a . or .. segment with a JSON 404
// naming the canonical path, where http.ServeMux would answer an HTML 307
// redirect that API clients follow silently (or not at all).
func canonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if clean := path.Clean(p); p != "" && clean != strings.TrimSuffix(p, "/") && clean != p {
			writeRESTError(w, http.StatusNotFound, restErrorBody{Type: "invalid_request_error", Code: "route_not_found",
				Message: "The path " + truncate(p, 200) + " is not in canonical form (it has //, . or .. segments); send " + truncate(clean, 200) + "."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// restMarshaler is how REST bodies are read and written: snake_case proto
// names, every field present in answers, unknown fields refused.
func restMarshaler() strictJSON {
	return strictJSON{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// limitBody refuses bodies over MaxBodyBytes: at once when Content-Length
// says so, and while reading otherwise.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			writeRESTError(w, http.StatusRequestEntityTooLarge, restErrorBody{Type: "invalid_request_error", Code: "body_too_large",
				Message: fmt.Sprintf("The request body is %d bytes; the limit is %d.", r.ContentLength, MaxBodyBytes)})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

type restErrorBody struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	// RequestID is the request's id, as in its X-Request-Id response header.
	RequestID string `json:"request_id,omitempty"`
}

func writeRESTError(w http.ResponseWriter, httpStatus int, body restErrorBody) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Grpc-Metadata-Content-Type")
	if body.RequestID == "" {
		body.RequestID = w.Header().Get(RequestIDHeader) // set by observeHTTP before any handler
	}
	// Every REST error passes here; its message may quote a path or a
	// caller's input: never a card number or a secret.
	body.Message, body.Param = redactText(body.Message), redactParam(body.Param)
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(map[string]restErrorBody{"error": body})
}

// restError is the one place where gRPC statuses become REST error bodies.
//
// It returns the status's own message when the error is none of paymentd's
// and none the gateway explains (a bare internal_error), for the caller to
// log: that message is never returned to the client.
func restError(w http.ResponseWriter, err error) (unexplained string) {
	st := status.Convert(err)
	body := restErrorBody{Message: st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			body.Type, body.Code, body.Param = d.Metadata["type"], d.Metadata["code"], d.Metadata["param"]
		case *errdetails.RetryInfo:
			secs := int(math.Ceil(d.GetRetryDelay().AsDuration().Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		}
	}
	httpStatus := HTTPStatus(st.Code(), body.Type)
	if ge, ok := parseGatewayError(st.Message()); ok && st.Code() == codes.InvalidArgument {
		body = restErrorBody{Type: "invalid_request_error", Code: ge.Code, Message: ge.Message, Param: ge.Param}
		httpStatus = http.StatusBadRequest
	} else if body.Type == "" {
		// Not a paymentd error: the gateway could not decode the request.
		body.Type = "invalid_request_error"
		switch {
		case strings.Contains(st.Message(), "request body too large"):
			httpStatus, body.Code = http.StatusRequestEntityTooLarge, "body_too_large"
			body.Message = fmt.Sprintf("The request body is larger than the limit of %d bytes.", MaxBodyBytes)
		case st.Code() == codes.InvalidArgument && strings.HasPrefix(st.Message(), "invalid grpc-timeout"):
			body.Code, body.Param = "parameter_invalid", "Grpc-Timeout"
			body.Message = "The Grpc-Timeout header is not a gRPC timeout (an integer and a unit, e.g. 5S or 500m); send a valid one or leave it out."
		case st.Code() == codes.InvalidArgument:
			body.Code = "invalid_request_body"
			body.Message = "The request could not be decoded: " + redactPANs(st.Message()) +
				". Send a JSON object whose field names are those of the API reference (snake_case), with amounts as integers."
		default:
			// The gateway's own call failed (the loopback connection, a
			// deadline, a message it could not send): answered in
			// paymentd's words, never with the transport's message.
			body.Type = "api_error"
			switch st.Code() {
			case codes.DeadlineExceeded:
				body.Code, body.Message = "timeout", "The request did not finish before its deadline. Retry it with the same idempotency key: if it finished after all, the retry returns its outcome."
			case codes.Canceled:
				body.Code, body.Message = "request_canceled", "The request was canceled before it finished. Retry it with the same idempotency key: if it finished after all, the retry returns its outcome."
			case codes.Unavailable:
				body.Code, body.Message = "service_unavailable", "paymentd could not take the request just now. Retry it with the same idempotency key."
			default:
				httpStatus, body.Code = http.StatusInternalServerError, "internal_error"
				body.Message = "An internal error occurred; it has been logged."
				unexplained = st.Code().String() + ": " + st.Message()
			}
		}
	}
	writeRESTError(w, httpStatus, body)
	return unexplained
}

// gatewayError is the gateway's error handler: restError, logging the cause
// of a bare internal_error.
func (s *Service) gatewayError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if cause := restError(w, err); cause != "" {
		s.log.ErrorContext(ctx, "REST call failed outside paymentd's handlers", "method", r.Method, "path", r.URL.Path, "error", cause)
	}
}

// writeDomainError answers a REST request with a domain error found before
// the gateway runs, rendered exactly as the gateway renders the same error
// coming back from the gRPC server.
func writeDomainError(w http.ResponseWriter, r *http.Request, e *Error) {
	restError(w, grpcStatus(e).Err())
}

func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		writeRESTError(w, httpStatus, restErrorBody{Type: "invalid_request_error", Code: "method_not_allowed",
			Message: r.Method + " is not allowed on " + r.URL.Path + "; see /openapi.json for the methods of each path."})
	default:
		writeRESTError(w, http.StatusNotFound, restErrorBody{Type: "invalid_request_error", Code: "route_not_found",
			Message: "No API route matches " + r.Method + " " + r.URL.Path + "; see /openapi.json for the routes."})
	}
}

// openapiPaths documents what is served on the HTTP port outside the
// gateway — the hosted payment page and the provider webhooks — which
// protoc-gen-openapiv2 cannot generate (they are no RPCs). Its paths,
// definitions and tags are added to the generated document.
//
//go:embed openapi_paths.json
var openapiPaths []byte

// openapiDocument is the generated OpenAPI document (its text comes from the
// protoc-gen-openapiv2 options in proto/) with the paths of openapiPaths
// added and info.version set to the running build's version, which a proto
// file cannot know.
func openapiDocument(version string) ([]byte, error) {
	var doc, extra map[string]any
	if err := json.Unmarshal(openapiv2.JSON, &doc); err != nil {
		return nil, fmt.Errorf("gen/openapiv2/paymentd.swagger.json: %w", err)
	}
	if err := json.Unmarshal(openapiPaths, &extra); err != nil {
		return nil, fmt.Errorf("service/openapi_paths.json: %w", err)
	}
	for _, section := range []string{"paths", "definitions"} {
		into, _ := doc[section].(map[string]any)
		if into == nil {
			into = map[string]any{}
			doc[section] = into
		}
		add, _ := extra[section].(map[string]any)
		for k, v := range add {
			into[k] = v
		}
	}
	tags, _ := doc["tags"].([]any)
	more, _ := extra["tags"].([]any)
	doc["tags"] = append(tags, more...)
	if info, ok := doc["info"].(map[string]any); ok {
		info["version"] = version
	}
	return json.MarshalIndent(doc, "", "  ")
}
