package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
)

// ErrClosed is returned by Write after the store has been closed.
var ErrClosed = errors.New("store: closed")

// op is one state change waiting for the writer.
type op struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
}

// writer owns the only write connection. It takes every op that is waiting,
// runs them in one transaction, commits once and answers them all.
type writer struct {
	conn     *sql.Conn
	ops      chan *op
	maxBatch int
	tx       *Tx

	mu      sync.RWMutex
	closing bool
	stopped chan struct{}

	nBatches, nOps atomic.Int64 // counters for WriterStats

	full fullState // writes failing for lack of space (full.go)

	observer  atomic.Pointer[Observer] // SetObserver (observe.go)
	batchErr  error                    // the error that failed the running batch as a whole
	opEvents  []string                 // event types the running change recorded
	batchEvts []string                 // event types of the batch's changes that succeeded
}

// WriterStats reports how many commits the writer made and how many state
// changes they held; ops/batches is the mean group-commit size.
func (s *Store) WriterStats() (batches, ops int64) {
	return s.w.nBatches.Load(), s.w.nOps.Load()
}

func startWriter(ctx context.Context, db *sql.DB, maxBatch int, payments *paymentCache, idem *idemIndex) (*writer, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: writer connection: %w", err)
	}
	w := &writer{
		conn:     conn,
		ops:      make(chan *op, 4*maxBatch),
		maxBatch: maxBatch,
		stopped:  make(chan struct{}),
	}
	w.tx = &Tx{conn: conn, stmts: map[string]*sql.Stmt{}, hooks: newHookCache(), balances: newBalanceCache(), payments: payments, idem: idem}
	go w.loop()
	return w, nil
}

// Write runs fn inside a write transaction and returns once the transaction
// holding it is durably committed (or fn's own error, in which case none of
// fn's writes are kept). fn may share its transaction with other callers'
// functions, each isolated by a SAVEPOINT, so it must not keep state outside
// the database that would be wrong if the commit failed; and it runs on the
// writer goroutine, so it must be quick and must not call Write.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	if s.tracer == nil {
		return s.w.submit(ctx, fn)
	}
	ctx, span := s.tracer.Start(ctx, "store.write")
	err := s.w.submit(ctx, fn)
	if err != nil {
		span.SetStatus(codes.Error, "the write was not committed")
	}
	span.End()
	return err
}

func (w *writer) submit(ctx context.Context, fn func(*Tx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closing {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.ops <- o:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	// Once queued, wait for the outcome even if ctx ends: the change may
	// already be committed, and the caller must not report it as failed.
	return <-o.done
}

func (w *writer) stop() {
	w.mu.Lock()
	if !w.closing {
		w.closing = true
		close(w.ops)
	}
	w.mu.Unlock()
	<-w.stopped
	w.tx.closeStmts()
	w.conn.Close()
}

func (w *writer) loop() {
	defer close(w.stopped)
	batch := make([]*op, 0, w.maxBatch)
	errs := make([]error, 0, w.maxBatch)
	for first := range w.ops {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case o, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		start := time.Now()
		errs = w.run(batch, errs[:0])
		w.nBatches.Add(1)
		w.nOps.Add(int64(len(batch)))
		if o := w.observer.Load(); o != nil {
			(*o).Committed(time.Since(start), len(batch), w.batchErr)
			if len(w.batchEvts) > 0 {
				(*o).EventsCommitted(w.batchEvts)
			}
		}
		w.batchErr, w.batchEvts = nil, w.batchEvts[:0]
		for i, o := range batch {
			o.done <- errs[i]
			batch[i] = nil
		}
	}
}

// run executes one batch in one transaction and returns each op's outcome.
func (w *writer) run(batch []*op, errs []error) []error {
	if _, err := w.tx.exec("BEGIN IMMEDIATE"); err != nil {
		w.batchErr = err
		for range batch {
			errs = append(errs, fmt.Errorf("store: begin: %w", err))
		}
		return errs
	}
	w.tx.now = time.Now().UTC().Truncate(time.Microsecond) // the precision stored
	anyOK, full := false, error(nil)
	for _, o := range batch {
		if full != nil {
			errs = append(errs, fullError(full))
			continue
		}
		err := w.apply(o)
		errs = append(errs, err)
		anyOK = anyOK || err == nil
		if isFull(err) {
			// SQLite may have rolled back the whole transaction: nothing of
			// this batch can be acknowledged (full.go).
			full = err
		}
	}
	if full != nil {
		for i := range errs {
			if errs[i] == nil || isFull(errs[i]) {
				errs[i] = fullError(full)
			}
		}
		anyOK = false
		w.batchErr = full
	}
	if !anyOK {
		w.batchEvts = w.batchEvts[:0]
		_, _ = w.tx.exec("ROLLBACK")
		w.tx.balances.dropBatch()
		w.tx.idem.dropBatch()
		w.tx.payments.dropBatch()
		if full != nil {
			w.noteFull(full)
		}
		return errs
	}
	if _, err := w.tx.exec("COMMIT"); err == nil {
		w.tx.balances.commitBatch()
		w.tx.idem.commitBatch()
		w.tx.payments.commitBatch()
		w.noteCommitted()
	} else {
		w.batchErr, w.batchEvts = err, w.batchEvts[:0]
		_, _ = w.tx.exec("ROLLBACK")
		w.tx.balances.dropBatch()
		w.tx.idem.dropBatch()
		w.tx.payments.dropBatch()
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("store: commit: %w", err)
				if isFull(err) {
					errs[i] = fullError(err)
				}
			}
		}
		if isFull(err) {
			w.noteFull(err)
		}
	}
	return errs
}

