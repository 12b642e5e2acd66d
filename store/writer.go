package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/codes"
)

// ErrClosed is returned by Write after the store has been closed.
var ErrClosed = errors.New("store: closed")

// op is one state change waiting for the writer.
type op struct {
	ctx   context.Context
	fn    func(*Tx) error
	done  chan error
	tries int // runs undone by a concurrent change (isRetryable) so far
}

// writer owns the write connections. Each of its loops takes every op that
// is waiting, runs them in one transaction on its own connection, commits
// once and answers them all. SQLite has one loop; PostgreSQL several, whose
// commits overlap (Options.Writers).
type writer struct {
	d   dialect
	db  *sql.DB // where the loops' connections come from (and new ones, reconnect)
	ops chan *op
	// debits are the changes that lock an account's balance (WriteDebit):
	// on PostgreSQL with several loops one loop runs them all, so that they
	// share its transactions instead of waiting for each other's; otherwise
	// the same channel as ops.
	debits   chan *op
	maxBatch int
	// delay is how long at most a loop lets other goroutines run before a
	// batch while they wait for a CPU (gather, Options.CommitDelay); 0 never.
	delay time.Duration
	loops []*loop
	hooks *hookCache // shared by the loops' transactions (nil on PostgreSQL)

	mu      sync.RWMutex
	closing bool
	running sync.WaitGroup

	nBatches, nOps atomic.Int64 // counters for WriterStats

	full fullState // writes failing for lack of space (full.go)

	observer atomic.Pointer[Observer] // SetObserver (observe.go)
}

// loop is one group-commit loop: its connection, its transaction and what
// the running batch has done so far.
type loop struct {
	w         *writer
	conn      *sql.Conn
	tx        *Tx
	batchErr  error    // the error that failed the running batch as a whole
	batchEvts []string // event types of the batch's changes that succeeded
	batchExec int      // statements the batch's successful changes ran
	took      time.Duration
	arrival   arrivalRate // how often changes came lately (gather)
	held      bool        // a savepoint of the batch is still to be released (PostgreSQL)
	// careful counts the batches still to run with a savepoint per change
	// after one whose change failed without (runBatch, SQLite).
	careful int
}

// carefulBatches is how many batches run with a savepoint per change after
// a change failed in a batch without: where failing changes are common, a
// batch is run twice at most once in carefulBatches+1.
const carefulBatches = 8

// maxRetries bounds how often a change that PostgreSQL undid because of a
// concurrent one (deadlock, serialization failure, lock not available) is
// run again, each time in a new batch, before its caller is told.
const maxRetries = 5

// WriterStats reports how many commits the writer made and how many state
// changes they held; ops/batches is the mean group-commit size.
func (s *Store) WriterStats() (batches, ops int64) {
	return s.w.nBatches.Load(), s.w.nOps.Load()
}

func startWriter(ctx context.Context, db *sql.DB, d dialect, loops int, o Options, payments *paymentCache, idem *idemIndex) (*writer, error) {
	w := &writer{
		d:        d,
		db:       db,
		ops:      make(chan *op, 4*o.MaxBatch),
		maxBatch: o.MaxBatch,
		delay:    max(o.CommitDelay, 0),
	}
	w.debits = w.ops
	if d.postgres && loops > 1 {
		w.debits = make(chan *op, 4*o.MaxBatch)
	}
	balances := newTxBalanceCache
	if !d.postgres {
		// One process writes: the writer's memory can follow the endpoints
		// and the guarded balances (webhooks.go, balancecache.go).
		w.hooks = newHookCache()
		balances = newBalanceCache
	}
	for range loops {
		conn, err := db.Conn(ctx)
		if err != nil {
			for _, l := range w.loops {
				l.conn.Close()
			}
			return nil, fmt.Errorf("store: writer connection: %w", err)
		}
		tx := &Tx{d: d, conn: conn, stmts: map[string]*sql.Stmt{}, drv: map[string]driverStmt{}, hooks: w.hooks, payments: payments, idem: idem,
			balances: balances()}
		w.loops = append(w.loops, &loop{w: w, conn: conn, tx: tx})
	}
	for i, l := range w.loops {
		w.running.Add(1)
		ops := w.ops
		if i == 0 {
			ops = w.debits // the same channel unless there are several loops
		}
		go l.run(ops)
	}
	return w, nil
}

