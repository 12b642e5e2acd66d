package fakekit

import (
	"maps"
	"slices"
)

// Money is a fake provider's own record of what it did with one of its
// objects, in minor units of Currency: the provider's side of the books,
// kept by the fake independently of what it answers (tampered or lost
// answers do not change it), so tests can compare it with what paymentd
// recorded.
type Money struct {
	// ID is the provider's id for the object (the key of Books).
	ID string
	// Kind is what the object is: payment, invoice or payout.
	Kind     string
	Currency string
	// Authorized is money held on a card and not captured.
	Authorized int64
	// Captured is money taken from the payer.
	Captured int64
	// Refunded is money given back out of Captured.
	Refunded int64
	// PaidOut is money the provider sent to a recipient (completed payouts).
	PaidOut int64
	// Pending is money of a payout the provider accepted and has not yet
	// completed or rejected.
	Pending int64
	// Received is money that arrived towards an invoice.
	Received int64
	// Status is the provider's own status word for the object.
	Status string
	// Aliases are the other names the object is known by: the reference or
	// idempotency key paymentd sent (its own id, a transaction reference),
	// or a second provider id (Aslan's payment id for a confirmed
	// authorization).
	Aliases []string
}

// Book records a change to the object id's book: f is called with the
// book (a new one of the kind and currency when the object has none), under
// the kit's lock, so it must not call back into the kit.
func (k *Kit) Book(id, kind, currency string, f func(*Money)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.books == nil {
		k.books, k.alias = map[string]*Money{}, map[string]string{}
	}
	m := k.books[id]
	if m == nil {
		m = &Money{ID: id, Kind: kind, Currency: currency}
		k.books[id] = m
	}
	if f != nil {
		f(m)
	}
}

// Alias lets the object id's book be found by name too (paymentd's id, a
// transaction reference, a second provider id). An empty name is ignored.
func (k *Kit) Alias(id, name string) {
	if name == "" || name == id {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if m := k.books[id]; m != nil {
		k.alias[name] = id
		if !slices.Contains(m.Aliases, name) {
			m.Aliases = append(m.Aliases, name)
		}
	}
}

// Books returns a copy of every object's book, by the provider's id.
func (k *Kit) Books() map[string]Money {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]Money, len(k.books))
	for id, m := range k.books {
		c := *m
		c.Aliases = slices.Clone(m.Aliases)
		out[id] = c
	}
	return out
}

// BookFor returns the book of the object known by name: its provider id or
// one of its aliases.
func (k *Kit) BookFor(name string) (Money, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id := name
	if a, ok := k.alias[name]; ok {
		id = a
	}
	m := k.books[id]
	if m == nil {
		return Money{}, false
	}
	c := *m
	c.Aliases = slices.Clone(m.Aliases)
	return c, true
}

// Totals sums every book by currency: what the provider holds in total of
// each kind of movement.
func (k *Kit) Totals() map[string]Money {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]Money{}
	for _, id := range slices.Sorted(maps.Keys(k.books)) {
		m := k.books[id]
		t := out[m.Currency]
		t.Currency = m.Currency
		t.Authorized += m.Authorized
		t.Captured += m.Captured
		t.Refunded += m.Refunded
		t.PaidOut += m.PaidOut
		t.Pending += m.Pending
		t.Received += m.Received
		out[m.Currency] = t
	}
	return out
}
