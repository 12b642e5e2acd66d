package service

import (
	"context"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paymentd/paymentd/providers"
)

// metrics are the Prometheus series paymentd exports. Each Service has its
// own registry (tests run several servers in one process). Labels are
// low-cardinality by construction: kinds, statuses, connection names from
// paymentd.yaml, operation names and outcomes — never an account id, an
// object id or a key.
type metrics struct {
	off        bool // Config.InstrumentationOff: per-request series do not move
	reg        *prometheus.Registry
	collectors []prometheus.Collector // everything registered, for MetricNames
	grpc       *grpcMetrics

	stateChanges     *prometheus.CounterVec   // kind, status
	providerCalls    *prometheus.CounterVec   // connection, operation, outcome
	providerSeconds  *prometheus.HistogramVec // connection, operation
	idempotency      *prometheus.CounterVec   // result
	rateLimited      prometheus.Counter
	webhookDelivered *prometheus.CounterVec // outcome
	providerWebhooks *prometheus.CounterVec // connection, verdict
	reconciler       *prometheus.CounterVec // result
	commitSeconds    prometheus.Histogram
	changesPerCommit prometheus.Histogram
	writeErrors      prometheus.Counter
	httpRequests     *prometheus.CounterVec   // handler, method, code
	httpSeconds      *prometheus.HistogramVec // handler
}

// Provider call outcomes (paymentd_provider_calls_total's outcome label).
const (
	outcomeOK          = "ok"
	outcomeDeclined    = "declined"
	outcomeUnavailable = "unavailable"
	outcomeUnknown     = "unknown"
)

func newMetrics(s *Service) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), off: s.cfg.InstrumentationOff}
	m.grpc = newGRPCMetrics([]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30})
	f := func(c prometheus.Collector) { m.reg.MustRegister(c); m.collectors = append(m.collectors, c) }
	for _, c := range m.grpc.collectors() {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.stateChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "paymentd_state_changes_total",
		Help: "Committed state changes, by object kind (payment, refund, invoice, payout, …) and the status or event it reached."},
		[]string{"kind", "status"})
	m.providerCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "paymentd_provider_calls_total",
		Help: "Calls to payment providers by connection, operation and outcome (ok, declined, unavailable, unknown)."},
		[]string{"connection", "operation", "outcome"})
	m.providerSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "paymentd_provider_call_duration_seconds",
		Help:    "Latency of calls to payment providers, retries included.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30}},
		[]string{"connection", "operation"})
	m.idempotency = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "paymentd_idempotency_requests_total",
		Help: "Requests that reused an idempotency key: replay (the stored outcome was returned), conflict (409, the first is still running), mismatch (422, different parameters)."},
		[]string{"result"})
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: "paymentd_rate_limited_requests_total",
		Help: "Requests refused with 429 / RESOURCE_EXHAUSTED because their API key was over its rate limit."})
	m.webhookDelivered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "paymentd_webhook_deliveries_total",
		Help: "Webhook delivery attempts by outcome: delivered, retrying (failed, will be retried), failed (given up)."},
		[]string{"outcome"})
	m.providerWebhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "paymentd_provider_webhooks_total",
		Help: "Inbound provider webhooks by connection and verdict (applied, ignored, unconfirmed, signature_invalid, invalid, unavailable, unknown_connection)."},
		[]string{"connection", "verdict"})
	m.reconciler = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "paymentd_reconciler_items_total",
		Help: "Objects the reconciler handled: due (looked at), settled, rescheduled (still unsettled)."},
		[]string{"result"})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "paymentd_store_commit_duration_seconds",
		Help:    "Time from BEGIN to COMMIT of one store write batch (the fsync included).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}})
	m.changesPerCommit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "paymentd_store_changes_per_commit",
		Help:    "State changes sharing one store commit (group commit).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}})
	m.writeErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "paymentd_store_write_errors_total",
		Help: "Store write batches that failed as a whole (BEGIN or COMMIT failed, e.g. disk full)."})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "paymentd_http_requests_total",
		Help: "HTTP requests by handler (rest, pay, provider_webhook, openapi, healthz, readyz, metrics, other), method and status code."},
		[]string{"handler", "method", "code"})
	m.httpSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "paymentd_http_request_duration_seconds",
		Help:    "HTTP request latency by handler.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
		[]string{"handler"})
	for _, c := range []prometheus.Collector{m.stateChanges, m.providerCalls, m.providerSeconds, m.idempotency, m.rateLimited,
		m.webhookDelivered, m.providerWebhooks, m.reconciler, m.commitSeconds, m.changesPerCommit, m.writeErrors,
		m.httpRequests, m.httpSeconds} {
		f(c)
	}

	b := s.cfg.Build
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "paymentd_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": s.cfg.Version, "revision": b.Revision, "go_version": b.GoVersion}},
		func() float64 { return 1 }))
	f(&webhookBacklog{s: s,
		pending: prometheus.NewDesc("paymentd_webhook_deliveries_pending", "Webhook deliveries waiting for a successful attempt.", nil, nil),
		oldest: prometheus.NewDesc("paymentd_webhook_oldest_pending_age_seconds",
			"Age of the oldest pending webhook delivery (0 when none is pending).", nil, nil)})
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "paymentd_operator_items_open",
		Help: "Open operator items: objects paymentd could not settle on its own (read from the store at scrape time; NaN if it cannot be read)."},
		func() float64 {
			if s.store == nil {
				return 0
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := s.store.OpenOperatorItems(ctx)
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		}))
	// Pre-create the series alerts compare against, so that a rate over a
	// counter that has not moved yet is 0 rather than absent.
	for _, o := range []string{"delivered", "retrying", "failed"} {
		m.webhookDelivered.WithLabelValues(o)
	}
	for _, r := range []string{"replay", "conflict", "mismatch"} {
		m.idempotency.WithLabelValues(r)
	}
	for _, r := range []string{"due", "settled", "rescheduled"} {
		m.reconciler.WithLabelValues(r)
	}
	return m
}