// Write runs fn inside a write transaction and returns once the transaction
// holding it is durably committed (or fn's own error, in which case none of
// fn's writes are kept). fn may share its transaction with other callers'
// functions, each isolated by a SAVEPOINT, so it must not keep state outside
// the database that would be wrong if the commit failed; and it runs on a
// writer goroutine, so it must be quick and must not call Write. fn may run
// more than once (on PostgreSQL a change undone by a deadlock is run again;
// on SQLite a batch whose change failed is run again with a savepoint per
// change, runBatch), so it must not count its own runs either.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	return s.write(ctx, s.w.ops, fn)
}

// WriteDebit is Write for a change that guards a debit of an account's
// balance (Tx.BookBalance: a payout or a refund must fit in what is
// available). On PostgreSQL such a change locks the account's balance row
// until its transaction commits, so debits of one account run one
// transaction at a time; WriteDebit sends them all to one group-commit
// loop, where a batch of them takes the lock and sums the ledger once
// instead of each batch of every loop waiting for the others' commits (and
// deadlocking with them over the payment rows they also lock). On SQLite
// it is Write.
func (s *Store) WriteDebit(ctx context.Context, fn func(*Tx) error) error {
	return s.write(ctx, s.w.debits, fn)
}

func (s *Store) write(ctx context.Context, ch chan *op, fn func(*Tx) error) error {
	if s.tracer == nil {
		return s.w.submit(ctx, ch, fn)
	}
	ctx, span := s.tracer.Start(ctx, "store.write")
	err := s.w.submit(ctx, ch, fn)
	if err != nil {
		span.SetStatus(codes.Error, "the write was not committed")
	}
	span.End()
	return err
}

