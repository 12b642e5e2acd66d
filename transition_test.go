package paymentd

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// walk applies every transition of l from every status (and from the empty
// status of an object not yet created): it is allowed exactly from its
// sources, giving a change to its destination with its event; from any
// other status it is refused with a conflict that names the object and
// wraps ErrUnexpectedState, and gives no change.
func walk[S ~string](t *testing.T, noun string, l Lifecycle[S]) {
	t.Helper()
	from := append([]S{""}, l.Statuses...)
	for _, tr := range l.Transitions {
		if tr.Destination != "" && !slices.Contains(l.Statuses, tr.Destination) {
			t.Errorf("%s %s: destination %q is not a %s status", noun, tr.Name, tr.Destination, noun)
		}
		if !slices.Contains(EventTypes, tr.Event) || !strings.HasPrefix(string(tr.Event), noun+".") {
			t.Errorf("%s %s: event %q is not a %s event of EventTypes", noun, tr.Name, tr.Event, noun)
		}
		for _, status := range from {
			ch, err := tr.Apply(noun+"_x", status)
			legal := slices.Contains(tr.Sources, status)
			switch {
			case legal && err != nil:
				t.Errorf("%s %s from %q: %v; want allowed", noun, tr.Name, status, err)
			case legal && (!ch.Applied() || ch.From() != status || ch.Event() != tr.Event):
				t.Errorf("%s %s from %q: change %+v; want one from %q announcing %s", noun, tr.Name, status, ch, status, tr.Event)
			case legal && tr.Destination == "" && ch.Status() != status:
				t.Errorf("%s %s from %q: status %q; want it kept", noun, tr.Name, status, ch.Status())
			case legal && tr.Destination != "" && ch.Status() != tr.Destination:
				t.Errorf("%s %s from %q: status %q; want %q", noun, tr.Name, status, ch.Status(), tr.Destination)
			case !legal:
				var de *Error
				if !errors.As(err, &de) || de.Kind != KindConflict || de.Code != noun+"_unexpected_state" ||
					!errors.Is(err, ErrUnexpectedState) || ch.Applied() {
					t.Errorf("%s %s from %q: %v (change applied %v); want a conflict %s_unexpected_state", noun, tr.Name, status, err, ch.Applied(), noun)
					continue
				}
				if want := noun + "_x cannot be "; !strings.Contains(de.Message, want) || strings.Contains(de.Message, "  ") {
					t.Errorf("%s %s from %q: message %q; want it to say %q", noun, tr.Name, status, de.Message, want)
				}
			}
		}
	}
	// Every status is reachable, and every status but terminal ones can be left.
	for _, s := range l.Statuses {
		if !slices.ContainsFunc(l.Transitions, func(tr Transition[S]) bool { return tr.Destination == s }) {
			t.Errorf("%s status %q: no transition leads to it", noun, s)
		}
	}
}

func TestLifecycles(t *testing.T) {
	walk(t, "payment", PaymentLifecycle)
	walk(t, "refund", RefundLifecycle)
	walk(t, "invoice", InvoiceLifecycle)
	walk(t, "payout", PayoutLifecycle)
}

// TestEventTypesOnce checks that every event type is listed once and is
// announced by some transition of its object's lifecycle.
func TestEventTypesOnce(t *testing.T) {
	var announced []EventType
	for _, tr := range PaymentLifecycle.Transitions {
		announced = append(announced, tr.Event)
	}
	for _, tr := range RefundLifecycle.Transitions {
		announced = append(announced, tr.Event)
	}
	for _, tr := range InvoiceLifecycle.Transitions {
		announced = append(announced, tr.Event)
	}
	for _, tr := range PayoutLifecycle.Transitions {
		announced = append(announced, tr.Event)
	}
	for i, e := range EventTypes {
		if slices.Index(EventTypes, e) != i {
			t.Errorf("event type %s listed twice", e)
		}
		if !slices.Contains(announced, e) {
			t.Errorf("event type %s: no transition announces it", e)
		}
	}
}

// TestStatusSets checks the sets the store selects by against the tables:
// a status added to a lifecycle cannot silently fall out of them.
func TestStatusSets(t *testing.T) {
	same := func(name string, got, want []string) {
		t.Helper()
		g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
		if !slices.Equal(g, w) {
			t.Errorf("%s = %v; want %v", name, g, w)
		}
	}
	same("PayableInvoices", Strings(PayableInvoices), Strings(InvoiceLifecycle.NonTerminal()))
	same("ActivePayouts", Strings(ActivePayouts), Strings(PayoutLifecycle.NonTerminal()))
	same("PendingRefunds", Strings(PendingRefunds), Strings(RefundLifecycle.NonTerminal()))
	same("OpenPayments", Strings(OpenPayments), []string{"requires_capture", "processing", "unknown"})
	// A payment that waits for the merchant's capture is open but not the
	// reconciler's to settle.
	same("UnsettledPayments", Strings(UnsettledPayments), []string{"processing", "unknown"})
	for _, s := range PaymentLifecycle.Statuses {
		if open := slices.Contains(OpenPayments, s); open == PaymentLifecycle.Terminal(s) {
			t.Errorf("payment status %s: open %v, terminal %v", s, open, PaymentLifecycle.Terminal(s))
		}
	}
	for _, s := range InvoiceLifecycle.Statuses {
		if Payable(s) != slices.Contains(PayableInvoices, s) {
			t.Errorf("Payable(%s) = %v; want membership of PayableInvoices", s, Payable(s))
		}
	}
	for _, s := range PayoutLifecycle.Statuses {
		if PayoutActive(s) != slices.Contains(ActivePayouts, s) {
			t.Errorf("PayoutActive(%s) = %v; want membership of ActivePayouts", s, PayoutActive(s))
		}
	}
}

