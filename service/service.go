package service

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/health"

	"github.com/paymentd/paymentd/buildinfo"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/routing"
	"github.com/paymentd/paymentd/service/paypage"
	"github.com/paymentd/paymentd/store"
)

// Config holds what the services need. Zero durations and limits take the
// defaults documented on each field.
type Config struct {
	Store       *store.Store
	Logger      *slog.Logger
	Environment string // e.g. development, production
	// Build is the binary's version and revision; Version, when empty, is
	// Build.String() (what /v1/status reports).
	Build   buildinfo.Info
	Version string
	// TestProvider serves test-mode keys; default the sandbox.
	TestProvider providers.Payments
	// Router, when set, routes payments, invoices and payouts to the
	// provider connections of paymentd.yaml, with fallback (routing.go);
	// operations it has no route for keep the defaults above.
	Router *routing.Router
	// ProviderCheckInterval is how often configured connections are
	// status-checked for /v1/status (default 1 minute).
	ProviderCheckInterval time.Duration
	// AuthCacheTTL bounds how long a key lookup is cached (default 10s):
	// revoking a key takes effect within it.
	AuthCacheTTL time.Duration
	// RateLimit is requests per second per API key (default 100; negative disables).
	RateLimit float64
	// RateBurst is the burst allowed above RateLimit (default 2×RateLimit).
	RateBurst int
	// DefaultDeadline applies to calls that arrive without one (default 30s,
	// or ProviderTimeout plus 10s when that is longer).
	DefaultDeadline time.Duration
	// ProviderTimeout bounds each provider call (default 20s).
	ProviderTimeout time.Duration
	// SecretsKey (32 bytes) seals webhook signing secrets in the database
	// (AES-256-GCM); without it they are stored as they are.
	SecretsKey []byte
	// AllowPrivateWebhooks lets webhooks go to loopback, private and
	// link-local addresses (local development and tests; off by default).
	AllowPrivateWebhooks bool
	// Webhooks tunes webhook deliveries (dispatcher.go).
	Webhooks WebhookConfig
	// Reconcile tunes the reconciler (reconciler.go).
	Reconcile ReconcileConfig
	// PublicServices names extra gRPC services (full names, e.g.
	// "paymentd.bench.v1.EchoService") that need no API key; the benchmark
	// registers its echo service this way.
	PublicServices []string
	// PublicURL is the base URL of the HTTP port as customers' browsers reach
	// it, e.g. https://pay.example.com; invoice payment_urls are
	// PublicURL/pay/{id}. Empty until SetPublicURL when serve derives it
	// from the listening address.
	PublicURL string
	// InvoiceSweepInterval is how often invoices past their expiry are
	// expired in the background (default 1 minute); reads expire them too.
	InvoiceSweepInterval time.Duration
	// SandboxPayoutProcessingDelay is how long a sandbox payout stays
	// pending before it is processing (default 2s); SandboxPayoutCompletionDelay
	// how long it is processing before it completes or is rejected (default 5s).
	SandboxPayoutProcessingDelay, SandboxPayoutCompletionDelay time.Duration
	// LedgerCheckpointInterval is how often ledger checkpoints are written
	// (default 1 minute) for accounts with at least LedgerCheckpointEntries
	// (default 1: every account with new entries, so that the entries after
	// the newest checkpoint stay a short rowid range) since their last one (balance.go).
	LedgerCheckpointInterval time.Duration
	LedgerCheckpointEntries  int
	// TracerProvider, when set, turns tracing on (tracing.go); serve sets
	// it from the standard OTEL_* variables.
	TracerProvider trace.TracerProvider
	// SeparateMetrics leaves GET /metrics off the HTTP port, for when
	// `serve --metrics-addr` serves MetricsHandler on a port of its own.
	SeparateMetrics bool
	// InstrumentationOff leaves out the Prometheus series' per-request work
	// (the gRPC metrics interceptor, HTTP, provider-call and store-commit
	// metrics) and tracing, whatever TracerProvider says. It is a
	// measurement aid (`serve --instrumentation=off`, `bench
	// --instrumentation=off`): the cost of instrumentation is the difference
	// between a run with it and one without. /metrics still answers, with
	// the series that did not move. Request ids and logs stay on: they are
	// part of every response.
	InstrumentationOff bool
}

