package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestFullDatabaseRecoversWithoutRestart fills the database to SQLite's
// max_page_count (a full disk, without root): every change of a failing
// batch is refused with ErrFull and none is kept, WriteHealth reports the
// store degraded, and once the cap is raised (space returns) writes succeed
// again in the same process; the database then passes integrity_check and
// paymentd's own checks.
func TestFullDatabaseRecoversWithoutRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paymentd.db")
	s, err := Open(t.Context(), path, Options{MaxPageCount: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(i int) error {
		return s.Write(context.Background(), func(tx *Tx) error {
			return tx.PutIdempotency(&IdempotencyRecord{AccountID: "acct_x", Method: "m", Key: fmt.Sprint("k-", i),
				RequestHash: []byte("h"), Response: bytes.Repeat([]byte{'r'}, 2000), Created: tx.Now()})
		})
	}
	// Concurrent writers, so that failing batches hold several changes.
	var mu sync.Mutex
	acked := map[int]bool{}
	fullSeen := 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g * 1000; i < g*1000+200; i++ {
				err := put(i)
				mu.Lock()
				switch {
				case err == nil:
					acked[i] = true
				case errors.Is(err, ErrFull):
					fullSeen++
				default:
					t.Errorf("put %d: %v; want nil or ErrFull", i, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fullSeen == 0 {
		t.Fatalf("no write failed with ErrFull; %d succeeded", len(acked))
	}
	// A batch of one change may still fit where a batch of several did not,
	// and its commit rightly clears the degraded state: write alone until a
	// change is refused, so that the last write failed for space.
	for i := 9000; ; i++ {
		err := put(i)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil || i == 9100 {
			t.Fatalf("put %d alone: %v; want ErrFull before long", i, err)
		}
		acked[i] = true
	}
	degraded, reason, since := s.WriteHealth()
	if !degraded || reason == "" || since.IsZero() {
		t.Errorf("WriteHealth = %v, %q, %v; want degraded with a reason", degraded, reason, since)
	}
	// An empty commit succeeds on a full database: it is no recovery.
	if err := s.ProbeWrite(t.Context()); err != nil {
		t.Fatal(err)
	}
	if degraded, _, _ := s.WriteHealth(); !degraded {
		t.Error("an empty commit cleared the degraded state")
	}
	// Every acknowledged change is stored, and no refused one.
	var n int
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT count(*) FROM idempotency_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(acked) {
		t.Errorf("%d records stored; %d were acknowledged", n, len(acked))
	}

	// Space returns: raise the cap on the writer's connection.
	if err := s.Write(t.Context(), func(tx *Tx) error {
		_, err := tx.exec("PRAGMA max_page_count = 1000000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i := 10000; i < 10050; i++ {
		if err := put(i); err != nil {
			t.Fatalf("after space returned, put %d: %v", i, err)
		}
	}
	if degraded, reason, _ := s.WriteHealth(); degraded {
		t.Errorf("still degraded after writes succeeded: %s", reason)
	}
	var integrity string
	if err := s.rdb.QueryRowContext(t.Context(), `PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check = %q, %v", integrity, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*) FROM idempotency_keys`).Scan(&n); err != nil || n != len(acked)+50 {
		t.Errorf("after reopening: %d records, %v; want %d", n, err, len(acked)+50)
	}
	r, err := Check(t.Context(), path)
	if err != nil || !r.OK() {
		t.Errorf("Check after recovery: %v, %+v", err, r)
	}
}
