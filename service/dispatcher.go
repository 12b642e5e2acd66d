package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paymentd/paymentd/store"
	"github.com/paymentd/paymentd/webhook"
)

// WebhookConfig tunes webhook deliveries. Zero values take the defaults
// documented on each field.
type WebhookConfig struct {
	// Timeout bounds one attempt: a 2xx must arrive within it (default 10s).
	Timeout time.Duration
	// RetryBase is the delay after the first failed attempt; each further
	// delay doubles, with ±20% jitter (default 30s).
	RetryBase time.Duration
	// RetryMaxDelay caps one delay (default 6h).
	RetryMaxDelay time.Duration
	// RetryWindow is how long a failing delivery is retried, from its
	// creation or redelivery, before it is marked failed (default 72h).
	RetryWindow time.Duration
	// PollInterval is how often the dispatcher looks for due deliveries (default 500ms).
	PollInterval time.Duration
	// Concurrency bounds the attempts in flight (default 16).
	Concurrency int
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 30 * time.Second
	}
	if c.RetryMaxDelay <= 0 {
		c.RetryMaxDelay = 6 * time.Hour
	}
	if c.RetryWindow <= 0 {
		c.RetryWindow = 72 * time.Hour
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	return c
}

// retryDelay is the delay after the n-th failed attempt (n ≥ 1):
// RetryBase·2^(n-1), at most RetryMaxDelay, with ±20% jitter.
func (c WebhookConfig) retryDelay(n int) time.Duration {
	d := c.RetryBase
	for i := 1; i < n && d < c.RetryMaxDelay; i++ {
		d *= 2
	}
	d = min(d, c.RetryMaxDelay)
	jitter := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + jitter
}

// webhookState is what the dispatcher shares with the RPCs: a way to wake
// it when a delivery becomes due now, and the deliveries in flight.
type webhookState struct {
	once     sync.Once
	wake     chan struct{}
	mu       sync.Mutex
	inflight map[string]struct{}
	// allowDial, if set, admits particular destinations through the guard (tests).
	allowDial func(netip.AddrPort) bool
}

func (h *webhookState) init() {
	h.once.Do(func() {
		h.wake = make(chan struct{}, 1)
		h.inflight = map[string]struct{}{}
	})
}

// kick wakes the dispatcher without waiting for its next poll.
func (s *Service) kickDispatcher() {
	s.hooks.init()
	select {
	case s.hooks.wake <- struct{}{}:
	default:
	}
}

// dispatch delivers due webhook deliveries until ctx ends, then waits for
// the attempts in flight (which ctx's end cancels; a canceled attempt is not
// recorded, so it is made again, by this replica after a restart or by
// another once its lease has passed).
//
// Each delivery is claimed before its attempt, so that one dispatcher at a
// time attempts it: in memory when this process is the database's only
// writer; in a fleet by leasing the row (FOR UPDATE SKIP LOCKED), so that a
// crashed replica's claims pass to the others when their lease ends. A
// crash mid-attempt leaves the delivery due, to be attempted again (at
// least once; receivers dedupe on X-Webhook-Id).
func (s *Service) dispatch(ctx context.Context) {
	s.hooks.init()
	cfg := s.cfg.Webhooks.withDefaults()
	client := newWebhookClient(s.cfg.AllowPrivateWebhooks, cfg.Timeout, s.hooks.allowDial)
	client.Transport = TraceTransport(s.cfg.TracerProvider, client.Transport) // a span and traceparent per attempt
	defer client.CloseIdleConnections()
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	every(ctx, cfg.PollInterval, s.hooks.wake, func(ctx context.Context) { s.dispatchDue(ctx, cfg, client, sem, &wg) })
}

func (s *Service) dispatchDue(ctx context.Context, cfg WebhookConfig, client *http.Client, sem chan struct{}, wg *sync.WaitGroup) {
	due, err := s.claimDueDeliveries(ctx, cfg)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("webhooks: claiming due deliveries", "error", err.Error())
		}
		return
	}
	for i, d := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for _, d := range due[i:] {
				s.releaseDelivery(d)
			}
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if !s.deliver(ctx, cfg, client, d) {
				s.releaseDelivery(d)
			}
		})
	}
}