// Service holds the state shared by the gRPC services.
type Service struct {
	secrets *secretBox // nil: webhook signing secrets stored as they are
	cfg     Config
	store   *store.Store
	log     *slog.Logger
	auth    *authenticator
	idem    *idempotency
	// leases decide which replica works an item (leases.go); replica is
	// this process's name in them.
	leases  leases
	replica string
	// fleet is set when other replicas write the same database.
	fleet   bool
	limits  *rateLimiter
	started time.Time

	publicURL atomic.Pointer[string] // set by SetPublicURL (invoices.go)

	hooks webhookState // the webhook dispatcher's shared state (dispatcher.go)

	metrics  *metrics                      // Prometheus series (metrics.go)
	rateLog  logSampler                    // rate-limited log lines (httpobs.go)
	pages    *paypage.Pages                // the hosted payment pages /pay/{id} (pages.go)
	conns    connections                   // paymentd.yaml's provider connections (routing.go)
	pagePays keyedLocks                    // one payment attempt at a time per invoice page (pages.go)
	health   atomic.Pointer[health.Server] // the gRPC health service (grpc.go)
	draining atomic.Bool                   // BeginShutdown was called (health.go)
}

// New builds the services from cfg.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Lines logged with a context get its request id and trace id; no line
	// carries a card number or a secret.
	cfg.Logger = slog.New(contextHandler{RedactingHandler(cfg.Logger.Handler())})
	if cfg.Version == "" {
		cfg.Version = cmp.Or(cfg.Build.String(), "devel")
	}
	if cfg.TestProvider == nil {
		cfg.TestProvider = defaultTestProvider()
	}
	cfg.AuthCacheTTL = positive(cfg.AuthCacheTTL, 10*time.Second)
	cfg.RateLimit = cmp.Or(cfg.RateLimit, 100)
	cfg.RateBurst = cmp.Or(cfg.RateBurst, int(2*cfg.RateLimit))
	cfg.ProviderTimeout = positive(cfg.ProviderTimeout, 20*time.Second)
	// The default deadline leaves room for a whole provider call and the
	// write that records its answer, so that a call without a deadline of
	// its own is never cut short while the provider may be moving money.
	cfg.DefaultDeadline = positive(cfg.DefaultDeadline, max(30*time.Second, cfg.ProviderTimeout+recordTimeout))
	cfg.InvoiceSweepInterval = positive(cfg.InvoiceSweepInterval, time.Minute)
	cfg.SandboxPayoutProcessingDelay = positive(cfg.SandboxPayoutProcessingDelay, 2*time.Second)
	cfg.SandboxPayoutCompletionDelay = positive(cfg.SandboxPayoutCompletionDelay, 5*time.Second)
	cfg.LedgerCheckpointInterval = positive(cfg.LedgerCheckpointInterval, time.Minute)
	cfg.LedgerCheckpointEntries = cmp.Or(cfg.LedgerCheckpointEntries, 1)
	box, err := newSecretBox(cfg.SecretsKey)
	if err != nil {
		panic("service.New: Config.SecretsKey: " + err.Error()) // serve checks the key file first
	}
	s := &Service{
		secrets: box,
		cfg:     cfg,
		store:   cfg.Store,
		log:     cfg.Logger,
		auth:    newAuthenticator(cfg.Store, cfg.AuthCacheTTL),
		fleet:   cfg.Store != nil && cfg.Store.Shared(),
		replica: NewID("replica_"),
		limits:  newRateLimiter(cfg.RateLimit, cfg.RateBurst),
		started: time.Now(),
	}
	s.leases = newLeases(cfg.Store, s.fleet)
	s.idem = newIdempotency(cfg.Store, s.leases, s.fleet, s.replica, cfg.DefaultDeadline)
	s.pages = paypage.New(pageBackend{s}, s.log)
	s.conns = connections{s}
	s.metrics = newMetrics(s)
	s.idem.metrics = s.metrics
	if s.store != nil && !cfg.InstrumentationOff {
		s.store.SetObserver(s.metrics)
		if s.tracingOn() {
			s.store.SetTracer(s.tracer())
		}
	}
	return s
}