func (w *writer) submit(ctx context.Context, ch chan *op, fn func(*Tx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closing {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case ch <- o:
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
		if w.debits != w.ops {
			close(w.debits)
		}
	}
	w.mu.Unlock()
	w.running.Wait()
	for _, l := range w.loops {
		l.tx.closeStmts()
		l.conn.Close()
	}
}

// run answers the ops sent on ops (the writer's ops or debits) until it is closed.
func (l *loop) run(ops chan *op) {
	w := l.w
	defer w.running.Done()
	batch := make([]*op, 0, w.maxBatch)
	errs := make([]error, 0, w.maxBatch)
	for first := range ops {
		var closed bool
		batch, closed = l.take(ops, append(batch[:0], first))
		if !closed && len(batch) < w.maxBatch && l.arrival.due(time.Now(), w.delay) {
			batch = l.gather(ops, batch)
		}
		l.arrival.n += len(batch)
		for len(batch) > 0 {
			errs = l.runBatch(batch, errs[:0])
			batch = l.answer(batch, errs)
		}
	}
}

// gather lets the process's other goroutines run before the batch does,
// for as long as some are waiting for a CPU (up to the writer's delay),
// and adds to the batch the changes they send meanwhile. When the CPUs
// are all busy, requests on their way to the writer are among those
// waiting; a commit costs the writer about as much CPU as several changes,
// so the more changes share it, the more CPU is left for requests. When a
// CPU is idle, nothing waits, and the batch runs at once.
func (l *loop) gather(ops chan *op, batch []*op) []*op {
	start := time.Now()
	for before := start; len(batch) < l.w.maxBatch; {
		n := len(batch)
		runtime.Gosched()
		var closed bool
		batch, closed = l.take(ops, batch)
		now := time.Now()
		if closed || len(batch) == n && now.Sub(before) < yieldIdle || now.Sub(start) >= l.w.delay {
			return batch
		}
		before = now
	}
	return batch
}

// arrivalRate follows how many changes a loop has been given per unit of
// time, over windows of arrivalWindow.
type arrivalRate struct {
	since time.Time     // the current window's start
	n     int           // changes taken in the current window
	every time.Duration // mean time between changes in the last window; 0 before the first
}

// arrivalWindow is long enough to hold several commits (each waits for an
// fsync, ~1-3 ms) and short enough to follow a change of load.
const arrivalWindow = 20 * time.Millisecond

// due reports whether changes came in the last window at least two per
// delay, so that a gather is likely to find some: with fewer (a caller or
// two taking turns) the writer would only spend the CPU and latency of the
// yields. After an idle spell the window is long and holds few changes, so
// the first batches after it do not gather.
func (a *arrivalRate) due(now time.Time, delay time.Duration) bool {
	if delay <= 0 {
		return false
	}
	if el := now.Sub(a.since); el >= arrivalWindow {
		a.every = 0
		if a.n > 0 {
			a.every = el / time.Duration(a.n)
		}
		a.since, a.n = now, 0
	}
	return a.every > 0 && 2*a.every <= delay
}

// take adds to batch the ops already waiting on ops, up to the batch's
// bound; closed reports that ops has been closed.
func (l *loop) take(ops chan *op, batch []*op) (_ []*op, closed bool) {
	for len(batch) < l.w.maxBatch {
		select {
		case o, ok := <-ops:
			if !ok {
				return batch, true
			}
			batch = append(batch, o)
		default:
			return batch, false
		}
	}
	return batch, false
}

// yieldIdle is how long runtime.Gosched takes when no other goroutine
// was waiting to run (a fraction of a microsecond), with a margin.
const yieldIdle = 2 * time.Microsecond

// answer reports a finished batch to the observer and answers its ops,
// except those PostgreSQL undid because of a concurrent change (a deadlock
// with another connection's batch): it returns them, to run again in a
// batch of their own now that this one's locks are released.
func (l *loop) answer(batch []*op, errs []error) []*op {
	w := l.w
	w.nBatches.Add(1)
	w.nOps.Add(int64(len(batch)))
	if o := w.observer.Load(); o != nil {
		(*o).Committed(l.took, len(batch), l.batchErr)
		if len(l.batchEvts) > 0 {
			(*o).EventsCommitted(l.batchEvts)
		}
	}
	l.batchErr, l.batchEvts, l.batchExec = nil, l.batchEvts[:0], 0
	again := batch[:0]
	for i, o := range batch {
		if isRetryable(errs[i]) && o.tries < maxRetries {
			o.tries++
			again = append(again, o)
			continue
		}
		o.done <- errs[i]
	}
	clear(batch[len(again):])
	return again
}

// begin is the statement that opens a batch: on SQLite it takes the write
// lock at once, so that no change fails half-way for want of it.
func (d dialect) begin() string {
	if d.postgres {
		return "BEGIN"
	}
	return "BEGIN IMMEDIATE"
}

// runBatch executes one batch in one transaction and returns each op's outcome.
//
// Each change runs under its own savepoint, so that one that fails undoes
// only its own writes — except on SQLite, where a savepoint per change was
// a seventh of the writer's CPU (the SAVEPOINT and RELEASE statements and
// the copy of every page a change first touches into the sub-journal),
// and changes rarely fail. There a batch first runs without them; if a
// change fails, the whole transaction is rolled back and the batch runs
// again with a savepoint per change, as do the next carefulBatches
// batches. A change may therefore run twice on SQLite too (Write).
func (l *loop) runBatch(batch []*op, errs []error) []error {
	start := time.Now()
	defer func() { l.took = time.Since(start) }()
	if l.w.d.postgres || l.careful > 0 || len(batch) == 1 {
		// A batch of one needs no savepoint either: its failure rolls back
		// the transaction, which is the change's own writes.
		savepoints := len(batch) > 1 || l.w.d.postgres
		if savepoints && l.careful > 0 {
			l.careful--
		}
		errs, _ = l.runTx(batch, errs, savepoints)
		return errs
	}
	errs, undone := l.runTx(batch, errs, false)
	if !undone {
		return errs
	}
	l.careful = carefulBatches
	errs, _ = l.runTx(batch, errs[:0], true)
	return errs
}

// runTx runs batch in one transaction, each change under its own savepoint
// if savepoints is set. Without them, the first change that fails (other
// than for a full disk, which fails the batch anyway) rolls the whole
// transaction back at once and runTx reports it undone, with no outcome
// for anyone: the batch must run again with savepoints.
func (l *loop) runTx(batch []*op, errs []error, savepoints bool) (_ []error, undone bool) {
	tx := l.tx
	l.held = false
	err := tx.control(l.w.d.begin())
	if err != nil && l.reconnect() {
		err = tx.control(l.w.d.begin())
	}
	if err != nil {
		if isBusy(err) {
			err = fmt.Errorf("another process holds the database's write lock: %w", err)
		}
		l.batchErr = err
		for range batch {
			errs = append(errs, fmt.Errorf("store: begin: %w", err))
		}
		return errs, false
	}
	tx.now = time.Now().UTC().Truncate(time.Microsecond) // the precision stored
	anyOK, full := false, error(nil)
	for _, o := range batch {
		if full != nil {
			errs = append(errs, fullError(full))
			continue
		}
		if err := o.ctx.Err(); err != nil {
			errs = append(errs, err) // its caller gave up before it wrote anything
			continue
		}
		err := l.apply(o, savepoints)
		if err != nil && !savepoints && len(batch) > 1 && !isFull(err) {
			l.batchErr, l.batchEvts, l.batchExec = nil, l.batchEvts[:0], 0
			_ = tx.control("ROLLBACK")
			l.dropBatch()
			return errs, true
		}
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
		l.batchErr = full
	}
	if !anyOK {
		l.batchEvts = l.batchEvts[:0]
		_ = tx.control("ROLLBACK")
		l.dropBatch()
		if full != nil {
			l.noteFull(full)
		}
		return errs, false
	}
	if err := tx.control("COMMIT"); err == nil {
		tx.balances.commitBatch()
		tx.idem.commitBatch()
		tx.payments.commitBatch()
		l.noteCommitted()
	} else {
		l.batchErr, l.batchEvts = err, l.batchEvts[:0]
		_ = tx.control("ROLLBACK")
		l.dropBatch()
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("store: commit: %w", err)
				if isFull(err) {
					errs[i] = fullError(err)
				}
			}
		}
		if isFull(err) {
			l.noteFull(err)
		}
	}
	return errs, false
}

