package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/paymentd/paymentd/store"
)

// leases decides which holder works an item (an idempotency key in flight,
// an object the reconciler asks about, a sweep), so that one holder at a
// time does. A lease lasts until its expiry or its release; an expired one
// may be taken over, which is how a crashed replica's items are picked up.
type leases interface {
	// acquire takes item for holder until the given time; false means
	// another holder has it. A holder may extend its own lease.
	acquire(ctx context.Context, item store.Lease, holder string, until time.Time) (bool, error)
	// releaseIn gives item up inside tx, the write that ends the holder's
	// work, and reports whether it did (memory leases are only released
	// after the write, by release). It fails when the holder lost the lease
	// meanwhile, so that the write does not commit work another holder may
	// be doing too.
	releaseIn(tx *store.Tx, item store.Lease, holder string) (bool, error)
	// release gives item up if holder still has it.
	release(ctx context.Context, item store.Lease, holder string)
}

// newLeases returns the leases that fit the store: rows in its leases table
// when other processes write the same database (fleet, PostgreSQL), a map
// in memory when this process is the only writer (SQLite), which costs no
// write.
func newLeases(s *store.Store, fleet bool) leases {
	if fleet {
		return storeLeases{s}
	}
	return &memoryLeases{held: map[store.Lease]memoryLease{}}
}

// errLeaseLost fails a write whose holder's lease expired before it.
var errLeaseLost = errors.New("the lease on this work expired before its result was written; another replica may have taken it over")

// storeLeases are rows in the store's leases table, shared by every replica.
type storeLeases struct{ s *store.Store }

func (l storeLeases) acquire(ctx context.Context, item store.Lease, holder string, until time.Time) (bool, error) {
	return l.s.ClaimLease(ctx, item, holder, until)
}

func (l storeLeases) releaseIn(tx *store.Tx, item store.Lease, holder string) (bool, error) {
	held, err := tx.ReleaseLease(item, holder)
	if err == nil && !held {
		err = errLeaseLost
	}
	return err == nil, err
}

func (l storeLeases) release(ctx context.Context, item store.Lease, holder string) {
	_ = l.s.ReleaseLease(ctx, item, holder) // a lease not released expires
}

// memoryLeases are the single writer's: a map, pruned of expired leases
// once it grows.
type memoryLeases struct {
	mu     sync.Mutex
	held   map[store.Lease]memoryLease
	pruned time.Time
}

type memoryLease struct {
	holder string
	until  time.Time
}

// memoryPruneAt is the size past which acquire drops expired leases (at
// most once a second).
const memoryPruneAt = 1024

func (l *memoryLeases) acquire(_ context.Context, item store.Lease, holder string, until time.Time) (bool, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.held[item]; ok && cur.holder != holder && cur.until.After(now) {
		return false, nil
	}
	l.held[item] = memoryLease{holder, until}
	if len(l.held) > memoryPruneAt && now.Sub(l.pruned) > time.Second {
		l.pruned = now
		for k, v := range l.held {
			if !v.until.After(now) {
				delete(l.held, k)
			}
		}
	}
	return true, nil
}

func (l *memoryLeases) releaseIn(*store.Tx, store.Lease, string) (bool, error) { return false, nil }

func (l *memoryLeases) release(_ context.Context, item store.Lease, holder string) {
	l.mu.Lock()
	if cur, ok := l.held[item]; ok && cur.holder == holder {
		delete(l.held, item)
	}
	l.mu.Unlock()
}