// claimDueDeliveries claims the deliveries due now that no other dispatcher
// is attempting. In a fleet it leases up to one attempt per free slot (so a
// claimed delivery waits at most one attempt for its slot), for two attempt
// timeouts, once a read has found one due (an idle poll costs no write);
// alone, it reads up to four per slot and claims them in memory.
func (s *Service) claimDueDeliveries(ctx context.Context, cfg WebhookConfig) ([]*store.Delivery, error) {
	if s.fleet {
		if due, err := s.store.DueDeliveries(ctx, time.Now(), 1); err != nil || len(due) == 0 {
			return nil, err
		}
		return s.store.ClaimDueDeliveries(ctx, s.replica, time.Now().Add(2*cfg.Timeout+leaseMargin), cfg.Concurrency)
	}
	due, err := s.store.DueDeliveries(ctx, time.Now(), 4*cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	claimed := due[:0]
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	for _, d := range due {
		if _, busy := s.hooks.inflight[d.ID]; !busy {
			s.hooks.inflight[d.ID] = struct{}{}
			claimed = append(claimed, d)
		}
	}
	return claimed, nil
}

// releaseDelivery gives up the claim on d without an attempt recorded (cut
// short by shutdown, or recorded elsewhere): in a fleet the lease is cleared
// at once instead of left to expire. In memory every claim ends here.
func (s *Service) releaseDelivery(d *store.Delivery) {
	if s.fleet {
		err := s.store.Write(context.Background(), func(tx *store.Tx) error { return tx.ReleaseDelivery(d, s.replica) })
		if err != nil && !errors.Is(err, store.ErrClosed) {
			s.log.Error("webhooks: releasing a delivery", "delivery", d.ID, "error", err.Error())
		}
		return
	}
	s.hooks.mu.Lock()
	delete(s.hooks.inflight, d.ID)
	s.hooks.mu.Unlock()
}

// maxExcerpt bounds the response body kept with an attempt.
const maxExcerpt = 512

// deliver makes one attempt of d and records it, and reports whether the
// write that recorded it also released d's claim.
func (s *Service) deliver(ctx context.Context, cfg WebhookConfig, client *http.Client, d *store.Delivery) (released bool) {
	log := s.log.With("delivery", d.ID, "event", d.EventID)
	if !s.stillDue(ctx, d) {
		return false
	}
	ev, err := s.store.GetEvent(ctx, d.AccountID, d.Livemode, d.EventID)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("webhooks: reading event", "error", err.Error())
		}
		return false
	}
	secrets, gone, err := s.signingSecrets(ctx, d)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("webhooks: reading signing secret", "error", err.Error())
		}
		return false
	}
	if gone != "" {
		s.giveUp(d, gone)
		return false
	}
	body, err := webhookBody(ev)
	if err != nil {
		log.Error("webhooks: rendering event", "error", err.Error())
		s.giveUp(d, "the event could not be rendered: "+err.Error())
		return false
	}

	start := time.Now()
	code, excerpt, errText := s.post(ctx, client, d, ev, body, secrets)
	// What the receiver answered is stored and shown (GET /v1/events/{id}
	// attempts): a receiver echoing a card number or a key must not put it
	// in paymentd's database.
	excerpt, errText = redactText(excerpt), redactText(errText)
	latency := time.Since(start)
	ok := errText == ""
	if !ok && ctx.Err() != nil {
		return false // cut short by shutdown: not an attempt; it is made again after the restart
	}
	outcome := "retrying"
	err = s.store.Write(context.Background(), func(tx *store.Tx) error {
		cur, err := tx.GetDelivery(d.AccountID, d.Livemode, d.ID)
		if err != nil {
			return err
		}
		prev := cur.Attempts
		cur.Attempts++
		cur.LastAttempt, cur.LastCode, cur.LastError = start, code, errText
		switch {
		case ok:
			cur.Status = store.DeliveryDelivered
		case cur.Status == store.DeliveryPending:
			next := time.Now().Add(cfg.retryDelay(cur.Attempts))
			if next.After(cur.RetryFrom.Add(cfg.RetryWindow)) {
				cur.Status = store.DeliveryFailed
			} else {
				cur.NextAttempt = next
			}
		}
		if err := tx.UpdateDelivery(cur, prev); err != nil {
			return err
		}
		if s.fleet {
			if err := tx.ReleaseDelivery(cur, s.replica); err != nil {
				return err
			}
		}
		switch cur.Status {
		case store.DeliveryDelivered:
			outcome = "delivered"
		case store.DeliveryFailed:
			outcome = "failed"
		}
		return tx.InsertDeliveryAttempt(&store.DeliveryAttempt{AccountID: d.AccountID, Livemode: d.Livemode,
			EventID: d.EventID, DeliveryID: d.ID, N: cur.Attempts, URL: d.URL, Attempted: start, HTTPStatus: code,
			Latency: latency, Error: errText, Response: excerpt})
	})
	if err != nil {
		log.Error("webhooks: recording attempt", "error", err.Error())
		return false
	}
	s.metrics.webhookDelivered.WithLabelValues(outcome).Inc()
	if ok {
		log.Debug("webhook delivered", "url", logURL(d.URL), "status", code, "attempt", d.Attempts+1)
	} else {
		log.Info("webhook attempt failed", "url", logURL(d.URL), "status", code, "attempt", d.Attempts+1, "error", errText)
	}
	return s.fleet
}