// reconnect replaces the loop's connection when it is gone (PostgreSQL:
// the server restarted or failed over, or ended the session) and reports
// whether it did. It runs when BEGIN fails, so a connection lost while the
// loop was idle costs no caller anything; one lost in the middle of a
// batch fails that batch, and the next one starts on the new connection.
func (l *loop) reconnect() bool {
	if !l.w.d.postgres || !l.connGone() {
		return false
	}
	// The dead one goes first: the pool holds one connection per loop.
	l.tx.closeStmts()
	clear(l.tx.stmts)
	l.tx.pending = l.tx.pending[:0]
	l.held = false
	l.conn.Close() // database/sql drops a dead driver connection instead of pooling it
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := l.w.db.Conn(ctx)
	if err != nil {
		return false // l.conn stays closed, so the next batch tries again
	}
	l.conn, l.tx.conn = conn, conn
	return true
}

// connGone reports whether the loop's PostgreSQL connection is closed.
func (l *loop) connGone() bool {
	gone := true
	err := l.conn.Raw(func(dc any) error {
		if c, ok := dc.(*stdlib.Conn); ok {
			gone = c.Conn().IsClosed()
		}
		return nil
	})
	return err != nil || gone
}

func (l *loop) dropBatch() {
	l.tx.hooks.reset()
	l.tx.balances.dropBatch()
	l.tx.idem.dropBatch()
	l.tx.payments.dropBatch()
}

