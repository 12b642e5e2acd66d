package store

import (
	"context"
	"database/sql"
	"fmt"
	"hash/maphash"
	"sync"
)

// idemIndex counts, per 32-bit hash of (account, mode, method, key), the
// idempotency records that may exist, so that the common case of a call
// with a fresh key (no record) is answered from memory instead of a SQLite
// point read. It must never miss a committed record: a count goes up when
// a record is written, before its commit (a write that is then rolled back
// leaves a count too high, which only costs a database read later), and down
// only after the commit that deleted the record. Counting rather than
// keeping a set makes hash collisions harmless: two keys with one hash
// count 2, and deleting one leaves the other found; a fresh key that
// collides with a stored one (about one in 4 000 with a million stored) only
// costs the read it would have cost anyway. Memory follows the table, which
// the idempotency sweep keeps to a day of keys: 32-bit hashes and counts
// keep it to about 10 bytes per key.
//
// On PostgreSQL another replica may write a record this process never saw,
// so there is no index: a nil *idemIndex says every key may exist, and its
// methods do nothing.
type idemIndex struct {
	seed maphash.Seed

	mu sync.RWMutex
	n  map[uint32]uint32

	// Deletions staged by the running change and batch (writer only),
	// applied when the batch commits.
	op, batch []uint32
}

func newIdemIndex() *idemIndex {
	return &idemIndex{seed: maphash.MakeSeed(), n: map[uint32]uint32{}}
}

func (x *idemIndex) hash(accountID string, livemode bool, method, key string) uint32 {
	if x == nil {
		return 0
	}
	var h maphash.Hash
	h.SetSeed(x.seed)
	h.WriteString(accountID)
	if livemode {
		h.WriteByte(1)
	} else {
		h.WriteByte(0)
	}
	h.WriteString(method)
	h.WriteByte(0)
	h.WriteString(key)
	return uint32(h.Sum64())
}

// load counts every record already in the database; it runs at open, before
// any write.
func (x *idemIndex) load(ctx context.Context, db *sql.DB) error {
	if x == nil {
		return nil
	}
	rows, err := db.QueryContext(ctx, `SELECT account_id, livemode, method, key FROM idempotency_keys`)
	if err != nil {
		return fmt.Errorf("store: load idempotency keys: %w", err)
	}
	defer rows.Close()
	var account, method, key string
	var livemode bool
	for rows.Next() {
		if err := rows.Scan(&account, &livemode, &method, &key); err != nil {
			return fmt.Errorf("store: load idempotency keys: %w", err)
		}
		x.n[x.hash(account, livemode, method, key)]++
	}
	return rows.Err()
}

// mayExist reports whether a record for the key may be stored; false means
// it certainly is not.
func (x *idemIndex) mayExist(h uint32) bool {
	if x == nil {
		return true
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.n[h] > 0
}

// added counts a record just written by the running change.
func (x *idemIndex) added(h uint32) {
	if x == nil {
		return
	}
	x.mu.Lock()
	x.n[h]++
	x.mu.Unlock()
}

// deleted stages the deletion of a record by the running change.
func (x *idemIndex) deleted(h uint32) {
	if x != nil {
		x.op = append(x.op, h)
	}
}

func (x *idemIndex) releaseOp() {
	if x != nil {
		x.batch, x.op = append(x.batch, x.op...), x.op[:0]
	}
}

func (x *idemIndex) dropOp() {
	if x != nil {
		x.op = x.op[:0]
	}
}

func (x *idemIndex) dropBatch() {
	if x != nil {
		x.batch, x.op = x.batch[:0], x.op[:0]
	}
}

// commitBatch applies the committed batch's deletions.
func (x *idemIndex) commitBatch() {
	if x == nil || len(x.batch) == 0 {
		return
	}
	x.mu.Lock()
	for _, h := range x.batch {
		if c := x.n[h]; c > 1 {
			x.n[h] = c - 1
		} else {
			delete(x.n, h)
		}
	}
	x.mu.Unlock()
	x.batch = x.batch[:0]
}