// post sends the event once and returns the response status, an excerpt of
// its body and, unless it was a 2xx, why the attempt failed.
func (s *Service) post(ctx context.Context, client *http.Client, d *store.Delivery, ev *store.Event, body []byte, secrets []string) (code int, excerpt, errText string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", "the URL cannot be requested: " + err.Error()
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "paymentd-webhooks/1")
	req.Header.Set(webhook.HeaderEvent, ev.Type)
	req.Header.Set(webhook.HeaderID, ev.ID)
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhook.HeaderSignature, webhook.SignAll(now, body, secrets...))
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", attemptError(err, client.Timeout)
	}
	defer resp.Body.Close()
	buf, _ := io.ReadAll(io.LimitReader(resp.Body, maxExcerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	excerpt = strings.ToValidUTF8(string(buf), "\uFFFD")
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, excerpt, ""
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, excerpt, fmt.Sprintf("HTTP %d: redirects are not followed; register the final URL (Location: %.200s)",
			resp.StatusCode, resp.Header.Get("Location"))
	}
	return resp.StatusCode, excerpt, fmt.Sprintf("HTTP %d: the receiver must answer 2xx", resp.StatusCode)
}

// attemptError describes why no response arrived.
func attemptError(err error, timeout time.Duration) string {
	var blocked *blockedDestError
	var ne net.Error
	switch {
	case errors.As(err, &blocked):
		return "refused: " + blocked.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no response within %s", timeout)
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner.Error()
		}
	}
	return err.Error()
}

// signingSecrets returns the secrets a delivery is signed with: its
// endpoint's (the previous one too during a rotation), or the account's
// default secret for a callback_url delivery, which is created on first use.
// gone explains why the delivery cannot be made any more.
func (s *Service) signingSecrets(ctx context.Context, d *store.Delivery) (secrets []string, gone string, err error) {
	now := time.Now()
	if d.EndpointID != "" {
		e, err := s.store.GetWebhookEndpoint(ctx, d.AccountID, d.Livemode, d.EndpointID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, "webhook endpoint " + d.EndpointID + " does not exist", nil
		}
		if err != nil {
			return nil, "", err
		}
		if !e.Deleted.IsZero() {
			return nil, "webhook endpoint " + d.EndpointID + " was deleted", nil
		}
		prev := ""
		if e.PreviousExpires.After(now) {
			prev = e.PreviousSecret
		}
		secrets, err = s.secrets.openAll(secretOwner(e.ID, "", false), e.Secret, prev)
		return secrets, "", err
	}
	ws, err := s.accountSecret(ctx, d.AccountID, d.Livemode)
	if err != nil {
		return nil, "", err
	}
	prev := ""
	if ws.PreviousExpires.After(now) {
		prev = ws.PreviousSecret
	}
	secrets, err = s.secrets.openAll(secretOwner("", d.AccountID, d.Livemode), ws.Secret, prev)
	return secrets, "", err
}

// accountSecret returns the account's default signing secret, creating it
// on first use.
func (s *Service) accountSecret(ctx context.Context, accountID string, livemode bool) (*store.WebhookSecret, error) {
	ws, err := s.store.GetWebhookSecret(ctx, accountID, livemode)
	if !errors.Is(err, store.ErrNotFound) {
		return ws, err
	}
	err = s.store.Write(ctx, func(tx *store.Tx) error {
		ws, err = tx.EnsureWebhookSecret(accountID, livemode, s.secrets.seal(newWebhookSecret(), secretOwner("", accountID, livemode)))
		return err
	})
	return ws, err
}

// giveUp marks a delivery failed without an attempt (its endpoint is gone).
func (s *Service) giveUp(d *store.Delivery, why string) {
	err := s.store.Write(context.Background(), func(tx *store.Tx) error {
		cur, err := tx.GetDelivery(d.AccountID, d.Livemode, d.ID)
		if err != nil {
			return err
		}
		if cur.Status != store.DeliveryPending {
			return nil
		}
		cur.Status, cur.LastError = store.DeliveryFailed, why
		return tx.UpdateDelivery(cur, cur.Attempts)
	})
	if err != nil {
		s.log.Error("webhooks: giving up a delivery", "delivery", d.ID, "error", err.Error())
	}
}

// stillDue reads d again once it is claimed and reports whether it is still
// the attempt that was due. The list of due deliveries can be read just
// before another attempt of d commits and releases its claim; without this
// check that stale row would be attempted a second time.
func (s *Service) stillDue(ctx context.Context, d *store.Delivery) bool {
	ds, err := s.store.DeliveriesFor(ctx, d.AccountID, d.Livemode, d.EventID)
	if err != nil {
		return false // asked again on the next poll
	}
	for _, cur := range ds {
		if cur.ID == d.ID {
			return cur.Status == store.DeliveryPending && cur.Attempts == d.Attempts && !cur.NextAttempt.After(time.Now())
		}
	}
	return false
}
