package store

import (
	"context"
	"fmt"
	"time"
)

// Reads of invoices and payouts that a provider connection serves, for
// inbound provider webhooks (which name the provider's id for an object and
// no account) and for the reconciler (which polls them until they settle).

// ProviderInvoice finds the invoice, of any account, that the connection
// provider knows as providerRef or, failing that, the open or partially
// paid one with the transaction reference: aspayds' webhooks carry both.
// More than one invoice with that reference is ErrNotFound: a webhook must
// never be applied to a guess.
func (s *Store) ProviderInvoice(ctx context.Context, provider, providerRef, reference string) (*Invoice, error) {
	var invs []*Invoice
	var err error
	if providerRef != "" {
		invs, err = s.invoices(ctx, `SELECT `+invoiceCols+` FROM invoices INDEXED BY invoices_by_provider_ref
			WHERE provider=? AND provider_ref=? AND provider_ref IS NOT NULL`, provider, providerRef)
		if err != nil {
			return nil, err
		}
	}
	if len(invs) == 0 && reference != "" {
		invs, err = s.invoices(ctx, `SELECT `+invoiceCols+` FROM invoices INDEXED BY invoices_due
			WHERE `+payableInvoice+` AND provider=? AND transaction_reference=?`, provider, reference)
		if err != nil {
			return nil, err
		}
	}
	if len(invs) != 1 {
		return nil, ErrNotFound
	}
	return invs[0], s.attachReceipts(ctx, invs)
}

// ProviderPayout finds the payout, of any account, that the connection
// provider knows as providerRef or, failing that, the pending or processing
// one with the reference it was sent under (a payout whose creation went
// unanswered has no provider reference yet): its transaction reference, or
// its own id, which is what aspayds is sent. More than one match is
// ErrNotFound.
func (s *Store) ProviderPayout(ctx context.Context, provider, providerRef, reference string) (*Payout, error) {
	var ps []*Payout
	var err error
	if providerRef != "" {
		ps, err = s.payouts(ctx, `SELECT `+payoutCols+` FROM payouts INDEXED BY payouts_by_provider_ref
			WHERE provider=? AND provider_ref=? AND provider_ref IS NOT NULL`, provider, providerRef)
		if err != nil {
			return nil, err
		}
	}
	if len(ps) == 0 && reference != "" {
		ps, err = s.payouts(ctx, `SELECT `+payoutCols+` FROM payouts INDEXED BY payouts_active
			WHERE `+activePayout+` AND provider=? AND (transaction_reference=? OR id=?)`, provider, reference, reference)
		if err != nil {
			return nil, err
		}
	}
	if len(ps) != 1 {
		return nil, ErrNotFound
	}
	return ps[0], nil
}

// invoices runs a query for invoice rows (without their receipts).
func (s *Store) invoices(ctx context.Context, query string, args ...any) ([]*Invoice, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: invoices: %w", err)
	}
	defer rows.Close()
	var out []*Invoice
	for rows.Next() {
		inv, err := scanInvoice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}

// ProviderInvoicesDue returns up to limit open or partially paid invoices
// that a provider serves (they have a provider reference), with their
// receipts, that are due a status call: never asked and unchanged since
// firstBefore, or asked before and due again at now.
func (s *Store) ProviderInvoicesDue(ctx context.Context, firstBefore, now time.Time, limit int) ([]*Invoice, []ReconcileState, error) {
	rows, err := s.query(ctx, `SELECT `+hookPrefixCols("i.", invoiceCols)+`, c.attempts, c.next_check
		FROM invoices AS i INDEXED BY invoices_due LEFT JOIN reconcile_checks AS c ON c.account_id = i.account_id AND c.livemode = i.livemode AND c.object_id = i.id
		WHERE i.`+payableInvoice+` AND i.provider_ref IS NOT NULL
		  AND ((c.next_check IS NULL AND i.updated <= ?) OR c.next_check <= ?)
		LIMIT ?`, micros(firstBefore), micros(now), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: provider invoices due: %w", err)
	}
	invs, states, err := scanDue(rows, scanInvoice)
	if err != nil {
		return nil, nil, err
	}
	return invs, states, s.attachReceipts(ctx, invs)
}

// EndedProviderInvoicesDue returns up to limit paid, expired or canceled invoices
// that a provider serves, whose expiry is at or after expiredAfter, with
// their receipts, that are due a status call as ProviderInvoicesDue says:
// money may reach the provider after the invoice ended.
func (s *Store) EndedProviderInvoicesDue(ctx context.Context, expiredAfter, firstBefore, now time.Time, limit int) ([]*Invoice, []ReconcileState, error) {
	rows, err := s.query(ctx, `SELECT `+hookPrefixCols("i.", invoiceCols)+`, c.attempts, c.next_check
		FROM invoices AS i INDEXED BY invoices_ended_by_provider LEFT JOIN reconcile_checks AS c ON c.account_id = i.account_id AND c.livemode = i.livemode AND c.object_id = i.id
		WHERE i.`+endedInvoice+` AND i.provider_ref IS NOT NULL AND i.expires_at >= ?
		  AND ((c.next_check IS NULL AND i.updated <= ?) OR c.next_check <= ?)
		LIMIT ?`, micros(expiredAfter), micros(firstBefore), micros(now), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: ended provider invoices due: %w", err)
	}
	invs, states, err := scanDue(rows, scanInvoice)
	if err != nil {
		return nil, nil, err
	}
	return invs, states, s.attachReceipts(ctx, invs)
}

// ProviderPayoutsDue returns up to limit pending or processing payouts of
// providers other than except (the in-process sandbox, which moves its
// payouts itself) that are due a status call, as ProviderInvoicesDue does
// for invoices.
func (s *Store) ProviderPayoutsDue(ctx context.Context, except string, firstBefore, now time.Time, limit int) ([]*Payout, []ReconcileState, error) {
	rows, err := s.query(ctx, `SELECT `+hookPrefixCols("p.", payoutCols)+`, c.attempts, c.next_check
		FROM payouts AS p INDEXED BY payouts_active LEFT JOIN reconcile_checks AS c ON c.account_id = p.account_id AND c.livemode = p.livemode AND c.object_id = p.id
		WHERE p.`+activePayout+` AND p.provider <> ?
		  AND ((c.next_check IS NULL AND p.updated <= ?) OR c.next_check <= ?)
		LIMIT ?`, except, micros(firstBefore), micros(now), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: provider payouts due: %w", err)
	}
	return scanDue(rows, scanPayout)
}
