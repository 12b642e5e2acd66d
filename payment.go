package paymentd

// PaymentStatus is a payment's status, as stored and on the wire.
type PaymentStatus string

// Payment statuses: requires_capture → succeeded | canceled; processing →
// succeeded | failed; unknown when a provider did not answer, until the
// reconciler settles it.
const (
	PaymentRequiresCapture PaymentStatus = "requires_capture"
	PaymentProcessing      PaymentStatus = "processing"
	PaymentSucceeded       PaymentStatus = "succeeded"
	PaymentCanceled        PaymentStatus = "canceled"
	PaymentFailed          PaymentStatus = "failed"
	PaymentUnknown         PaymentStatus = "unknown"
)

var payments = &object[PaymentStatus]{
	noun: "Payment", code: "payment_unexpected_state",
	past: map[string]string{"capture": "captured", "cancel": "canceled", "settle": "settled", "create": "created"},
	hint: func(verb string, from PaymentStatus) string {
		switch {
		case verb == "cancel" && from == PaymentSucceeded:
			return " A captured payment cannot be canceled; refund it instead."
		case verb == "capture" && from == PaymentSucceeded:
			return " It has already been captured."
		case verb == "capture" && from == PaymentCanceled:
			return " It was canceled; create a new payment."
		}
		return ""
	},
}

// capturedFlow moves a captured amount from the provider's book (what it
// collected for the account) to available.
var capturedFlow = Flow{SideProvider, SideAvailable}

// answerable are the statuses a provider's answer to an authorization
// applies to: a new payment, or one recorded processing before the call.
var answerable = []PaymentStatus{"", PaymentProcessing}

// The payment lifecycle as data. Creation is modeled as transitions from
// the empty status: the provider's answer to the authorization, applied to
// the new payment or to the one recorded processing before a provider
// across the network was asked. A settlement is the reconciler's (or a
// provider webhook's) confirmed answer for a payment left unknown or
// processing.
var (
	PaymentCreateCaptured   = Transition[PaymentStatus]{"create", answerable, PaymentSucceeded, EventPaymentSucceeded, capturedFlow, payments}
	PaymentCreateAuthorized = Transition[PaymentStatus]{"create", answerable, PaymentRequiresCapture, EventPaymentRequiresCapture, Flow{}, payments}
	PaymentCreateDeclined   = Transition[PaymentStatus]{"create", answerable, PaymentFailed, EventPaymentFailed, Flow{}, payments}
	// PaymentCreateUnknown records a payment whose provider did not
	// answer: money may have moved, so it is never reported as failed.
	PaymentCreateUnknown = Transition[PaymentStatus]{"create", answerable, PaymentUnknown, EventPaymentUnknown, Flow{}, payments}
	// PaymentCreateProcessing records a payment before a provider across
	// the network is asked; the provider's answer then settles it.
	PaymentCreateProcessing = Transition[PaymentStatus]{"create", []PaymentStatus{""}, PaymentProcessing, EventPaymentProcessing, Flow{}, payments}
	PaymentCapture          = Transition[PaymentStatus]{"capture", []PaymentStatus{PaymentRequiresCapture}, PaymentSucceeded, EventPaymentSucceeded, capturedFlow, payments}
	PaymentCancel           = Transition[PaymentStatus]{"cancel", []PaymentStatus{PaymentRequiresCapture}, PaymentCanceled, EventPaymentCanceled, Flow{}, payments}
	PaymentSettleSucceeded  = Transition[PaymentStatus]{"settle", []PaymentStatus{PaymentUnknown, PaymentProcessing}, PaymentSucceeded, EventPaymentSucceeded, capturedFlow, payments}
	PaymentSettleFailed     = Transition[PaymentStatus]{"settle", []PaymentStatus{PaymentUnknown, PaymentProcessing}, PaymentFailed, EventPaymentFailed, Flow{}, payments}
	// PaymentSettleAuthorized settles a payment left unknown that the
	// provider reports authorized but not captured (manual capture).
	PaymentSettleAuthorized = Transition[PaymentStatus]{"settle", []PaymentStatus{PaymentUnknown, PaymentProcessing}, PaymentRequiresCapture, EventPaymentRequiresCapture, Flow{}, payments}
)

// PaymentLifecycle is the payment state machine.
var PaymentLifecycle = Lifecycle[PaymentStatus]{
	Statuses: []PaymentStatus{PaymentRequiresCapture, PaymentProcessing, PaymentSucceeded, PaymentCanceled, PaymentFailed, PaymentUnknown},
	Transitions: []Transition[PaymentStatus]{PaymentCreateCaptured, PaymentCreateAuthorized, PaymentCreateDeclined,
		PaymentCreateUnknown, PaymentCreateProcessing, PaymentCapture, PaymentCancel,
		PaymentSettleSucceeded, PaymentSettleFailed, PaymentSettleAuthorized},
}

// Status sets of payments, which the store builds its SQL from.
var (
	// UnsettledPayments are the payments the reconciler asks providers
	// about: those a settlement starts from.
	UnsettledPayments = PaymentSettleSucceeded.Sources
	// OpenPayments are the payments that can still change status; a
	// payment attempt for an invoice in one of them may still take money.
	OpenPayments = PaymentLifecycle.NonTerminal()
	// RefundablePayments are the payments a refund may start from.
	RefundablePayments = []PaymentStatus{PaymentSucceeded}
)

// PaymentSettlement maps a provider's payment status word to the transition
// that settles a payment left unknown or processing; ok is false while the
// provider has not settled it either.
func PaymentSettlement(word string) (t Transition[PaymentStatus], ok bool) {
	switch word {
	case "captured", "succeeded":
		return PaymentSettleSucceeded, true
	case "failed":
		return PaymentSettleFailed, true
	case "authorized":
		return PaymentSettleAuthorized, true
	}
	return Transition[PaymentStatus]{}, false
}
