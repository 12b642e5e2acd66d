package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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
	if !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrStale) {
		t.Errorf("second PutIdempotency = %v; want ErrConflict (a taken key), not ErrStale", err)
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

// testIdempotencyReplaceAndExpire replaces an interim outcome with the final
// one, deletes one record, and expires the records older than a time.
func testIdempotencyReplaceAndExpire(t *testing.T, s *store.Store) {
	ctx := context.Background()
	var cutoff time.Time
	mustWrite(t, s, func(tx *store.Tx) error {
		cutoff = tx.Now()
		for _, key := range []string{"old-1", "old-2"} {
			if err := tx.PutIdempotency(&store.IdempotencyRecord{AccountID: "acct_1", Method: "CreateRefund", Key: key,
				RequestHash: []byte("h"), Response: []byte("pending"), Created: cutoff.Add(-time.Hour)}); err != nil {
				return err
			}
		}
		return tx.PutIdempotency(&store.IdempotencyRecord{AccountID: "acct_1", Method: "CreateRefund", Key: "new",
			RequestHash: []byte("h"), Created: cutoff})
	})
	final := &store.IdempotencyRecord{AccountID: "acct_1", Method: "CreateRefund", Key: "old-1", Code: 9, Response: []byte("succeeded"), EventID: "evt_9"}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.ReplaceIdempotency(final) })
	got, err := s.GetIdempotency(ctx, "acct_1", false, "CreateRefund", "old-1")
	if err != nil || string(got.Response) != "succeeded" || got.Code != 9 || got.EventID != "evt_9" || string(got.RequestHash) != "h" {
		t.Errorf("after ReplaceIdempotency: %+v, %v; want the final outcome under the first request hash", got, err)
	}
	fresh := &store.IdempotencyRecord{AccountID: "acct_1", Method: "CreateRefund", Key: "fresh", RequestHash: []byte("f"), Response: []byte("r"), Created: cutoff}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.ReplaceIdempotency(fresh) }) // none yet: stores it
	if got, err := s.GetIdempotency(ctx, "acct_1", false, "CreateRefund", "fresh"); err != nil || string(got.Response) != "r" {
		t.Errorf("ReplaceIdempotency of a new key: %+v, %v; want it stored", got, err)
	}
	if got, err := s.GetIdempotency(ctx, "acct_1", false, "CreateRefund", "new"); err != nil || len(got.Response) != 0 {
		t.Errorf("a record without a response: %+v, %v; want an empty response", got, err)
	}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.DeleteIdempotency(fresh) })
	if _, err := s.GetIdempotency(ctx, "acct_1", false, "CreateRefund", "fresh"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after DeleteIdempotency: %v; want ErrNotFound", err)
	}
	// Ten more records, every other one old: the sweep walks the 13 keys
	// three per write, so it takes five writes and deletes the 7 old ones.
	mustWrite(t, s, func(tx *store.Tx) error {
		for i := range 10 {
			created := cutoff
			if i%2 == 0 {
				created = cutoff.Add(-time.Minute)
			}
			if err := tx.PutIdempotency(&store.IdempotencyRecord{AccountID: "acct_1", Method: "CreatePayment",
				Key: fmt.Sprintf("bulk-%d", i), RequestHash: []byte("h"), Created: created}); err != nil {
				return err
			}
		}
		return nil
	})
	sw, writes := store.IdempotencySweep{Before: cutoff}, 0
	for !sw.Done {
		var next store.IdempotencySweep
		mustWrite(t, s, func(tx *store.Tx) error {
			next = sw
			return tx.SweepIdempotency(&next, 3)
		})
		sw = next
		if writes++; writes > 10 {
			t.Fatal("the sweep does not end")
		}
	}
	if sw.Deleted != 7 || writes != 5 {
		t.Errorf("the sweep deleted %d records in %d writes; want the 7 older ones in 5 writes of 3 keys", sw.Deleted, writes)
	}
	for i := range 10 {
		_, err := s.GetIdempotency(ctx, "acct_1", false, "CreatePayment", fmt.Sprintf("bulk-%d", i))
		if found := err == nil; found != (i%2 == 1) {
			t.Errorf("record bulk-%d after the sweep: %v; want found %v", i, err, i%2 == 1)
		}
	}
	for key, want := range map[string]bool{"old-1": false, "old-2": false, "new": true} {
		_, err := s.GetIdempotency(ctx, "acct_1", false, "CreateRefund", key)
		if found := err == nil; found != want || err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record %s after expiry: %v; want found %v", key, err, want)
		}
	}
}
