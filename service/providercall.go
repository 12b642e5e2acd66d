package service

import (
	"context"
	"time"

	"github.com/paymentd/paymentd/providers"
)

// providerCall starts one call to a provider connection: it bounds the call
// by ProviderTimeout, and the returned done, given the call's error, counts
// it in paymentd_provider_calls_total and its latency histogram by
// connection, operation and outcome. Every call paymentd makes to a
// provider goes through it, e.g.
//
//	pctx, done := s.providerCall(ctx, prov, "cancel")
//	err := prov.Cancel(pctx, ref)
//	done(err)
func (s *Service) providerCall(ctx context.Context, prov any, operation string) (context.Context, func(error)) {
	conn := connectionName(prov)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	ctx, end := s.startProviderSpan(ctx, conn, operation) // tracing.go
	return ctx, func(err error) {
		cancel()
		s.metrics.observeProvider(conn, operation, start, err)
		end(err)
	}
}

// connectionName is the provider connection's name (paymentd.yaml's, or the
// sandbox's).
func connectionName(prov any) string {
	if n, ok := prov.(providers.Provider); ok {
		return n.Name()
	}
	return "unknown"
}
