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
// That holds only because one writer changes the ledger. On PostgreSQL
// (perTx) other connections and replicas write beside it, so a book is
// loaded under its balance row's lock (balances.go) and kept only while
// the transaction holds that lock: every debit of the book waits for the
// lock, so nothing but this transaction's own changes can lower it until
// the commit, and the second guard of a batch needs neither the lock nor
// the sum again. A book loaded by a change that is rolled back to its
// savepoint is forgotten with it, as PostgreSQL releases the lock the
// change took; and at the end of the transaction every book is.
type balanceCache struct {
	committed map[balanceKey]int64 // balances as of the last commit, for loaded books
	batch     map[balanceKey]int64 // deltas of changes released in the running batch
	op        map[balanceKey]int64 // deltas of the running change

	perTx    bool         // books are kept for one transaction (PostgreSQL)
	opLoaded []balanceKey // books the running change loaded (perTx)
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

// newTxBalanceCache is the cache of one PostgreSQL transaction (perTx).
func newTxBalanceCache() *balanceCache {
	c := newBalanceCache()
	c.perTx = true
	return c
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
	c.opLoaded = c.opLoaded[:0]
}

func (c *balanceCache) dropOp() {
	if c == nil {
		return
	}
	clear(c.op)
	for _, k := range c.opLoaded {
		delete(c.committed, k)
	}
	c.opLoaded = c.opLoaded[:0]
}

// commitBatch applies the batch to the committed balances of loaded books
// (books not loaded yet will be read from the ledger, which has the entries).
func (c *balanceCache) commitBatch() {
	if c == nil {
		return
	}
	if c.perTx {
		c.dropBatch()
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
	c.opLoaded = c.opLoaded[:0]
	if c.perTx {
		clear(c.committed)
	}
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
		if c.perTx {
			c.opLoaded = append(c.opLoaded, k)
		}
	}
	return v + c.batch[k] + c.op[k], nil
}
