package paymentd

import "strings"

// Book names one balance of the append-only ledger. The account's own
// money is in available, pending, reserved and the payouts:<provider>
// books, none of which may go negative; provider:<name> is the provider's
// side of the books (what it collected for the account, negative while it
// owes it). The strings are stored in ledger rows and never change.
type Book string

// The account's own books.
const (
	// BookAvailable is money the account can pay out or refund now.
	BookAvailable Book = "available"
	// BookPending is money collected but not yet available.
	BookPending Book = "pending"
	// BookReserved holds money promised away but not yet gone: the
	// total_amount of unfinished payouts and the amount of pending refunds.
	BookReserved Book = "reserved"
)

// Prefixes of the books kept per provider.
const (
	ProviderBookPrefix = "provider:"
	PayoutsBookPrefix  = "payouts:"
)

// ProviderBook is what the provider called name collected for the account.
func ProviderBook(name string) Book { return Book(ProviderBookPrefix + name) }

// PayoutsBook is what completed payouts sent through the provider called
// name, fees included.
func PayoutsBook(name string) Book { return Book(PayoutsBookPrefix + name) }

// Own reports whether b holds the account's own money, which must never be
// negative.
func (b Book) Own() bool {
	return b == BookAvailable || b == BookPending || b == BookReserved || strings.HasPrefix(string(b), PayoutsBookPrefix)
}

// Move is one movement of money: Amount minor units leave From and arrive in
// To. A store writes it as two ledger entries that sum to zero.
type Move struct {
	From, To Book
	Amount   int64
}

// Side is a book as a transition names it, before the object's provider
// makes it a Book.
type Side int

// The sides a flow can move money between.
const (
	noSide        Side = iota
	SideAvailable      // the account's available book
	SideReserved       // the account's reserved book
	SideProvider       // provider:<the object's provider>
	SidePaidOut        // payouts:<the object's provider>
)

// book resolves the side for an object of provider.
func (s Side) book(provider string) Book {
	switch s {
	case SideAvailable:
		return BookAvailable
	case SideReserved:
		return BookReserved
	case SideProvider:
		return ProviderBook(provider)
	case SidePaidOut:
		return PayoutsBook(provider)
	}
	return ""
}

// Flow is the movement of money a transition causes, by side; the zero Flow
// moves nothing.
type Flow struct{ From, To Side }

// Moves returns the moves of amount the flow causes for an object of
// provider: none when the flow is zero or the amount is.
func (f Flow) Moves(provider string, amount int64) []Move {
	if f == (Flow{}) || amount == 0 {
		return nil
	}
	return []Move{{From: f.From.book(provider), To: f.To.book(provider), Amount: amount}}
}

// ReceiptFlow is money received towards an invoice (a confirmed transfer):
// from the provider that took it to the account's available book.
var ReceiptFlow = Flow{SideProvider, SideAvailable}
