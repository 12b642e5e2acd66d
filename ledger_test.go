package paymentd

import (
	"slices"
	"testing"
)

// TestMoves checks the money each transition moves, as data: which books,
// how much, and that only creation, capture and settlement of money move it.
func TestMoves(t *testing.T) {
	const amount = 1234
	for _, tc := range []struct {
		name     string
		moves    []Move
		from, to Book
	}{
		{"payment created captured", PaymentCreateCaptured.Flow.Moves("aslan", amount), "provider:aslan", BookAvailable},
		{"payment captured", PaymentCapture.Flow.Moves("aslan", amount), "provider:aslan", BookAvailable},
		{"payment settled succeeded", PaymentSettleSucceeded.Flow.Moves("aslan", amount), "provider:aslan", BookAvailable},
		{"refund created", RefundCreate.Flow.Moves("aslan", amount), BookAvailable, BookReserved},
		{"refund succeeded", RefundSucceed.Flow.Moves("aslan", amount), BookReserved, "provider:aslan"},
		{"refund failed", RefundFail.Flow.Moves("aslan", amount), BookReserved, BookAvailable},
		{"payout created", PayoutCreate.Flow.Moves("aspayds", amount), BookAvailable, BookReserved},
		{"payout completed", PayoutComplete.Flow.Moves("aspayds", amount), BookReserved, "payouts:aspayds"},
		{"payout rejected", PayoutReject.Flow.Moves("aspayds", amount), BookReserved, BookAvailable},
		{"payout cancelled", PayoutCancel.Flow.Moves("aspayds", amount), BookReserved, BookAvailable},
		{"invoice receipt", ReceiptFlow.Moves("aspayds", amount), "provider:aspayds", BookAvailable},
	} {
		if want := []Move{{tc.from, tc.to, amount}}; !slices.Equal(tc.moves, want) {
			t.Errorf("%s: moves %v; want %v", tc.name, tc.moves, want)
		}
	}
	for _, tr := range []Transition[PaymentStatus]{PaymentCreateAuthorized, PaymentCreateDeclined, PaymentCreateUnknown,
		PaymentCreateProcessing, PaymentCancel, PaymentSettleFailed, PaymentSettleAuthorized} {
		if m := tr.Flow.Moves("aslan", amount); m != nil {
			t.Errorf("payment %s → %s moves %v; want no money moved", tr.Name, tr.Destination, m)
		}
	}
	if m := PayoutProcess.Flow.Moves("aspayds", amount); m != nil {
		t.Errorf("payout processing moves %v; want none", m)
	}
	if m := PaymentCapture.Flow.Moves("aslan", 0); m != nil {
		t.Errorf("a move of nothing: %v; want none", m)
	}
	ch, err := PayoutComplete.Apply("po_1", PayoutProcessing)
	if err != nil || !slices.Equal(ch.Moves("x", 5), []Move{{BookReserved, "payouts:x", 5}}) {
		t.Errorf("applied payout completion: %v %v", ch.Moves("x", 5), err)
	}
}

func TestOwnBooks(t *testing.T) {
	for b, own := range map[Book]bool{BookAvailable: true, BookPending: true, BookReserved: true,
		PayoutsBook("aspayds"): true, ProviderBook("aslan"): false, "other": false} {
		if b.Own() != own {
			t.Errorf("%s.Own() = %v; want %v", b, b.Own(), own)
		}
	}
}
