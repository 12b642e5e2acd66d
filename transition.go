package paymentd

import "slices"

// Transition is one allowed change of an object's status, as data
// (temporalio/temporal's Transition{Sources, Destination, apply}): the
// statuses it may start from, the status it leads to, the event it
// announces and the money it moves. Creation is a transition from the empty
// status; a transition with an empty Destination keeps the status (an
// invoice's receipt that changes nothing else).
//
// The only way to a Change, which is what the service's writers take, is
// Apply, and Apply checks the status first: no caller can write a status
// change without the check.
type Transition[S ~string] struct {
	Name        string // the verb errors use: "capture", "cancel"
	Sources     []S
	Destination S
	Event       EventType
	Flow        Flow // the books the change moves money between; zero for none
	of          *object[S]
}

// object describes the lifecycle a transition belongs to, for its errors.
type object[S ~string] struct {
	noun string            // "Payment"
	code string            // "payment_unexpected_state"
	past map[string]string // the verbs' past tense ("cancel" → "canceled")
	hint func(verb string, from S) string
}

// Allows reports whether t may start from status from.
func (t Transition[S]) Allows(from S) bool { return slices.Contains(t.Sources, from) }

// Check returns nil when t may start from status from, else an *Error of
// KindConflict (wrapping ErrUnexpectedState) that names the object id and
// says what the caller can do instead.
func (t Transition[S]) Check(id string, from S) error {
	if t.Allows(from) {
		return nil
	}
	noun, code, verb, hint := "Object", "unexpected_state", t.Name+"d", ""
	if o := t.of; o != nil {
		noun, code = o.noun, o.code
		if p, ok := o.past[t.Name]; ok {
			verb = p
		}
		if o.hint != nil {
			hint = o.hint(t.Name, from)
		}
	}
	return &Error{Kind: KindConflict, Code: code, Param: "id", Err: ErrUnexpectedState,
		Message: noun + " " + id + " cannot be " + verb + " because its status is " + string(from) + "." + hint}
}

// Apply checks t against the object's current status and returns the
// change to write: its new status, event and moves.
func (t Transition[S]) Apply(id string, from S) (Change[S], error) {
	if err := t.Check(id, from); err != nil {
		return Change[S]{}, err
	}
	return Change[S]{t: t, from: from, ok: true}, nil
}

// Change is a checked transition of one object, made only by Apply: what
// a writer records (status, event, ledger moves) in one transaction.
type Change[S ~string] struct {
	t    Transition[S]
	from S
	ok   bool
}

// Applied reports whether c came from Apply; the zero Change did not, and
// writers refuse it.
func (c Change[S]) Applied() bool { return c.ok }

// From is the status the change starts from ("" for a creation).
func (c Change[S]) From() S { return c.from }

// Status is the status the object has after the change.
func (c Change[S]) Status() S {
	if c.t.Destination == "" {
		return c.from
	}
	return c.t.Destination
}

// Event is the event that announces the change.
func (c Change[S]) Event() EventType { return c.t.Event }

// Transition is the transition the change applies.
func (c Change[S]) Transition() Transition[S] { return c.t }

// Moves returns the ledger moves of amount the change causes for an object
// of provider.
func (c Change[S]) Moves(provider string, amount int64) []Move {
	return c.t.Flow.Moves(provider, amount)
}

// Lifecycle is the state machine of one kind of object: its statuses and
// its transitions, as tables that tests walk pair by pair.
type Lifecycle[S ~string] struct {
	Statuses    []S
	Transitions []Transition[S]
}

// Terminal reports whether no transition leads out of status s (one that
// keeps the status does not count).
func (l Lifecycle[S]) Terminal(s S) bool {
	for _, t := range l.Transitions {
		if t.Destination != "" && t.Destination != s && t.Allows(s) {
			return false
		}
	}
	return true
}

// NonTerminal lists the statuses an object can still leave, in the order
// of Statuses.
func (l Lifecycle[S]) NonTerminal() []S {
	var out []S
	for _, s := range l.Statuses {
		if !l.Terminal(s) {
			out = append(out, s)
		}
	}
	return out
}

// Strings returns the statuses as strings, for validating a status filter.
func Strings[S ~string](ss []S) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}
