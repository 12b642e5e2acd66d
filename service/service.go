package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/sandbox"
	"github.com/paymentd/paymentd/store"
)

// Config holds what the services need. Zero durations and limits take the
// defaults documented on each field.
type Config struct {
	Store       *store.Store
	Logger      *slog.Logger
	Environment string // e.g. development, production
	Version     string
	// TestProvider serves test-mode keys; default the sandbox.
	TestProvider providers.Payments
	// LiveProvider serves live-mode keys; nil means live mode is not configured.
	LiveProvider providers.Payments
	// AuthCacheTTL bounds how long a key lookup is cached (default 10s):
	// revoking a key takes effect within it.
	AuthCacheTTL time.Duration
	// RateLimit is requests per second per API key (default 100; negative disables).
	RateLimit float64
	// RateBurst is the burst allowed above RateLimit (default 2×RateLimit).
	RateBurst int
	// DefaultDeadline applies to calls that arrive without one (default 30s).
	DefaultDeadline time.Duration
	// ProviderTimeout bounds each provider call (default 20s).
	ProviderTimeout time.Duration
	// PublicServices names extra gRPC services (full names, e.g.
	// "paymentd.bench.v1.EchoService") that need no API key; the benchmark
	// registers its echo service this way.
	PublicServices []string
}

// Service holds the state shared by the gRPC services.
type Service struct {
	cfg     Config
	store   *store.Store
	log     *slog.Logger
	auth    *authenticator
	idem    *idempotency
	limits  *rateLimiter
	started time.Time
}

// New builds the services from cfg.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TestProvider == nil {
		cfg.TestProvider = sandbox.New()
	}
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = 10 * time.Second
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 100
	}
	if cfg.RateBurst == 0 {
		cfg.RateBurst = int(2 * cfg.RateLimit)
	}
	if cfg.DefaultDeadline == 0 {
		cfg.DefaultDeadline = 30 * time.Second
	}
	if cfg.ProviderTimeout == 0 {
		cfg.ProviderTimeout = 20 * time.Second
	}
	return &Service{
		cfg:     cfg,
		store:   cfg.Store,
		log:     cfg.Logger,
		auth:    newAuthenticator(cfg.Store, cfg.AuthCacheTTL),
		idem:    newIdempotency(cfg.Store),
		limits:  newRateLimiter(cfg.RateLimit, cfg.RateBurst),
		started: time.Now(),
	}
}

// Run does the service's background work (expiring idempotency records)
// until ctx ends.
func (s *Service) Run(ctx context.Context) {
	s.idem.sweep(ctx, time.Hour)
}

func providerName(p providers.Payments) string {
	if n, ok := p.(providers.Provider); ok {
		return n.Name()
	}
	return "unknown"
}

// paymentsProvider routes a new payment: test keys to the test provider
// (the sandbox), live keys to the configured live provider.
func (s *Service) paymentsProvider(pr *Principal) (providers.Payments, string, error) {
	if !pr.Livemode {
		return s.cfg.TestProvider, providerName(s.cfg.TestProvider), nil
	}
	if s.cfg.LiveProvider == nil {
		return nil, "", Errorf(KindInvalid, "live_mode_not_configured",
			"No live payment provider is configured for this account, so live keys cannot take payments yet; use a test key (ak_test_…) with the sandbox, or configure a live provider.")
	}
	return s.cfg.LiveProvider, providerName(s.cfg.LiveProvider), nil
}

// providerFor returns the provider that processed an existing payment.
func (s *Service) providerFor(p *store.Payment) (providers.Payments, error) {
	for _, prov := range []providers.Payments{s.cfg.TestProvider, s.cfg.LiveProvider} {
		if prov != nil && providerName(prov) == p.Provider {
			return prov, nil
		}
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