// webhookBacklog reads the pending deliveries from the store at scrape time.
type webhookBacklog struct {
	s               *Service
	pending, oldest *prometheus.Desc
}

func (c *webhookBacklog) Describe(ch chan<- *prometheus.Desc) { ch <- c.pending; ch <- c.oldest }

func (c *webhookBacklog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, oldest, err := c.s.store.DeliveryBacklog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.pending, err)
		return
	}
	age := 0.0
	if n > 0 {
		age = max(time.Since(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}

// MetricsHandler serves the Prometheus text format of this service's
// registry (GET /metrics).
func (s *Service) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: nil, Registry: s.metrics.reg})
}

// MetricNames lists the names of every metric family the service exports
// (histograms by their base name), whether or not it has a series yet.
func (s *Service) MetricNames() []string {
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range s.metrics.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	var names []string
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Committed implements store.Observer.
func (m *metrics) Committed(took time.Duration, changes int, err error) {
	m.commitSeconds.Observe(took.Seconds())
	m.changesPerCommit.Observe(float64(changes))
	if err != nil {
		m.writeErrors.Inc()
	}
}

// EventsCommitted implements store.Observer: every state change records an
// event whose type is kind.status (payment.succeeded, refund.pending, …).
func (m *metrics) EventsCommitted(types []string) {
	for _, t := range types {
		kind, status, ok := strings.Cut(t, ".")
		if !ok {
			kind, status = t, ""
		}
		m.stateChanges.WithLabelValues(kind, status).Inc()
	}
}

// providerOutcome classifies a provider call's error for the outcome label.
func providerOutcome(err error) string {
	switch providers.KindOf(err) {
	case 0:
		return outcomeOK
	case providers.Declined, providers.InvalidRequest:
		return outcomeDeclined
	case providers.Unavailable:
		return outcomeUnavailable
	}
	if errors.Is(err, context.Canceled) {
		return outcomeUnavailable
	}
	return outcomeUnknown
}

// observeProvider counts one provider call that started at start.
func (m *metrics) observeProvider(connection, operation string, start time.Time, err error) {
	if m.off {
		return
	}
	m.providerCalls.WithLabelValues(connection, operation, providerOutcome(err)).Inc()
	m.providerSeconds.WithLabelValues(connection, operation).Observe(time.Since(start).Seconds())
}

// countError counts the idempotency and rate-limit refusals among the
// errors calls return.
func (m *metrics) countError(err error) {
	var de *Error
	if !errors.As(err, &de) {
		return
	}
	switch de.Kind {
	case KindInFlight:
		m.idempotency.WithLabelValues("conflict").Inc()
	case KindIdempotency:
		m.idempotency.WithLabelValues("mismatch").Inc()
	case KindRateLimited:
		m.rateLimited.Inc()
	}
}

// httpHandlerLabel names what serves path, for the HTTP metrics.
func httpHandlerLabel(path string) string {
	switch {
	case strings.HasPrefix(path, "/v1/provider-webhooks/"):
		return "provider_webhook"
	case strings.HasPrefix(path, "/v1/"):
		return "rest"
	case strings.HasPrefix(path, "/pay/"):
		return "pay"
	case path == "/openapi.json":
		return "openapi"
	case path == "/healthz", path == "/readyz", path == "/metrics":
		return path[1:]
	}
	return "other"
}

// httpMethodLabel keeps the method label to the standard methods.
func httpMethodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// observeHTTP counts one request served on the HTTP port.
func (m *metrics) observeHTTP(r *http.Request, got httpsnoop.Metrics) {
	if m.off {
		return
	}
	handler := httpHandlerLabel(r.URL.Path)
	m.httpRequests.WithLabelValues(handler, httpMethodLabel(r.Method), strconv.Itoa(got.Code)).Inc()
	m.httpSeconds.WithLabelValues(handler).Observe(got.Duration.Seconds())
}
