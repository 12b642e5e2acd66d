package store

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestArrivalRateDue walks the rule that decides whether the writer
// gathers before a batch: only when the last window's changes came at
// least two per delay, and never right after an idle spell.
func TestArrivalRateDue(t *testing.T) {
	const delay = time.Millisecond
	var a arrivalRate
	t0 := time.Unix(1_700_000_000, 0)
	if a.due(t0, delay) {
		t.Fatal("due before any change was seen; want no gather")
	}
	// 100 changes in the first window: one per 200 µs, five per delay.
	for i := range 100 {
		if a.due(t0.Add(time.Duration(i)*200*time.Microsecond), delay) {
			t.Fatalf("due within the first window (change %d); want no gather until a window is full", i)
		}
		a.n++
	}
	if !a.due(t0.Add(arrivalWindow), delay) {
		t.Fatal("not due after a window of one change per 200 µs; want a gather")
	}
	if a.due(t0.Add(arrivalWindow), 0) {
		t.Fatal("due with delay 0; want never")
	}
	// One caller taking turns with the disk: 24 changes in a window, one
	// per 830 µs — fewer than two per delay.
	a.n = 24
	if a.due(t0.Add(2*arrivalWindow), delay) {
		t.Fatal("due after a window of one change per 830 µs; want no gather")
	}
	// A busy window, then a second of silence: the first batch after it does not gather.
	a.n = 1000
	a.due(t0.Add(3*arrivalWindow), delay)
	a.n = 1
	if a.due(t0.Add(3*arrivalWindow+time.Second), delay) {
		t.Fatal("due after an idle second; want no gather")
	}
}

// TestCommitDelay runs the SQLite writer with a long commit delay (not in
// parallel with other tests: the writer defers to whatever else in the
// process is waiting for a CPU). A lone caller is never held by it; callers
// whose goroutines are runnable when a batch starts have their changes
// gathered into it; CPUs kept busy hold a change at most the delay; and
// Close during a gather commits what the batch holds.
func TestCommitDelay(t *testing.T) {
	const delay = time.Second
	path := filepath.Join(t.TempDir(), "paymentd.db")
	s, err := Open(context.Background(), path, Options{CommitDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	insert := func(id string) error {
		return s.Write(ctx, func(tx *Tx) error { return tx.InsertAccount(&Account{ID: id, Name: id, Created: tx.Now()}) })
	}

	start := time.Now()
	for i := range 30 {
		if err := insert(fmt.Sprintf("acct_lone_%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el >= delay {
		t.Errorf("30 changes of one caller took %v, at least one commit delay (%v); want none held", el, delay)
	}

	// 40 callers writing one change after another: when a commit answers
	// them they all become runnable, and the next batch gathers their
	// next changes instead of running with the first one or two.
	b0, o0 := s.WriterStats()
	var wg sync.WaitGroup
	for w := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if err := insert(fmt.Sprintf("acct_many_%02d_%04d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b1, o1 := s.WriterStats()
	if batch := float64(o1-o0) / float64(b1-b0); batch < 25 {
		t.Errorf("40 callers: %.1f changes per commit (%d commits); want most of them in each", batch, b1-b0)
	}

	// Goroutines that never stop computing keep every CPU busy: the
	// writer lets them run, but holds a change no longer than the delay
	// (the margin is for this machine's own scheduling).
	var stop atomic.Bool
	var spinning sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		spinning.Add(1)
		go func() {
			defer spinning.Done()
			for n := 0; !stop.Load(); n++ {
			}
		}()
	}
	start = time.Now()
	err = insert("acct_busy")
	took := time.Since(start)
	stop.Store(true)
	spinning.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if took > 10*delay {
		t.Errorf("a change with every CPU busy took %v; want it held at most about the commit delay (%v)", took, delay)
	}

	// Close while callers keep writing: every change answered nil is in
	// the database when it is opened again; the others got ErrClosed.
	answered := make(chan string, 40*1000)
	for w := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				id := fmt.Sprintf("acct_last_%02d_%04d", w, i)
				err := insert(id)
				if err == ErrClosed {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				answered <- id
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(answered)
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stored := map[string]bool{}
	for _, id := range accountIDs(t, s) {
		stored[id] = true
	}
	n := 0
	for id := range answered {
		n++
		if !stored[id] {
			t.Errorf("%s was answered as committed before Close but is not in the database", id)
		}
	}
	if n == 0 {
		t.Error("no change was answered before Close; want the writer to have committed some")
	}
}