// Run does the service's background work until ctx ends, and returns when
// all of it has stopped.
func (s *Service) Run(ctx context.Context) {
	var bg sync.WaitGroup
	bg.Go(func() { s.dispatch(ctx) })                                        // webhook deliveries (dispatcher.go)
	bg.Go(func() { reconciler{s}.reconcile(ctx) })                           // whatever providers left unsettled (reconciler.go)
	bg.Go(func() { s.cfg.Router.Monitor(ctx, s.cfg.ProviderCheckInterval) }) // provider health (routing.go)
	// The sweeps run on one replica of a fleet at a time (workers.go).
	// Reads expire invoices lazily too: this sweep bounds how long an unread
	// invoice stays open past its expiry (and announces invoice.expired in time).
	bg.Go(func() {
		s.sweep(ctx, "invoice-expiry", s.cfg.InvoiceSweepInterval, func(ctx context.Context) error {
			return s.expireDue(ctx, "", false)
		})
	})
	// Sandbox payouts: pending for SandboxPayoutProcessingDelay → processing;
	// processing for SandboxPayoutCompletionDelay → completed, or rejected
	// for the recipient the sandbox always rejects (payout_processor.go).
	bg.Go(func() {
		s.sweep(ctx, "sandbox-payouts", s.sandboxPayoutInterval(), func(ctx context.Context) error {
			_, err := s.advanceSandboxPayouts(ctx, time.Now())
			return err
		})
	})
	// Ledger checkpoints keep balance reads short: each account and mode
	// with at least LedgerCheckpointEntries new entries gets one (balance.go).
	bg.Go(func() {
		s.sweep(ctx, "ledger-checkpoint", s.cfg.LedgerCheckpointInterval, func(ctx context.Context) error {
			_, err := s.store.CheckpointLedger(ctx, s.cfg.LedgerCheckpointEntries)
			return err
		})
	})
	bg.Go(func() { s.sweep(ctx, "idempotency", time.Hour, s.idem.sweep) }) // records past IdempotencyTTL
	bg.Wait()
}

// sandboxPayoutInterval is how often sandbox payouts are moved along: twice
// per the shorter delay, between 5ms and a second.
func (s *Service) sandboxPayoutInterval() time.Duration {
	every := min(s.cfg.SandboxPayoutProcessingDelay, s.cfg.SandboxPayoutCompletionDelay) / 2
	return min(max(every, 5*time.Millisecond), time.Second)
}

// positive returns d, or def when d is zero or negative.
func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func providerName(p providers.Payments) string {
	if n, ok := p.(providers.Provider); ok {
		return n.Name()
	}
	return "unknown"
}

// paymentsProvider is the provider for a payment no route covers: the
// sandbox in test mode; in live mode there is none without a route.
func (s *Service) paymentsProvider(pr *Principal) (providers.Payments, string, error) {
	if pr.Livemode {
		return nil, "", Errorf(KindInvalid, "live_mode_not_configured",
			"No live payment provider is configured for this account, so live keys cannot take payments yet; use a test key (ak_test_…) with the sandbox, or configure a live provider.")
	}
	return s.cfg.TestProvider, providerName(s.cfg.TestProvider), nil
}

// providerFor returns the provider that processed an existing payment.
func (s *Service) providerFor(p *store.Payment) (providers.Payments, error) {
	if prov, ok := s.conns.routedPayments(p.Provider); ok {
		return prov, nil
	}
	if providerName(s.cfg.TestProvider) == p.Provider {
		return s.cfg.TestProvider, nil
	}
	return nil, Errorf(KindUnavailable, "provider_not_configured",
		"The provider %s that processed payment %s is no longer configured.", p.Provider, p.ID)
}

// mustPrincipal returns the caller; the auth interceptor guarantees one on
// every authenticated method.
func mustPrincipal(ctx context.Context) *Principal {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		panic("service: no principal in context for an authenticated method")
	}
	return p
}
