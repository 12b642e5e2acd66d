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

	// pages holds the payments of pages listed while gen had the value
	// kept with each: a page can only change when a payment is written, and
	// every payment write is published (gen moves on), so a page listed in
	// the current generation is still what the database would answer.
	pages map[PageFilter]cachedPage

	op, batch []*Payment // versions written by the running change and batch (writer only)
}

// cachedPage is one listed page: its payments (versions never mutated) and
// the generation it was listed in.
type cachedPage struct {
	gen      uint64
	payments []*Payment
}

// maxCachedPages bounds the page cache; when it is full it starts over.
const maxCachedPages = 256

type paymentKey struct {
	account  string
	livemode bool
	id       string
}

func newPaymentCache(limit int) *paymentCache {
	return &paymentCache{m: make(map[paymentKey]*Payment, limit), ring: make([]paymentKey, limit), limit: limit,
		pages: map[PageFilter]cachedPage{}}
}

// page returns copies of the payments of a page listed in the current
// generation, or false.
func (c *paymentCache) page(f PageFilter) ([]*Payment, bool) {
	if c.limit == 0 {
		return nil, false
	}
	c.mu.RLock()
	pg, ok := c.pages[f]
	ok = ok && pg.gen == c.gen
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return copyPayments(pg.payments), true
}

// keepPage keeps the payments of page f that a reader listed after taking
// gen, unless a commit was published since. ps must not be mutated later.
func (c *paymentCache) keepPage(gen uint64, f PageFilter, ps []*Payment) {
	if c.limit == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.pages) >= maxCachedPages {
		clear(c.pages)
	}
	c.pages[f] = cachedPage{gen: gen, payments: ps}
}

// copyPayments copies ps into one allocation, so that callers may change
// what they get without touching what is kept.
func copyPayments(ps []*Payment) []*Payment {
	vs := make([]Payment, len(ps))
	out := make([]*Payment, len(ps))
	for i, p := range ps {
		vs[i] = *p
		out[i] = &vs[i]
	}
	return out
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

// kept returns the version kept for a payment itself, which the caller
// must not change.
func (c *paymentCache) kept(account string, livemode bool, id string) (*Payment, bool) {
	c.mu.RLock()
	p, ok := c.m[paymentKey{account, livemode, id}]
	c.mu.RUnlock()
	return p, ok
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