// TestProviderWords checks the maps from provider status words to
// transitions: a word settles only what it names, from where the table
// allows, and never takes an object backwards.
func TestProviderWords(t *testing.T) {
	for word, want := range map[string]PaymentStatus{"captured": PaymentSucceeded, "succeeded": PaymentSucceeded,
		"failed": PaymentFailed, "authorized": PaymentRequiresCapture, "pending": "", "": ""} {
		tr, ok := PaymentSettlement(word)
		if ok != (want != "") || tr.Destination != want || (ok && !tr.Allows(PaymentUnknown)) {
			t.Errorf("PaymentSettlement(%q) = %s %v; want %q", word, tr.Destination, ok, want)
		}
	}
	for word, want := range map[string]RefundStatus{"succeeded": RefundSucceeded, "failed": RefundFailed, "pending": "", "": ""} {
		if tr, ok := RefundSettlement(word); ok != (want != "") || tr.Destination != want {
			t.Errorf("RefundSettlement(%q) = %s %v; want %q", word, tr.Destination, ok, want)
		}
	}
	for _, from := range InvoiceLifecycle.Statuses {
		for _, word := range append(Strings(InvoiceLifecycle.Statuses), "pending", "") {
			tr, ok := InvoiceStep(from, word)
			want := (word == "expired" && Payable(from)) || (word == "canceled" && from == InvoiceOpen)
			if ok != want || (ok && string(tr.Destination) != word) {
				t.Errorf("InvoiceStep(%s, %q) = %s %v; want %v", from, word, tr.Destination, ok, want)
			}
		}
	}
	for _, from := range PayoutLifecycle.Statuses {
		for _, word := range append(Strings(PayoutLifecycle.Statuses), "") {
			tr, ok := PayoutStep(from, word)
			if ok && !tr.Allows(from) {
				t.Errorf("PayoutStep(%s, %q) = %s, which does not start from %s", from, word, tr.Name, from)
			}
			if ok != (PayoutActive(from) && word != "" && word != "pending" && !(from == PayoutProcessing && word == "processing")) {
				t.Errorf("PayoutStep(%s, %q) ok = %v", from, word, ok)
			}
		}
	}
	if tr, _ := PayoutStep(PayoutProcessing, "cancelled"); tr.Destination != PayoutRejected {
		t.Errorf("a provider's cancel of a processing payout gives %s; want rejected", tr.Destination)
	}
}

func TestInvoiceReceipt(t *testing.T) {
	for _, tc := range []struct {
		status       InvoiceStatus
		paid, amount int64
		dest         InvoiceStatus
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
		tr, ok := InvoiceReceipt(tc.status, tc.paid, tc.amount)
		if ok != tc.ok || tr.Destination != tc.dest || (ok && tr.Check("inv_x", tc.status) != nil) {
			t.Errorf("receipt on %s, paid %d of %d: %s %v; want %q %v", tc.status, tc.paid, tc.amount, tr.Destination, ok, tc.dest, tc.ok)
		}
	}
}

// TestMessages keeps the hints callers rely on to know what to do instead.
func TestMessages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{PaymentCancel.Check("pay_1", PaymentSucceeded), "Payment pay_1 cannot be canceled because its status is succeeded. A captured payment cannot be canceled; refund it instead."},
		{PaymentCapture.Check("pay_1", PaymentCanceled), "Payment pay_1 cannot be captured because its status is canceled. It was canceled; create a new payment."},
		{InvoiceCancel.Check("inv_1", InvoicePaid), "Invoice inv_1 cannot be canceled because its status is paid. It has been paid; refund the customer instead."},
		{InvoicePay.Check("inv_1", InvoiceExpired), "Invoice inv_1 cannot be paid because its status is expired. Create a new invoice."},
		{PayoutCancel.Check("po_1", PayoutProcessing), "Payout po_1 cannot be cancelled because its status is processing. Only pending payouts can be cancelled; once processing has started the payout ends completed or rejected."},
		{RefundSucceed.Check("re_1", RefundFailed), "Refund re_1 cannot be succeeded because its status is failed."},
	} {
		var de *Error
		if !errors.As(tc.err, &de) || de.Message != tc.want || de.Param != "id" {
			t.Errorf("got %v; want message %q on param id", tc.err, tc.want)
		}
	}
}
