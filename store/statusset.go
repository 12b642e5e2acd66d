package store

import (
	"slices"
	"strings"

	"github.com/paymentd/paymentd"
)

// statusIn returns the SQL condition that column holds one of the statuses
// of set, a status set of the domain package: `col IN ('a', 'b')`, or
// `col = 'a'` for one status. The sets are the domain's, so a status added
// to a lifecycle cannot silently fall out of a query; the statuses are
// constants of code, never input, and are quoted all the same. The order of
// set is kept: SQLite uses a partial index (INDEXED BY) only when the
// query's condition reads as the index's does.
func statusIn[S ~string](column string, set []S) string {
	quoted := make([]string, len(set))
	for i, s := range set {
		quoted[i] = "'" + strings.ReplaceAll(string(s), "'", "''") + "'"
	}
	if len(quoted) == 1 {
		return column + " = " + quoted[0]
	}
	return column + " IN (" + strings.Join(quoted, ", ") + ")"
}

// The status conditions of the reconciler's, the expiry sweep's and the
// provider lookups' queries, built once from the domain's sets.
var (
	unsettledPayment = statusIn("status", paymentd.UnsettledPayments)
	pendingRefund    = statusIn("r.status", paymentd.PendingRefunds)
	payableInvoice   = statusIn("status", paymentd.PayableInvoices)
	endedInvoice     = statusIn("status", paymentd.EndedInvoices)
	activePayout     = statusIn("status", paymentd.ActivePayouts)
	openPayment      = statusIn("status", paymentd.OpenPayments)
	// invoiceAttempt: a payment made for an invoice that the invoice may
	// not reflect yet (UnsettledInvoicePayment): open, or succeeded late.
	invoiceAttempt = statusIn("status", slices.Concat(paymentd.OpenPayments, []paymentd.PaymentStatus{paymentd.PaymentSucceeded}))
	// countedRefund: refunds that count against amount_refunded (check).
	countedRefund = statusIn("status", []paymentd.RefundStatus{paymentd.RefundPending, paymentd.RefundSucceeded})
)
