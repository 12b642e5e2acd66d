package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestIdempotencyIndexNeverHidesARecord checks that every committed record
// is found through the in-memory index: after writes, replaces, a rolled
// back change, deletions, the sweep and a reopen of the file.
func TestIdempotencyIndexNeverHidesARecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "paymentd.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(key string, created time.Time) *IdempotencyRecord {
		return &IdempotencyRecord{AccountID: "acct_1", Method: "CreatePayment", Key: key, RequestHash: []byte("h-" + key),
			Response: []byte("r-" + key), Created: created}
	}
	found := func(s *Store, key string) bool {
		t.Helper()
		r, err := s.GetIdempotency(ctx, "acct_1", false, "CreatePayment", key)
		if errors.Is(err, ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(r.RequestHash) != "h-"+key {
			t.Fatalf("%s: hash %q", key, r.RequestHash)
		}
		return true
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	old := now.Add(-48 * time.Hour)
	if found(s, "k1") {
		t.Fatal("k1 found before it was written")
	}
	mustWrite(t, s, func(tx *Tx) error { return tx.PutIdempotency(rec("k1", now)) })
	mustWrite(t, s, func(tx *Tx) error { return tx.PutIdempotency(rec("old", old)) })
	// Replace adds a record when there was none, and keeps one that was there.
	mustWrite(t, s, func(tx *Tx) error { return tx.ReplaceIdempotency(rec("k2", now)) })
	mustWrite(t, s, func(tx *Tx) error {
		r := rec("k2", now)
		r.Response = []byte("final")
		return tx.ReplaceIdempotency(r)
	})
	if !found(s, "k1") || !found(s, "k2") || !found(s, "old") {
		t.Fatal("a written record is not found")
	}
	if r, _ := s.GetIdempotency(ctx, "acct_1", false, "CreatePayment", "k2"); string(r.Response) != "final" {
		t.Fatalf("replaced response %q", r.Response)
	}
	// A rolled-back write leaves nothing to find (and costs only a read).
	boom := errors.New("boom")
	if err := s.Write(ctx, func(tx *Tx) error {
		if err := tx.PutIdempotency(rec("k3", now)); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if found(s, "k3") {
		t.Fatal("rolled-back record found")
	}
	mustWrite(t, s, func(tx *Tx) error { return tx.PutIdempotency(rec("k3", now)) })
	// A deletion that is rolled back keeps the record found.
	if err := s.Write(ctx, func(tx *Tx) error {
		if err := tx.DeleteIdempotency(rec("k3", now)); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if !found(s, "k3") {
		t.Fatal("k3 lost by a rolled-back deletion")
	}
	mustWrite(t, s, func(tx *Tx) error { return tx.DeleteIdempotency(rec("k3", now)) })
	if found(s, "k3") {
		t.Fatal("deleted k3 found")
	}
	// The sweep deletes old records and, with them, their counts; a key
	// swept and written again in the same batch stays found.
	var swept int64
	mustWrite(t, s, func(tx *Tx) error {
		sw := IdempotencySweep{Before: now.Add(-24 * time.Hour)}
		err := tx.SweepIdempotency(&sw, 100)
		swept = sw.Deleted
		if err != nil {
			return err
		}
		return tx.PutIdempotency(rec("old", now))
	})
	if swept != 1 || !found(s, "old") {
		t.Fatalf("swept %d, old found %v", swept, found(s, "old"))
	}
	h := s.idem.hash("acct_1", false, "CreatePayment", "old")
	if c := s.idem.n[h]; c != 1 {
		t.Fatalf("count of old %d, want 1", c)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A reopened store counts what the file holds.
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for key, want := range map[string]bool{"k1": true, "k2": true, "old": true, "k3": false} {
		if got := found(s, key); got != want {
			t.Errorf("after reopen, %s found %v, want %v", key, got, want)
		}
	}
}

// TestIdempotencyIndexCountsCollisions checks that two keys sharing a hash
// stay found until both are deleted.
func TestIdempotencyIndexCountsCollisions(t *testing.T) {
	x := newIdemIndex()
	x.added(42)
	x.added(42)
	x.deleted(42)
	x.releaseOp()
	x.commitBatch()
	if !x.mayExist(42) {
		t.Fatal("one of two records with hash 42 deleted, the other not found")
	}
	x.deleted(42)
	x.releaseOp()
	x.commitBatch()
	if x.mayExist(42) {
		t.Fatal("both deleted, still counted")
	}
}
