package paymentd

// EventType names an event as stored, listed by the events API and sent in
// webhooks; the strings are on the wire and never change.
type EventType string

// The event types, one per status a transition can reach, plus
// invoice.updated for a change that keeps an invoice's status.
const (
	EventPaymentProcessing      EventType = "payment.processing"
	EventPaymentRequiresCapture EventType = "payment.requires_capture"
	EventPaymentSucceeded       EventType = "payment.succeeded"
	EventPaymentCanceled        EventType = "payment.canceled"
	EventPaymentFailed          EventType = "payment.failed"
	EventPaymentUnknown         EventType = "payment.unknown"

	EventRefundCreated   EventType = "refund.created"
	EventRefundSucceeded EventType = "refund.succeeded"
	EventRefundFailed    EventType = "refund.failed"

	EventInvoiceCreated       EventType = "invoice.created"
	EventInvoicePartiallyPaid EventType = "invoice.partially_paid"
	EventInvoicePaid          EventType = "invoice.paid"
	EventInvoiceExpired       EventType = "invoice.expired"
	EventInvoiceCanceled      EventType = "invoice.canceled"
	EventInvoiceUpdated       EventType = "invoice.updated"

	EventPayoutCreated    EventType = "payout.created"
	EventPayoutProcessing EventType = "payout.processing"
	EventPayoutCompleted  EventType = "payout.completed"
	EventPayoutRejected   EventType = "payout.rejected"
	EventPayoutCancelled  EventType = "payout.cancelled"
)

// EventTypes lists every event type paymentd writes, in one place; a test
// checks that every transition announces one of them.
var EventTypes = []EventType{
	EventPaymentProcessing, EventPaymentRequiresCapture, EventPaymentSucceeded, EventPaymentCanceled,
	EventPaymentFailed, EventPaymentUnknown,
	EventRefundCreated, EventRefundSucceeded, EventRefundFailed,
	EventInvoiceCreated, EventInvoicePartiallyPaid, EventInvoicePaid, EventInvoiceExpired, EventInvoiceCanceled,
	EventInvoiceUpdated,
	EventPayoutCreated, EventPayoutProcessing, EventPayoutCompleted, EventPayoutRejected, EventPayoutCancelled,
}
