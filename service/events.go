package service

import (
	"google.golang.org/protobuf/proto"

	"github.com/paymentd/paymentd/store"
)

// recordEvent writes the event announcing obj's change inside the state
// change's own transaction, so that nothing is announced that was rolled
// back and nothing committed goes unannounced. Every state change of every
// object calls it; it is the one place where events (and, with webhooks,
// their deliveries) are written.
func recordEvent(tx *store.Tx, pr *Principal, typ, objectID string, obj proto.Message) error {
	data, err := proto.Marshal(obj)
	if err != nil {
		return err
	}
	return tx.InsertEvent(&store.Event{ID: NewID(PrefixEvent), AccountID: pr.AccountID, Livemode: pr.Livemode,
		Type: typ, ObjectID: objectID, Data: data, Created: tx.Now()})
}
