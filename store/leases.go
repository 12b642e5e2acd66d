package store

import (
	"context"
	"fmt"
	"time"
)

// Lease names one item of work that one holder at a time may work: a call
// in flight under an idempotency key, an object the reconciler asks a
// provider about, a background sweep. Replicas sharing a database claim
// their items here; a lease that expires (its holder crashed, or ran past
// it) may be taken over by another holder.
type Lease struct {
	AccountID string // "" for work that belongs to no account (sweeps)
	Livemode  bool
	Name      string // what is held, e.g. "idempotency/CreatePayment/<key>"
}

// ClaimLease takes l for owner until until, and reports whether owner holds
// it now: it was free, its lease had expired (at the batch's clock), or
// owner held it already (the lease is then extended). One statement in both
// dialects: PostgreSQL's ON CONFLICT locks the conflicting row and checks
// the WHERE on its newest version, so of two replicas claiming at once
// exactly one wins, and no session lock is needed (they break behind
// transaction pooling).
func (tx *Tx) ClaimLease(l Lease, owner string, until time.Time) (bool, error) {
	res, err := tx.exec(`INSERT INTO leases (account_id, livemode, name, owner, expires) VALUES (?,?,?,?,?)
		ON CONFLICT (account_id, livemode, name) DO UPDATE SET owner=excluded.owner, expires=excluded.expires
		WHERE leases.expires <= ? OR leases.owner = excluded.owner`,
		l.AccountID, boolInt(l.Livemode), l.Name, owner, micros(until), micros(tx.now))
	if err != nil {
		return false, fmt.Errorf("store: claim lease %s: %w", l.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: claim lease %s: %w", l.Name, err)
	}
	return n == 1, nil
}

// ReleaseLease gives l up, inside the write that finishes owner's work on
// it, and reports whether owner still held it. false means the lease
// expired and another holder may have taken the item over: the caller
// decides whether its write may still commit.
func (tx *Tx) ReleaseLease(l Lease, owner string) (bool, error) {
	res, err := tx.exec(`DELETE FROM leases WHERE account_id=? AND livemode=? AND name=? AND owner=?`,
		l.AccountID, boolInt(l.Livemode), l.Name, owner)
	if err != nil {
		return false, fmt.Errorf("store: release lease %s: %w", l.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: release lease %s: %w", l.Name, err)
	}
	return n == 1, nil
}

// ClaimLease is Tx.ClaimLease in a write of its own, committed before it
// returns, so that other replicas see the claim.
func (s *Store) ClaimLease(ctx context.Context, l Lease, owner string, until time.Time) (held bool, err error) {
	err = s.Write(ctx, func(tx *Tx) (err error) {
		held, err = tx.ClaimLease(l, owner, until)
		return err
	})
	return held, err
}

// ReleaseLease is Tx.ReleaseLease in a write of its own.
func (s *Store) ReleaseLease(ctx context.Context, l Lease, owner string) error {
	return s.Write(ctx, func(tx *Tx) error {
		_, err := tx.ReleaseLease(l, owner)
		return err
	})
}

// ExpireLeases deletes the leases that expired before t, so that the table
// holds only live claims (the idempotency sweep calls it).
func (tx *Tx) ExpireLeases(t time.Time) (int64, error) {
	res, err := tx.exec(`DELETE FROM leases WHERE expires < ?`, micros(t))
	if err != nil {
		return 0, fmt.Errorf("store: expire leases: %w", err)
	}
	return res.RowsAffected()
}

// ClaimDueDeliveries leases up to limit pending deliveries due at the
// batch's clock, the longest overdue first, to owner until until, and
// returns them. A delivery leased to another owner is skipped until its
// lease passes (the replica attempting it crashed, or its attempt outlived
// the lease). On PostgreSQL the rows are picked FOR UPDATE SKIP LOCKED:
// replicas claiming at the same moment take disjoint deliveries instead of
// queueing behind one another's locks. SQLite has one writer and needs no
// row locks.
func (tx *Tx) ClaimDueDeliveries(owner string, until time.Time, limit int) ([]*Delivery, error) {
	st, err := tx.stmt(`UPDATE webhook_deliveries SET lease_owner=?, lease_until=?
		WHERE (account_id, livemode, id) IN (
			SELECT account_id, livemode, id FROM webhook_deliveries INDEXED BY webhook_deliveries_due
			WHERE status='pending' AND next_attempt <= ? AND (lease_until IS NULL OR lease_until <= ?)
			ORDER BY next_attempt LIMIT ?` + tx.skipLocked() + `)
		RETURNING ` + deliveryCols)
	if err != nil {
		return nil, err
	}
	now := micros(tx.now)
	return scanDeliveries(st.QueryContext(context.Background(), owner, micros(until), now, now, limit))
}

// ReleaseDelivery clears owner's lease on a delivery, inside the write that
// records its attempt (or explicitly, when the attempt was not made).
func (tx *Tx) ReleaseDelivery(d *Delivery, owner string) error {
	_, err := tx.exec(`UPDATE webhook_deliveries SET lease_owner=NULL, lease_until=NULL
		WHERE account_id=? AND livemode=? AND id=? AND lease_owner=?`, d.AccountID, boolInt(d.Livemode), d.ID, owner)
	if err != nil {
		return fmt.Errorf("store: release delivery %s: %w", d.ID, err)
	}
	return nil
}

// ClaimDueDeliveries is Tx.ClaimDueDeliveries in a write of its own,
// committed before it returns.
func (s *Store) ClaimDueDeliveries(ctx context.Context, owner string, until time.Time, limit int) (ds []*Delivery, err error) {
	err = s.Write(ctx, func(tx *Tx) (err error) {
		ds, err = tx.ClaimDueDeliveries(owner, until, limit)
		return err
	})
	return ds, err
}

// skipLocked is the suffix of a claim's row selection (dialect.go).
func (tx *Tx) skipLocked() string { return tx.d.skipLocked() }