// apply runs one op, under its own savepoint if savepoints is set, so that
// its failure undoes only its own writes (runBatch).
// Its caller has checked that o's context is still live (runTx).
func (l *loop) apply(o *op, savepoints bool) (err error) {
	tx := l.tx
	tx.lastEvent, tx.events, tx.execs = nil, tx.events[:0], 0
	if !savepoints {
		// SQLite only (runBatch): nothing to roll back to or release.
	} else if l.w.d.postgres {
		// Every statement is a round trip to the server, so the savepoint
		// goes with the change's first statements (pipeline.go), the
		// previous one is released then too, and the batch's last one by
		// its COMMIT.
		if l.held {
			tx.queueControl("RELEASE op")
		}
		tx.queueControl("SAVEPOINT op")
		l.held = true
	} else if err := tx.control("SAVEPOINT op"); err != nil {
		return fmt.Errorf("store: savepoint: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
		if ferr := tx.flush(); ferr != nil && err == nil {
			err = ferr // a queued statement of this change failed
		}
		if err != nil && savepoints {
			if rerr := tx.control("ROLLBACK TO op"); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if savepoints && !l.held {
			if rerr := tx.control("RELEASE op"); rerr != nil && err == nil {
				err = rerr
			}
		}
		if err == nil {
			l.batchEvts = append(l.batchEvts, tx.events...)
			l.batchExec += tx.execs
			tx.balances.releaseOp()
			tx.idem.releaseOp()
			tx.payments.releaseOp()
		} else {
			// The change may have loaded endpoints through its own writes,
			// now undone.
			tx.hooks.reset()
			tx.balances.dropOp()
			tx.idem.dropOp()
			tx.payments.dropOp()
		}
	}()
	return o.fn(tx)
}

// Tx is the write transaction a Write function runs in. Its methods are the
// only way to change the database.
type Tx struct {
	d     dialect
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
	// drv are SQLite's write statements prepared on the driver's
	// connection (execDriver), and nv the argument buffer they share.
	drv   map[string]driverStmt
	nv    []driver.NamedValue
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
	// execs counts the statements the running change executed, so that an
	// empty commit (which succeeds on a full disk too) is told apart.
	execs int
	// pending are statements queued for one pipelined round trip
	// (PostgreSQL; pipeline.go).
	pending []deferredExec
	// checkpointSoon asks for a checkpoint of an account whose guarded sum
	// read many entries (Store.checkpointSoon; PostgreSQL).
	checkpointSoon func(accountID string, livemode bool)
}

// LastEvent returns the event the running change inserted last, or nil;
// the next change starts without one. Changes share the transaction, so
// this is how the step that stores a call's outcome learns which event
// already holds the object it answers with (service/idempotency.go).
func (tx *Tx) LastEvent() *Event { return tx.lastEvent }

// Now is the batch's clock reading, shared by every change in the batch.
func (tx *Tx) Now() time.Time { return tx.now }

func (tx *Tx) stmt(query string) (*sql.Stmt, error) {
	if err := tx.flush(); err != nil {
		return nil, err
	}
	if st, ok := tx.stmts[query]; ok {
		return st, nil
	}
	st, err := tx.conn.PrepareContext(context.Background(), tx.d.bind(query))
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	tx.stmts[query] = st
	return st, nil
}

func (tx *Tx) exec(query string, args ...any) (sql.Result, error) {
	if !tx.d.postgres {
		tx.execs++
		return tx.execDriver(query, args)
	}
	st, err := tx.stmt(query)
	if err != nil {
		return nil, err
	}
	tx.execs++
	return st.ExecContext(context.Background(), args...)
}

// execDriver runs a write statement on SQLite through the driver's own
// prepared statement, without database/sql: the writer owns its
// connection, so database/sql's per-call argument slices, locks and retry
// bookkeeping buy nothing there.
func (tx *Tx) execDriver(query string, args []any) (driver.Result, error) {
	var res driver.Result
	err := tx.conn.Raw(func(dc any) error {
		st, ok := tx.drv[query]
		if !ok {
			p, err := dc.(driver.ConnPrepareContext).PrepareContext(context.Background(), query)
			if err != nil {
				return fmt.Errorf("store: prepare: %w", err)
			}
			st = p.(driverStmt)
			tx.drv[query] = st
		}
		nv := tx.nv[:0]
		defer func() { clear(nv); tx.nv = nv[:0] }()
		for i, a := range args {
			switch a.(type) {
			case string, int64, []byte, nil:
			default:
				v, err := driver.DefaultParameterConverter.ConvertValue(a)
				if err != nil {
					return fmt.Errorf("store: argument %d of %q: %w", i+1, query, err)
				}
				a = v
			}
			nv = append(nv, driver.NamedValue{Ordinal: i + 1, Value: a})
		}
		var err error
		res, err = st.ExecContext(context.Background(), nv)
		return err
	})
	return res, err
}

// driverStmt is a statement prepared on the driver's connection.
type driverStmt interface {
	driver.Stmt
	driver.StmtExecContext
}

// control runs a transaction control statement (BEGIN, SAVEPOINT, COMMIT,
// …). PostgreSQL does not prepare those; SQLite gets them prepared once
// like any other statement.
func (tx *Tx) control(query string) error {
	if tx.d.postgres {
		if err := tx.flush(); err != nil {
			return err
		}
		_, err := tx.conn.ExecContext(context.Background(), query)
		return err
	}
	st, err := tx.stmt(query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(context.Background())
	return err
}

func (tx *Tx) queryRow(query string, args ...any) (*sql.Row, error) {
	st, err := tx.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(context.Background(), args...), nil
}

// queryString reads one text column of at most one row inside the
// transaction: ErrNotFound when there is none; what names the read in any
// other error.
func (tx *Tx) queryString(what, query string, args ...any) (string, error) {
	row, err := tx.queryRow(query, args...)
	if err != nil {
		return "", err
	}
	var s string
	if err := row.Scan(&s); errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	} else if err != nil {
		return "", fmt.Errorf("store: %s: %w", what, err)
	}
	return s, nil
}

func (tx *Tx) closeStmts() {
	for _, st := range tx.stmts {
		st.Close()
	}
	if len(tx.drv) > 0 {
		_ = tx.conn.Raw(func(any) error {
			for _, st := range tx.drv {
				st.Close()
			}
			return nil
		})
		clear(tx.drv)
	}
}
