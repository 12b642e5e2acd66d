package store

import (
	"context"
	"fmt"
)

// ProviderRecord is what paymentd recorded about one object that lives at a
// provider connection, as `paymentd reconcile` compares it with what the
// provider says. Amounts are minor units of Currency.
type ProviderRecord struct {
	Kind        string // payment | refund | invoice | payout
	ID          string
	AccountID   string
	Livemode    bool
	Provider    string // the connection name
	ProviderRef string // the provider's id, empty when it never answered one
	Status      string
	Currency    string
	Amount      int64
	// Captured and Refunded are a payment's; Paid is an invoice's
	// amount_paid; Fee is a payout's.
	Captured, Refunded, Paid, Fee int64
	// Reference is an invoice's or payout's transaction_reference; for a
	// refund, the id of its payment.
	Reference string
	// PaymentRef is a refund's payment's provider reference.
	PaymentRef string
	// Metadata is a payment's metadata as stored (JSON), e.g. the
	// invoice_id of a payment made on a hosted payment page.
	Metadata string
}

// ProviderRecords reads, read-only and on one snapshot (it can run beside a
// serving paymentd), every payment, refund, invoice and payout recorded
// against a provider connection other than except (the sandbox; "" keeps
// every object), oldest first within each kind.
func ProviderRecords(ctx context.Context, path, except string) ([]ProviderRecord, error) {
	sn, err := openSnapshot(ctx, path)
	if err != nil {
		return nil, err
	}
	defer sn.close()
	var out []ProviderRecord
	for _, q := range []struct {
		kind, query string
	}{
		{"payment", `SELECT id, account_id, livemode, provider, COALESCE(provider_ref, ''), status, currency, amount,
			amount_captured, amount_refunded, 0, 0, '', '', COALESCE(metadata, '') FROM payments WHERE provider != ? ORDER BY created, id`},
		{"refund", `SELECT r.id, r.account_id, r.livemode, p.provider, '', r.status, r.currency, r.amount,
			0, 0, 0, 0, r.payment_id, COALESCE(p.provider_ref, ''), '' FROM refunds r
			JOIN payments p ON p.account_id = r.account_id AND p.livemode = r.livemode AND p.id = r.payment_id
			WHERE p.provider != ? ORDER BY r.created, r.id`},
		{"invoice", `SELECT id, account_id, livemode, provider, COALESCE(provider_ref, ''), status, currency, amount,
			0, 0, amount_paid, 0, transaction_reference, '', '' FROM invoices WHERE provider != ? ORDER BY created, id`},
		{"payout", `SELECT id, account_id, livemode, provider, COALESCE(provider_ref, ''), status, currency, amount,
			0, 0, 0, fee, transaction_reference, '', '' FROM payouts WHERE provider != ? ORDER BY created, id`},
	} {
		rows, err := sn.query(ctx, q.query, except)
		if err != nil {
			return nil, fmt.Errorf("reading %ss: %w", q.kind, err)
		}
		for rows.Next() {
			r := ProviderRecord{Kind: q.kind}
			var live int
			if err := rows.Scan(&r.ID, &r.AccountID, &live, &r.Provider, &r.ProviderRef, &r.Status, &r.Currency, &r.Amount,
				&r.Captured, &r.Refunded, &r.Paid, &r.Fee, &r.Reference, &r.PaymentRef, &r.Metadata); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading %ss: %w", q.kind, err)
			}
			r.Livemode = live != 0
			out = append(out, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %ss: %w", q.kind, err)
		}
	}
	return out, nil
}
