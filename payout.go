package paymentd

// PayoutStatus is a payout's status, as stored and on the wire.
type PayoutStatus string

// Payout statuses: pending → processing → completed | rejected |
// cancelled (payouts spell it with two l's, invoices and payments with one;
// both are on the wire).
const (
	PayoutPending    PayoutStatus = "pending"
	PayoutProcessing PayoutStatus = "processing"
	PayoutCompleted  PayoutStatus = "completed"
	PayoutRejected   PayoutStatus = "rejected"
	PayoutCancelled  PayoutStatus = "cancelled"
)

var payouts = &object[PayoutStatus]{
	noun: "Payout", code: "payout_unexpected_state",
	past: map[string]string{"cancel": "cancelled", "process": "processed", "reject": "rejected", "create": "created", "complete": "completed"},
	hint: func(verb string, _ PayoutStatus) string {
		if verb == "cancel" {
			return " Only pending payouts can be cancelled; once processing has started the payout ends completed or rejected."
		}
		return ""
	},
}

// The payout lifecycle as data. Creation reserves the payout's
// total_amount from available; completion sends it to the provider's
// payouts book; rejection and cancellation return it. A provider may finish
// a payout it never reported as processing, so completion and rejection
// also start from pending.
var (
	PayoutCreate   = Transition[PayoutStatus]{"create", []PayoutStatus{""}, PayoutPending, EventPayoutCreated, Flow{SideAvailable, SideReserved}, payouts}
	PayoutProcess  = Transition[PayoutStatus]{"process", []PayoutStatus{PayoutPending}, PayoutProcessing, EventPayoutProcessing, Flow{}, payouts}
	PayoutComplete = Transition[PayoutStatus]{"complete", []PayoutStatus{PayoutPending, PayoutProcessing}, PayoutCompleted, EventPayoutCompleted, Flow{SideReserved, SidePaidOut}, payouts}
	PayoutReject   = Transition[PayoutStatus]{"reject", []PayoutStatus{PayoutPending, PayoutProcessing}, PayoutRejected, EventPayoutRejected, Flow{SideReserved, SideAvailable}, payouts}
	PayoutCancel   = Transition[PayoutStatus]{"cancel", []PayoutStatus{PayoutPending}, PayoutCancelled, EventPayoutCancelled, Flow{SideReserved, SideAvailable}, payouts}
)

// PayoutLifecycle is the payout state machine.
var PayoutLifecycle = Lifecycle[PayoutStatus]{
	Statuses:    []PayoutStatus{PayoutPending, PayoutProcessing, PayoutCompleted, PayoutRejected, PayoutCancelled},
	Transitions: []Transition[PayoutStatus]{PayoutCreate, PayoutProcess, PayoutComplete, PayoutReject, PayoutCancel},
}

// ActivePayouts are the payouts that may still change: the sandbox
// processor and the reconciler move them, and the store selects by them.
var ActivePayouts = PayoutComplete.Sources

// PayoutActive reports whether a payout in status may still change.
func PayoutActive(status PayoutStatus) bool { return PayoutComplete.Allows(status) }

// PayoutStep maps a provider's payout status word to the step forward it
// gives a payout in status from; none (ok false) when the word names no
// step from there, so that a provider's status never takes a payout
// backwards. A provider that stops a payout once processing has rejected it.
func PayoutStep(from PayoutStatus, word string) (t Transition[PayoutStatus], ok bool) {
	switch PayoutStatus(word) {
	case PayoutProcessing:
		t = PayoutProcess
	case PayoutCompleted:
		t = PayoutComplete
	case PayoutRejected:
		t = PayoutReject
	case PayoutCancelled:
		t = PayoutCancel
		if from == PayoutProcessing {
			t = PayoutReject
		}
	default:
		return t, false
	}
	return t, t.Allows(from)
}
