package paymentd

// InvoiceStatus is an invoice's status, as stored and on the wire.
type InvoiceStatus string

// Invoice statuses: open → paid | partially_paid → paid | expired |
// canceled.
const (
	InvoiceOpen          InvoiceStatus = "open"
	InvoicePartiallyPaid InvoiceStatus = "partially_paid"
	InvoicePaid          InvoiceStatus = "paid"
	InvoiceExpired       InvoiceStatus = "expired"
	InvoiceCanceled      InvoiceStatus = "canceled"
)

var invoices = &object[InvoiceStatus]{
	noun: "Invoice", code: "invoice_unexpected_state",
	past: map[string]string{"create": "created", "pay": "paid", "expire": "expired", "cancel": "canceled", "update": "updated"},
	hint: func(verb string, from InvoiceStatus) string {
		switch {
		case verb == "cancel" && from == InvoicePartiallyPaid:
			return " Part of it has been paid; it stays payable until it is paid in full or expires."
		case verb == "cancel" && from == InvoicePaid:
			return " It has been paid; refund the customer instead."
		case from == InvoiceExpired, from == InvoiceCanceled:
			return " Create a new invoice."
		}
		return ""
	},
}

// The invoice lifecycle as data. Creation is a transition from the empty
// status. InvoiceUpdate keeps the status: a receipt that is not yet
// confirmed, or money confirmed after the invoice was settled (recorded,
// for the merchant to refund or honor).
var (
	InvoiceCreate  = Transition[InvoiceStatus]{"create", []InvoiceStatus{""}, InvoiceOpen, EventInvoiceCreated, Flow{}, invoices}
	InvoicePay     = Transition[InvoiceStatus]{"pay", []InvoiceStatus{InvoiceOpen}, InvoicePaid, EventInvoicePaid, Flow{}, invoices}
	InvoicePartial = Transition[InvoiceStatus]{"pay", []InvoiceStatus{InvoiceOpen, InvoicePartiallyPaid}, InvoicePartiallyPaid, EventInvoicePartiallyPaid, Flow{}, invoices}
	InvoiceCovered = Transition[InvoiceStatus]{"pay", []InvoiceStatus{InvoiceOpen, InvoicePartiallyPaid}, InvoicePaid, EventInvoicePaid, Flow{}, invoices}
	InvoiceExpire  = Transition[InvoiceStatus]{"expire", []InvoiceStatus{InvoiceOpen, InvoicePartiallyPaid}, InvoiceExpired, EventInvoiceExpired, Flow{}, invoices}
	InvoiceCancel  = Transition[InvoiceStatus]{"cancel", []InvoiceStatus{InvoiceOpen}, InvoiceCanceled, EventInvoiceCanceled, Flow{}, invoices}
	InvoiceUpdate  = Transition[InvoiceStatus]{"update", invoiceStatuses, "", EventInvoiceUpdated, Flow{}, invoices}
)

var invoiceStatuses = []InvoiceStatus{InvoiceOpen, InvoicePartiallyPaid, InvoicePaid, InvoiceExpired, InvoiceCanceled}

// InvoiceLifecycle is the invoice state machine.
var InvoiceLifecycle = Lifecycle[InvoiceStatus]{
	Statuses:    invoiceStatuses,
	Transitions: []Transition[InvoiceStatus]{InvoiceCreate, InvoicePay, InvoicePartial, InvoiceCovered, InvoiceExpire, InvoiceCancel, InvoiceUpdate},
}

// PayableInvoices are the invoices that may still take money that changes
// their status, and expire when due; the store selects by them.
var PayableInvoices = InvoiceExpire.Sources

// EndedInvoices are the invoices that stopped being payable: paid, expired
// or canceled. Money may still reach their provider late (a transfer after
// the expiry, a confirmation after it, a second transfer after payment).
var EndedInvoices = []InvoiceStatus{InvoicePaid, InvoiceExpired, InvoiceCanceled}

// Payable reports whether an invoice in status may still take money that
// changes its status.
func Payable(status InvoiceStatus) bool { return InvoiceExpire.Allows(status) }

// InvoiceReceipt gives the status change caused by confirmed money arriving
// on an invoice in status that has now been paid paid of amount: covered or
// partially paid; none (ok false) when the invoice is no longer payable.
func InvoiceReceipt(status InvoiceStatus, paid, amount int64) (t Transition[InvoiceStatus], ok bool) {
	if !Payable(status) {
		return Transition[InvoiceStatus]{}, false
	}
	if paid >= amount {
		return InvoiceCovered, true
	}
	return InvoicePartial, true
}

// InvoiceStep maps a provider's invoice status word to the status change it
// causes besides receipts: an expiry of a payable invoice, or a
// cancellation of an open one; none (ok false) otherwise, so that a
// provider's status never takes an invoice backwards.
func InvoiceStep(from InvoiceStatus, word string) (t Transition[InvoiceStatus], ok bool) {
	switch InvoiceStatus(word) {
	case InvoiceExpired:
		t = InvoiceExpire
	case InvoiceCanceled:
		t = InvoiceCancel
	default:
		return t, false
	}
	return t, t.Allows(from)
}
