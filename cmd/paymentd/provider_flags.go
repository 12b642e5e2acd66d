package main

import (
	"flag"
	"log/slog"
	"net/http"
	"time"

	"github.com/paymentd/paymentd/providers/routing"
)

// providerFlags are serve's provider configuration flags.
type providerFlags struct {
	config        string
	checkInterval time.Duration
}

func (p *providerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.config, "config", "", "provider configuration file (paymentd.yaml): connections, credentials by environment variable, routes; without it test mode uses the sandbox and live mode is not configured")
	fs.DurationVar(&p.checkInterval, "provider-check-interval", time.Minute, "how often configured provider connections are status-checked for /v1/status")
}

// router loads the provider configuration, reading credentials through
// getenv; nil without --config. Neither the file nor the log ever holds a
// credential: the file names environment variables, and only connection
// names and modes are logged.
// transport, if not nil, sends the connections' requests (the tracing
// transport when traces are on).
func (p *providerFlags) router(getenv func(string) string, log *slog.Logger, timeout time.Duration, transport http.RoundTripper) (*routing.Router, error) {
	if p.config == "" {
		return nil, nil
	}
	return routing.Load(p.config, routing.Options{Getenv: getenv, Timeout: timeout, Logger: log, Transport: transport})
}
