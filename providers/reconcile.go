package providers

import "context"

// ListedPayment is one payment in a provider's list of its payments.
type ListedPayment struct {
	PaymentState
	// PaymentdID is the paymentd payment id the provider keeps with the
	// payment (e.g. in its metadata), empty when it keeps none.
	PaymentdID string
}

// PaymentLister is implemented by providers that can list every payment
// they hold, so `paymentd reconcile` can find money taken for payments
// paymentd has no record of. ListPayments calls each for every payment,
// newest first, and stops at the first error each returns.
type PaymentLister interface {
	ListPayments(ctx context.Context, each func(ListedPayment) error) error
}

// InvoiceBatchGetter is implemented by invoice providers that read many
// invoices in one call. ids are provider invoice ids or transaction
// references, at most MaxBatch of them; the ids the provider does not know
// come back in notFound.
type InvoiceBatchGetter interface {
	BatchInvoices(ctx context.Context, ids []string) (found []InvoiceState, notFound []string, err error)
}

// PayoutBatchGetter is implemented by payout providers that read many
// payouts in one call, like InvoiceBatchGetter.
type PayoutBatchGetter interface {
	BatchPayouts(ctx context.Context, ids []string) (found []PayoutState, notFound []string, err error)
}
