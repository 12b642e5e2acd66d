package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/paymentd/paymentd/service"
)

// webhookFlags are serve's flags for webhook deliveries, provider calls and
// the reconciler.
type webhookFlags struct {
	allowPrivate      bool
	providerTimeout   time.Duration
	timeout           time.Duration
	retryBase         time.Duration
	retryMaxDelay     time.Duration
	retryWindow       time.Duration
	pollInterval      time.Duration
	reconcileSchedule durationList
	reconcileInterval time.Duration
}

func (f *webhookFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.allowPrivate, "allow-private-webhooks", false,
		"deliver webhooks to loopback, private and link-local addresses too (local development and tests only)")
	fs.DurationVar(&f.providerTimeout, "provider-timeout", 20*time.Second,
		"how long a provider call may take; one that does not answer in time leaves the payment unknown, to be reconciled")
	fs.DurationVar(&f.timeout, "webhook-timeout", 10*time.Second, "how long a webhook receiver has to answer 2xx")
	fs.DurationVar(&f.retryBase, "webhook-retry-base", 30*time.Second, "delay after a delivery's first failed attempt; each next delay doubles (±20% jitter)")
	fs.DurationVar(&f.retryMaxDelay, "webhook-retry-max-delay", 6*time.Hour, "longest delay between two attempts of a delivery")
	fs.DurationVar(&f.retryWindow, "webhook-retry-window", 72*time.Hour, "how long a failing delivery is retried before it is marked failed")
	fs.DurationVar(&f.pollInterval, "webhook-poll-interval", 500*time.Millisecond, "how often the dispatcher looks for due deliveries")
	f.reconcileSchedule = durationList{time.Minute, 5 * time.Minute, time.Hour, 24 * time.Hour}
	fs.Var(&f.reconcileSchedule, "reconcile-schedule",
		"when to ask providers about unsettled payments and refunds, and about provider-served invoices and payouts that can still change: after the first duration, then each next after the previous; the last repeats")
	fs.DurationVar(&f.reconcileInterval, "reconcile-interval", 10*time.Second, "how often the reconciler looks for objects due a status call")
}

func (f *webhookFlags) webhooks() service.WebhookConfig {
	return service.WebhookConfig{Timeout: f.timeout, RetryBase: f.retryBase, RetryMaxDelay: f.retryMaxDelay,
		RetryWindow: f.retryWindow, PollInterval: f.pollInterval}
}

func (f *webhookFlags) reconcile() service.ReconcileConfig {
	return service.ReconcileConfig{Schedule: f.reconcileSchedule, Interval: f.reconcileInterval}
}

// durationList is a comma-separated list of positive durations, e.g. 1m,5m,1h,24h.
type durationList []time.Duration

func (l *durationList) String() string {
	parts := make([]string, len(*l))
	for i, d := range *l {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

func (l *durationList) Set(s string) error {
	var out durationList
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("durations must be positive; got %s", d)
		}
		out = append(out, d)
	}
	*l = out
	return nil
}
