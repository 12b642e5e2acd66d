package store

import "sync"

// paymentCache holds the latest committed version of up to limit payments,
// so that reads of them skip SQLite: every payment the writer writes (after
// the commit that holds it and before any caller is answered), and every
// payment a reader had to read from the database, if no commit was
// published while it read. So it never holds an uncommitted or outdated
// version: a version read from the database can only be outdated by a
// commit, and the writer publishes every payment it writes, replacing what
// was there; a read that overlapped a publication is not kept, because the
// publication it raced may have been evicted already. The oldest entries
// are evicted first. Payments not in it are read from the database.
type paymentCache struct {
	mu    sync.RWMutex
	m     map[paymentKey]*Payment // never mutated after insertion
	ring  []paymentKey            // insertion order, for eviction
	next  int
	limit int
	gen   uint64 // publications so far, under mu

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

// generation returns the count of publications so far. A reader takes it
// before reading payments from the database and passes it to fill.
func (c *paymentCache) generation() uint64 {
	if c.limit == 0 {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// fill keeps payments a reader read from the database after taking gen,
// unless a commit was published since: then they may be outdated already.
func (c *paymentCache) fill(gen uint64, ps ...*Payment) {
	if c.limit == 0 || len(ps) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	for _, p := range ps {
		k := paymentKey{p.AccountID, p.Livemode, p.ID}
		if _, ok := c.m[k]; ok {
			continue // the writer's version, or an equal one read before
		}
		cp := *p
		c.insert(k, &cp)
	}
}

// insert adds or replaces k's version, evicting the oldest entry if k is new
// and the cache is full. The caller holds mu for writing.
func (c *paymentCache) insert(k paymentKey, p *Payment) {
	if _, ok := c.m[k]; !ok {
		if old := c.ring[c.next]; old.id != "" {
			delete(c.m, old)
		}
		c.ring[c.next] = k
		c.next = (c.next + 1) % c.limit
	}
	c.m[k] = p
}

// written notes a version written by the running change.
func (c *paymentCache) written(p *Payment) {
	if c.limit > 0 {
		cp := *p
		c.op = append(c.op, &cp)
	}
}

// The writer's bookkeeping below touches nothing when the cache is off
// (limit 0), as it always is on PostgreSQL, where several writer loops
// share the cache and so must not share its op and batch lists.

func (c *paymentCache) releaseOp() {
	if c.limit > 0 {
		c.batch, c.op = append(c.batch, c.op...), c.op[:0]
	}
}

func (c *paymentCache) dropOp() {
	if c.limit > 0 {
		c.op = c.op[:0]
	}
}

func (c *paymentCache) dropBatch() {
	if c.limit > 0 {
		c.batch, c.op = c.batch[:0], c.op[:0]
	}
}

// commitBatch publishes the batch's versions, the last one of each payment winning.
func (c *paymentCache) commitBatch() {
	if c.limit == 0 || len(c.batch) == 0 {
		return
	}
	c.mu.Lock()
	c.gen++
	for _, p := range c.batch {
		c.insert(paymentKey{p.AccountID, p.Livemode, p.ID}, p)
	}
	c.mu.Unlock()
	clear(c.batch)
	c.batch = c.batch[:0]
}
