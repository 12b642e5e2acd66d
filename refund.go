package paymentd

// RefundStatus is a refund's status, as stored and on the wire.
type RefundStatus string

// Refund statuses: pending while the provider has not answered
// definitely, its amount reserved; then succeeded or failed.
const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
)

var refunds = &object[RefundStatus]{
	noun: "Refund", code: "refund_unexpected_state",
	past: map[string]string{"succeed": "succeeded", "fail": "failed", "create": "created"},
}

// The refund lifecycle as data. Creation reserves the amount from
// available (the account pays refunds from its balance); success sends it
// to the provider, failure returns it to available.
var (
	RefundCreate  = Transition[RefundStatus]{"create", []RefundStatus{""}, RefundPending, EventRefundCreated, Flow{SideAvailable, SideReserved}, refunds}
	RefundSucceed = Transition[RefundStatus]{"succeed", []RefundStatus{RefundPending}, RefundSucceeded, EventRefundSucceeded, Flow{SideReserved, SideProvider}, refunds}
	RefundFail    = Transition[RefundStatus]{"fail", []RefundStatus{RefundPending}, RefundFailed, EventRefundFailed, Flow{SideReserved, SideAvailable}, refunds}
)

// RefundLifecycle is the refund state machine.
var RefundLifecycle = Lifecycle[RefundStatus]{
	Statuses:    []RefundStatus{RefundPending, RefundSucceeded, RefundFailed},
	Transitions: []Transition[RefundStatus]{RefundCreate, RefundSucceed, RefundFail},
}

// PendingRefunds are the refunds the reconciler asks providers about.
var PendingRefunds = RefundSucceed.Sources

// RefundSettlement maps a provider's refund status word to the transition
// that settles a pending refund; ok is false while the provider has not
// settled it either.
func RefundSettlement(word string) (t Transition[RefundStatus], ok bool) {
	switch RefundStatus(word) {
	case RefundSucceeded:
		return RefundSucceed, true
	case RefundFailed:
		return RefundFail, true
	}
	return Transition[RefundStatus]{}, false
}
