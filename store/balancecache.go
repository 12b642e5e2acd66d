package store

// balanceCache keeps the balance of every book the writer has been asked
// about, so that a balance guard inside a write (a payout or refund must fit
// in "available") costs a map lookup instead of a sum over the ledger. It is
// memory, not a row: the ledger stays append-only and is the only durable
// record, and a cache entry is loaded from it on first use. Only the writer
// goroutine touches the cache, and it follows the transaction: deltas of the
// running change are kept apart until its savepoint is released, deltas of
// the batch until the commit succeeds, so a rolled-back change or a failed
// commit never reaches the committed balances.
//
// It holds only because one writer changes the ledger; on PostgreSQL there
// is none (a nil *balanceCache, whose methods do nothing) and a guard locks
// its balance row instead (balances.go).
type balanceCache struct {
	committed map[balanceKey]int64 // balances as of the last commit, for loaded books
	batch     map[balanceKey]int64 // deltas of changes released in the running batch
	op        map[balanceKey]int64 // deltas of the running change
}

type balanceKey struct {
	account  string
	livemode bool
	currency string
	book     string
}

func newBalanceCache() *balanceCache {
	return &balanceCache{committed: map[balanceKey]int64{}, batch: map[balanceKey]int64{}, op: map[balanceKey]int64{}}
}

func (c *balanceCache) add(e LedgerEntry) {
	if c == nil {
		return
	}
	c.op[balanceKey{e.AccountID, e.Livemode, e.Currency, e.Book}] += e.Amount
}

// releaseOp keeps the running change's deltas in the batch; dropOp forgets them.
func (c *balanceCache) releaseOp() {
	if c == nil {
		return
	}
	for k, d := range c.op {
		c.batch[k] += d
	}
	clear(c.op)
}

func (c *balanceCache) dropOp() {
	if c != nil {
		clear(c.op)
	}
}

// commitBatch applies the batch to the committed balances of loaded books
// (books not loaded yet will be read from the ledger, which has the entries).
func (c *balanceCache) commitBatch() {
	if c == nil {
		return
	}
	for k, d := range c.batch {
		if v, ok := c.committed[k]; ok {
			c.committed[k] = v + d
		}
	}
	clear(c.batch)
}

func (c *balanceCache) dropBatch() {
	if c == nil {
		return
	}
	clear(c.batch)
	clear(c.op)
}

// balance returns the book's balance as this transaction sees it, loading
// the committed part from the ledger on first use. The ledger read inside
// the transaction already includes the batch's and the change's own
// entries, so those are subtracted to get the committed part.
func (c *balanceCache) balance(k balanceKey, load func() (int64, error)) (int64, error) {
	v, ok := c.committed[k]
	if !ok {
		seen, err := load()
		if err != nil {
			return 0, err
		}
		v = seen - c.batch[k] - c.op[k]
		c.committed[k] = v
	}
	return v + c.batch[k] + c.op[k], nil
}
