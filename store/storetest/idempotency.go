package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/paymentd/paymentd/store"
)

// testIdempotencyTwiceConflicts stores an idempotency record and then the
// same key again, in another write and in the same one: both are ErrConflict
// and the first record stays; the key is scoped by method and by mode.
func testIdempotencyTwiceConflicts(t *testing.T, s *store.Store) {
	ctx := context.Background()
	rec := func(method, key, response string) *store.IdempotencyRecord {
		return &store.IdempotencyRecord{AccountID: "acct_1", Method: method, Key: key, RequestHash: []byte("hash-" + response),
			Response: []byte(response)}
	}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.PutIdempotency(rec("CreatePayment", "k1", "first")) })
	err := s.Write(ctx, func(tx *store.Tx) error { return tx.PutIdempotency(rec("CreatePayment", "k1", "second")) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("second PutIdempotency = %v; want ErrConflict", err)
	}
	err = s.Write(ctx, func(tx *store.Tx) error {
		if err := tx.PutIdempotency(rec("CreatePayment", "k2", "first")); err != nil {
			return err
		}
		return tx.PutIdempotency(rec("CreatePayment", "k2", "second"))
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutIdempotency twice in one write = %v; want ErrConflict", err)
	}
	if _, err := s.GetIdempotency(ctx, "acct_1", false, "CreatePayment", "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the write that conflicted left its first record: %v; want ErrNotFound", err)
	}
	// The key is scoped by method and mode.
	mustWrite(t, s, func(tx *store.Tx) error { return tx.PutIdempotency(rec("CreateRefund", "k1", "refund")) })
	live := rec("CreatePayment", "k1", "live")
	live.Livemode = true
	mustWrite(t, s, func(tx *store.Tx) error { return tx.PutIdempotency(live) })

	got, err := s.GetIdempotency(ctx, "acct_1", false, "CreatePayment", "k1")
	if err != nil || string(got.Response) != "first" || string(got.RequestHash) != "hash-first" || got.Code != 0 {
		t.Errorf("GetIdempotency = %+v, %v; want the first record", got, err)
	}
}
