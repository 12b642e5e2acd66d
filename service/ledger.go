package service

import (
	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/store"
)

// insertMoves writes the moves a change caused (paymentd.Change.Moves) as
// ledger entries of one object, in its account, mode and currency: two
// entries per move, which sum to zero, with the object as their source.
func insertMoves(tx *store.Tx, accountID string, livemode bool, currency, sourceID string, moves []paymentd.Move) error {
	if len(moves) == 0 {
		return nil
	}
	entries := make([]store.LedgerEntry, 0, 2*len(moves))
	for _, m := range moves {
		entries = append(entries,
			store.LedgerEntry{AccountID: accountID, Livemode: livemode, Currency: currency, Book: string(m.From), Amount: -m.Amount, SourceID: sourceID},
			store.LedgerEntry{AccountID: accountID, Livemode: livemode, Currency: currency, Book: string(m.To), Amount: m.Amount, SourceID: sourceID})
	}
	return tx.InsertLedgerEntries(entries...)
}