// apply runs one op under its own savepoint, so that its failure undoes only
// its own writes.
func (w *writer) apply(o *op) (err error) {
	if err := o.ctx.Err(); err != nil {
		return err
	}
	w.tx.lastEvent, w.tx.events = nil, w.tx.events[:0]
	if _, err := w.tx.exec("SAVEPOINT op"); err != nil {
		return fmt.Errorf("store: savepoint: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
		if err != nil {
			if _, rerr := w.tx.exec("ROLLBACK TO op"); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if _, rerr := w.tx.exec("RELEASE op"); rerr != nil && err == nil {
			err = rerr
		}
		if err == nil {
			w.batchEvts = append(w.batchEvts, w.tx.events...)
			w.tx.balances.releaseOp()
			w.tx.idem.releaseOp()
			w.tx.payments.releaseOp()
		} else {
			w.tx.balances.dropOp()
			w.tx.idem.dropOp()
			w.tx.payments.dropOp()
		}
	}()
	return o.fn(w.tx)
}

// Tx is the write transaction a Write function runs in. Its methods are the
// only way to change the database.
type Tx struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
	now   time.Time
	hooks *hookCache // webhook endpoints per account and mode (webhooks.go)
	// balances follows the ledger's books through the transaction (balancecache.go).
	balances *balanceCache
	// payments publishes committed payment versions to readers (paymentcache.go).
	payments *paymentCache
	// idem counts the idempotency records that may exist (idemindex.go).
	idem *idemIndex
	// lastEvent is the event the running change inserted last (LastEvent).
	lastEvent *Event
	// events are the types of the events the running change inserted, for
	// the Observer once the batch commits.
	events []string
}

// LastEvent returns the event the running change inserted last, or nil;
// the next change starts without one. Changes share the transaction, so
// this is how the step that stores a call's outcome learns which event
// already holds the object it answers with (service/idempotency.go).
func (tx *Tx) LastEvent() *Event { return tx.lastEvent }

// Now is the batch's clock reading, shared by every change in the batch.
func (tx *Tx) Now() time.Time { return tx.now }

func (tx *Tx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := tx.stmts[query]; ok {
		return st, nil
	}
	st, err := tx.conn.PrepareContext(context.Background(), query)
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	tx.stmts[query] = st
	return st, nil
}

func (tx *Tx) exec(query string, args ...any) (sql.Result, error) {
	st, err := tx.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(context.Background(), args...)
}

func (tx *Tx) queryRow(query string, args ...any) (*sql.Row, error) {
	st, err := tx.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(context.Background(), args...), nil
}

func (tx *Tx) closeStmts() {
	for _, st := range tx.stmts {
		st.Close()
	}
}
