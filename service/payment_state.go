package service

// Payment statuses.
const (
	StatusRequiresCapture = "requires_capture"
	StatusProcessing      = "processing"
	StatusSucceeded       = "succeeded"
	StatusCanceled        = "canceled"
	StatusFailed          = "failed"
	StatusUnknown         = "unknown"
)

var paymentStatuses = []string{StatusRequiresCapture, StatusProcessing, StatusSucceeded, StatusCanceled, StatusFailed, StatusUnknown}

// transition is one allowed change of a payment's status, with the event it
// announces. Applying a transition from any other status is a conflict.
type transition struct {
	name    string
	sources []string
	dest    string
	event   string
}

// The payment state machine as data. Creation is modeled as transitions from
// the empty status.
var (
	tCreateCaptured = transition{"create", []string{""}, StatusSucceeded, "payment.succeeded"}
	tCreateAuth     = transition{"create", []string{""}, StatusRequiresCapture, "payment.requires_capture"}
	tCreateDeclined = transition{"create", []string{""}, StatusFailed, "payment.failed"}
	tCreateUnknown  = transition{"create", []string{""}, StatusUnknown, "payment.unknown"}
	// tCreateProcessing records a payment before a provider across the
	// network is asked; the provider's answer then settles it.
	tCreateProcessing = transition{"create", []string{""}, StatusProcessing, "payment.processing"}
	tCapture          = transition{"capture", []string{StatusRequiresCapture}, StatusSucceeded, "payment.succeeded"}
	tCancel           = transition{"cancel", []string{StatusRequiresCapture}, StatusCanceled, "payment.canceled"}
	tSettleSuccess    = transition{"settle", []string{StatusUnknown, StatusProcessing}, StatusSucceeded, "payment.succeeded"}
	tSettleFailed     = transition{"settle", []string{StatusUnknown, StatusProcessing}, StatusFailed, "payment.failed"}
	// refundable is not a status change; it lists the statuses a refund may start from.
	refundable = []string{StatusSucceeded}
)

var transitions = []transition{tCreateCaptured, tCreateAuth, tCreateDeclined, tCreateUnknown, tCreateProcessing, tCapture, tCancel, tSettleSuccess, tSettleFailed}

// allows reports whether the transition may be applied to a payment in status from.
func (t transition) allows(from string) bool {
	for _, s := range t.sources {
		if s == from {
			return true
		}
	}
	return false
}

// check returns a conflict error naming what the caller can do instead.
func (t transition) check(id, from string) error {
	if t.allows(from) {
		return nil
	}
	hint := ""
	switch {
	case t.name == "cancel" && from == StatusSucceeded:
		hint = " A captured payment cannot be canceled; refund it instead."
	case t.name == "capture" && from == StatusSucceeded:
		hint = " It has already been captured."
	case t.name == "capture" && from == StatusCanceled:
		hint = " It was canceled; create a new payment."
	}
	return &Error{Kind: KindConflict, Code: "payment_unexpected_state", Param: "id",
		Message: "Payment " + id + " cannot be " + pastTense(t.name) + " because its status is " + from + "." + hint}
}

func pastTense(verb string) string {
	switch verb {
	case "capture":
		return "captured"
	case "cancel":
		return "canceled"
	case "settle":
		return "settled"
	}
	return verb + "d"
}
