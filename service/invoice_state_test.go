package service

import (
	"errors"
	"slices"
	"testing"
)

// TestInvoiceTransitions applies every transition from every status: it is
// allowed exactly from its sources, and refused from any other status with a
// conflict that names the invoice.
func TestInvoiceTransitions(t *testing.T) {
	from := append([]string{""}, invoiceStatuses...)
	for _, tr := range invoiceTransitions {
		for _, status := range from {
			err := tr.check("inv_x", status)
			if want := slices.Contains(tr.sources, status); want != (err == nil) {
				t.Errorf("%s (→ %s) from %q: error %v; want allowed=%v", tr.name, tr.dest, status, err, want)
				continue
			}
			var de *Error
			if err != nil && (!errors.As(err, &de) || de.Kind != KindConflict || de.Code != "invoice_unexpected_state") {
				t.Errorf("%s from %q: %v; want a conflict invoice_unexpected_state", tr.name, status, err)
			}
		}
		if !slices.Contains(invoiceStatuses, tr.dest) || tr.event == "" {
			t.Errorf("%s: destination %q, event %q; want a known status and an event", tr.name, tr.dest, tr.event)
		}
	}
	// Money received: partially paid until covered, then paid; no change once settled.
	for _, tc := range []struct {
		status       string
		paid, amount int64
		dest         string
		ok           bool
	}{
		{InvoiceOpen, 10, 25, InvoicePartiallyPaid, true},
		{InvoiceOpen, 25, 25, InvoicePaid, true},
		{InvoicePartiallyPaid, 20, 25, InvoicePartiallyPaid, true},
		{InvoicePartiallyPaid, 30, 25, InvoicePaid, true},
		{InvoicePaid, 50, 25, "", false},
		{InvoiceExpired, 25, 25, "", false},
		{InvoiceCanceled, 25, 25, "", false},
	} {
		tr, ok := receiptTransition(tc.status, tc.paid, tc.amount)
		if ok != tc.ok || tr.dest != tc.dest || (ok && tr.check("inv_x", tc.status) != nil) {
			t.Errorf("receipt on %s, paid %d of %d: %s %v; want %q %v", tc.status, tc.paid, tc.amount, tr.dest, ok, tc.dest, tc.ok)
		}
	}
}
