package service

import (
	"context"
	"time"

	"github.com/paymentd/paymentd/store"
)

// leaseMargin is added to every lease beyond the longest its work should
// take, for clocks that differ a little between replicas.
const leaseMargin = 2 * time.Second

// sweepLeaseMin is the shortest lease of a sweep, so that a sweep that runs
// every few milliseconds (sandbox payouts in tests) costs its fleet a
// renewal every 1.5s, not one per run.
const sweepLeaseMin = 3 * time.Second

// every runs fn at once and then every interval, and also whenever wake
// fires (nil: never), until ctx ends. It is the loop of every background
// worker.
func every(ctx context.Context, interval time.Duration, wake <-chan struct{}, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
	}
}

// sweep runs fn like every, but in a fleet of replicas on one database only
// on the replica that holds the sweep's lease: one replica does a sweep at a
// time, and when it crashes another takes over once the lease has expired
// (two intervals, at least sweepLeaseMin, after its last renewal).
// With one process per database the lease is in memory and always held.
func (s *Service) sweep(ctx context.Context, name string, interval time.Duration, fn func(context.Context) error) {
	turn := sweepTurn{lease: store.Lease{Name: "sweep/" + name}, ttl: max(2*interval, sweepLeaseMin)}
	every(ctx, interval, nil, func(ctx context.Context) {
		if !s.haveTurn(ctx, &turn) {
			return
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, name, "sweep", name, "error", err.Error())
		}
	})
}

// sweepTurn is what one replica knows of a sweep's lease.
type sweepTurn struct {
	lease store.Lease
	ttl   time.Duration
	// until is when this replica's lease ends (zero when it has none);
	// retry is when a replica without it asks again.
	until, retry time.Time
}

// haveTurn reports whether this replica holds the sweep's lease, renewing it
// once half of it has passed. A replica without it asks again only every
// half lease, so that idle replicas cost a write now and then, not per tick.
func (s *Service) haveTurn(ctx context.Context, t *sweepTurn) bool {
	now := time.Now()
	if now.Before(t.until.Add(-t.ttl / 2)) {
		return true
	}
	if now.Before(t.retry) {
		return false
	}
	held, err := s.leases.acquire(ctx, t.lease, s.replica, now.Add(t.ttl))
	if err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "taking a sweep's lease", "sweep", t.lease.Name, "error", err.Error())
	}
	if !held {
		t.until, t.retry = time.Time{}, now.Add(t.ttl/2)
		return false
	}
	t.until = now.Add(t.ttl)
	return true
}

// claimItem leases one object to this replica's reconciler for as long as
// asking its provider and recording the answer may take, and reports
// whether it got it: another replica may be asking about it right now. The
// lease is not released when the work ends: the object's schedule has then
// moved on, and a replica that read it as due before that (its list is a
// little older) finds it still leased instead of asking twice.
func (s *Service) claimItem(ctx context.Context, accountID string, livemode bool, objectID string) bool {
	until := time.Now().Add(2*s.cfg.ProviderTimeout + recordTimeout + leaseMargin)
	held, err := s.leases.acquire(ctx, store.Lease{AccountID: accountID, Livemode: livemode, Name: "reconcile/" + objectID},
		s.replica, until)
	if err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "reconciler: claiming an object", "object", objectID, "error", err.Error())
	}
	return held
}

// pageLockPoll is how often a payment attempt on an invoice page asks again
// for the invoice's lease while another replica's attempt holds it.
const pageLockPoll = 50 * time.Millisecond

// lockInvoicePage waits until no other payment attempt on the invoice's
// page is running (or ctx ends), takes the invoice's turn and returns the
// function that gives it back. Alone on its database paymentd waits on an
// in-memory lock; in a fleet the turn is a lease held until the attempt's
// deadline (and its answer's recording), asked for again every
// pageLockPoll while another replica holds it.
func (s *Service) lockInvoicePage(ctx context.Context, inv *store.Invoice) (func(), error) {
	if !s.fleet {
		return s.pagePays.lock(ctx, inv.ID)
	}
	item := store.Lease{AccountID: inv.AccountID, Livemode: inv.Livemode, Name: "page/" + inv.ID}
	holder := s.replica + "/" + NewID("page_")
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(s.cfg.DefaultDeadline)
	}
	for {
		held, err := s.leases.acquire(ctx, item, holder, deadline.Add(recordTimeout+leaseMargin))
		if err != nil {
			return nil, err
		}
		if held {
			return func() { s.leases.release(context.WithoutCancel(ctx), item, holder) }, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pageLockPoll):
		}
	}
}
