package store

import "sync"

// paymentCache holds the latest committed version of the payments written
// since the store opened, up to a bound, so that reads of recent payments
// (the common case: a caller reads what it just created) skip SQLite. Only
// the writer fills it, after the commit that holds a version and before any
// caller is answered, so it never holds an uncommitted or outdated version;
// readers only look. Payments not in it are read from the database.
type paymentCache struct {
	mu    sync.RWMutex
	m     map[paymentKey]*Payment // never mutated after insertion
	ring  []paymentKey            // insertion order, for eviction
	next  int
	limit int

	op, batch []*Payment // versions written by the running change and batch (writer only)
}

type paymentKey struct {
	account  string
	livemode bool
	id       string
}

func newPaymentCache(limit int) *paymentCache {
	return &paymentCache{m: make(map[paymentKey]*Payment, limit), ring: make([]paymentKey, limit), limit: limit}
}

func (c *paymentCache) get(account string, livemode bool, id string) (*Payment, bool) {
	if c.limit == 0 {
		return nil, false
	}
	c.mu.RLock()
	p, ok := c.m[paymentKey{account, livemode, id}]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	cp := *p
	return &cp, true
}

// written notes a version written by the running change.
func (c *paymentCache) written(p *Payment) {
	if c.limit > 0 {
		cp := *p
		c.op = append(c.op, &cp)
	}
}

func (c *paymentCache) releaseOp() { c.batch = append(c.batch, c.op...); c.op = c.op[:0] }
func (c *paymentCache) dropOp()    { c.op = c.op[:0] }
func (c *paymentCache) dropBatch() { c.batch, c.op = c.batch[:0], c.op[:0] }

// commitBatch publishes the batch's versions, the last one of each payment winning.
func (c *paymentCache) commitBatch() {
	if len(c.batch) == 0 {
		return
	}
	c.mu.Lock()
	for _, p := range c.batch {
		k := paymentKey{p.AccountID, p.Livemode, p.ID}
		if _, ok := c.m[k]; !ok {
			if old := c.ring[c.next]; old.id != "" {
				delete(c.m, old)
			}
			c.ring[c.next] = k
			c.next = (c.next + 1) % c.limit
		}
		c.m[k] = p
	}
	c.mu.Unlock()
	clear(c.batch)
	c.batch = c.batch[:0]
}
