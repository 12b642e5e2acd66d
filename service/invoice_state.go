package service

import "slices"

// Invoice statuses.
const (
	InvoiceOpen          = "open"
	InvoicePartiallyPaid = "partially_paid"
	InvoicePaid          = "paid"
	InvoiceExpired       = "expired"
	InvoiceCanceled      = "canceled"
)

var invoiceStatuses = []string{InvoiceOpen, InvoicePartiallyPaid, InvoicePaid, InvoiceExpired, InvoiceCanceled}

// invoiceTransition is one allowed change of an invoice's status and the
// event it announces. Applying one from any other status is a conflict.
type invoiceTransition struct {
	name    string
	sources []string
	dest    string
	event   string
}

// The invoice state machine as data. Creation is a transition from the empty
// status. A change that keeps the status (a receipt that is not yet
// confirmed, or one confirmed after the invoice was settled) announces
// invoice.updated.
var (
	tInvoiceCreate  = invoiceTransition{"create", []string{""}, InvoiceOpen, "invoice.created"}
	tInvoicePay     = invoiceTransition{"pay", []string{InvoiceOpen}, InvoicePaid, "invoice.paid"}
	tInvoicePartial = invoiceTransition{"pay", []string{InvoiceOpen, InvoicePartiallyPaid}, InvoicePartiallyPaid, "invoice.partially_paid"}
	tInvoiceCovered = invoiceTransition{"pay", []string{InvoiceOpen, InvoicePartiallyPaid}, InvoicePaid, "invoice.paid"}
	tInvoiceExpire  = invoiceTransition{"expire", []string{InvoiceOpen, InvoicePartiallyPaid}, InvoiceExpired, "invoice.expired"}
	tInvoiceCancel  = invoiceTransition{"cancel", []string{InvoiceOpen}, InvoiceCanceled, "invoice.canceled"}
)

var invoiceTransitions = []invoiceTransition{tInvoiceCreate, tInvoicePay, tInvoicePartial, tInvoiceCovered, tInvoiceExpire, tInvoiceCancel}

// eventInvoiceUpdated announces a change that keeps the invoice's status.
const eventInvoiceUpdated = "invoice.updated"

// payable reports whether an invoice in status may still take money that
// changes its status.
func payable(status string) bool { return status == InvoiceOpen || status == InvoicePartiallyPaid }

func (t invoiceTransition) allows(from string) bool { return slices.Contains(t.sources, from) }

// check returns a conflict error that says why, and what to do instead.
func (t invoiceTransition) check(id, from string) error {
	if t.allows(from) {
		return nil
	}
	verb := map[string]string{"create": "created", "pay": "paid", "expire": "expired", "cancel": "canceled"}[t.name]
	hint := ""
	switch {
	case t.name == "cancel" && from == InvoicePartiallyPaid:
		hint = " Part of it has been paid; it stays payable until it is paid in full or expires."
	case t.name == "cancel" && from == InvoicePaid:
		hint = " It has been paid; refund the customer instead."
	case from == InvoiceExpired:
		hint = " Create a new invoice."
	case from == InvoiceCanceled:
		hint = " Create a new invoice."
	}
	return &Error{Kind: KindConflict, Code: "invoice_unexpected_state", Param: "id",
		Message: "Invoice " + id + " cannot be " + verb + " because its status is " + from + "." + hint}
}

// receiptTransition gives the status change caused by confirmed money
// arriving on an invoice that now has paid of amount: none (ok false) when the
// invoice is no longer payable.
func receiptTransition(status string, paid, amount int64) (invoiceTransition, bool) {
	if !payable(status) {
		return invoiceTransition{}, false
	}
	if paid >= amount {
		return tInvoiceCovered, true
	}
	return tInvoicePartial, true
}
