package service

import "github.com/paymentd/paymentd/store"

// Payout statuses.
const (
	PayoutPending    = "pending"
	PayoutProcessing = "processing"
	PayoutCompleted  = "completed"
	PayoutRejected   = "rejected"
	PayoutCancelled  = "cancelled"
)

var payoutStatuses = []string{PayoutPending, PayoutProcessing, PayoutCompleted, PayoutRejected, PayoutCancelled}

// payoutTransition is one allowed change of a payout's status: the event it
// announces and the ledger movement of the payout's total_amount it causes
// (from one book to another; none when from is empty).
type payoutTransition struct {
	name     string
	sources  []string
	dest     string
	event    string
	from, to string
}

// bookPaidOut stands for the payout's provider book, "payouts:<provider>".
const bookPaidOut = store.PayoutsBookPrefix

// The payout state machine as data. Creation is a transition from the empty
// status. A provider may finish a payout it never reported as processing, so
// completion and rejection also start from pending.
var (
	poCreate   = payoutTransition{"create", []string{""}, PayoutPending, "payout.created", store.BookAvailable, store.BookReserved}
	poProcess  = payoutTransition{"process", []string{PayoutPending}, PayoutProcessing, "payout.processing", "", ""}
	poComplete = payoutTransition{"complete", []string{PayoutPending, PayoutProcessing}, PayoutCompleted, "payout.completed", store.BookReserved, bookPaidOut}
	poReject   = payoutTransition{"reject", []string{PayoutPending, PayoutProcessing}, PayoutRejected, "payout.rejected", store.BookReserved, store.BookAvailable}
	poCancel   = payoutTransition{"cancel", []string{PayoutPending}, PayoutCancelled, "payout.cancelled", store.BookReserved, store.BookAvailable}
)

var payoutTransitions = []payoutTransition{poCreate, poProcess, poComplete, poReject, poCancel}

func (t payoutTransition) allows(from string) bool {
	for _, s := range t.sources {
		if s == from {
			return true
		}
	}
	return false
}

// check returns a conflict naming what the caller can do instead.
func (t payoutTransition) check(id, from string) error {
	if t.allows(from) {
		return nil
	}
	msg := "Payout " + id + " cannot be " + payoutPastTense(t.name) + " because its status is " + from + "."
	if t.name == "cancel" {
		msg += " Only pending payouts can be cancelled; once processing has started the payout ends completed or rejected."
	}
	return &Error{Kind: KindConflict, Code: "payout_unexpected_state", Param: "id", Message: msg}
}

func payoutPastTense(verb string) string {
	switch verb {
	case "cancel":
		return "cancelled"
	case "process":
		return "processed"
	case "reject":
		return "rejected"
	}
	return verb + "d"
}

// entries returns the ledger entries the transition writes for p.
func (t payoutTransition) entries(p *store.Payout) []store.LedgerEntry {
	if t.from == "" {
		return nil
	}
	book := func(b string) string {
		if b == bookPaidOut {
			return store.PayoutsBookPrefix + p.Provider
		}
		return b
	}
	return []store.LedgerEntry{
		{AccountID: p.AccountID, Livemode: p.Livemode, Currency: p.Currency, Book: book(t.from), Amount: -p.TotalAmount, SourceID: p.ID},
		{AccountID: p.AccountID, Livemode: p.Livemode, Currency: p.Currency, Book: book(t.to), Amount: p.TotalAmount, SourceID: p.ID},
	}
}
