package service

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/paymentd/paymentd/store"
)

// IdempotencyTTL is how long a stored outcome is replayed; records older than
// this are swept.
const IdempotencyTTL = 24 * time.Hour

// idempotency makes mutating calls safe to retry. Outcomes are stored in the
// same transaction as the state change (so a replay after a restart returns
// exactly what was committed), and a key being processed is leased to its
// call (leases.go): in memory when this process is the database's only
// writer, as a row when replicas share the database, so that of the calls
// with one key on any replica exactly one runs.
type idempotency struct {
	store   *store.Store
	metrics *metrics // replays, conflicts and mismatches (metrics.go)
	leases  leases
	fleet   bool // other replicas share the database (recordFirst)
	// replica names this process in its leases; calls adds a number per call.
	replica string
	calls   atomic.Uint64
	// leaseFor is how long a call without a deadline of its own may hold
	// its key (the default deadline; the interceptor gives every call one).
	leaseFor time.Duration
}

func newIdempotency(s *store.Store, l leases, fleet bool, replica string, leaseFor time.Duration) *idempotency {
	return &idempotency{store: s, leases: l, fleet: fleet, replica: replica, leaseFor: leaseFor}
}

// idemKey is the key of one call, passed to the handler so it can store the
// outcome inside its write. A nil *idemKey means the call had no key.
type idemKey struct {
	rec store.IdempotencyRecord
	// interim is set once an interim outcome is committed (a payment still
	// processing, a refund still pending): the final one then replaces it.
	interim bool

	// The key's lease: released in the write that stores the first
	// outcome, because from then on that record answers a retry. nil for a
	// recordFirst call in a fleet, which holds none.
	leases   leases
	lease    store.Lease
	holder   string
	released bool // by the last write that saved an outcome
}

// save stores the call's outcome (resp, or err if it is not nil) in tx.
func (k *idemKey) save(tx *store.Tx, resp proto.Message, err error) error {
	rec, rerr := k.record(tx, resp, err)
	if rec == nil || rerr != nil {
		return rerr
	}
	if k.interim {
		return tx.ReplaceIdempotency(rec)
	}
	if err := tx.PutIdempotency(rec); err != nil {
		return err
	}
	if k.leases == nil {
		return nil // a recordFirst call: the record is the marker
	}
	k.released, err = k.leases.releaseIn(tx, k.lease, k.holder)
	return err
}

// committedInterim notes that the outcome saved by a write that has now
// committed is interim: a retry replays it until the final one replaces it.
func (k *idemKey) committedInterim() {
	if k != nil {
		k.interim = true
	}
}

// freeKey removes the interim outcome, inside tx, when the call ended without
// a result worth replaying (the provider failed before any money moved), so
// that a retry with the same key runs again.
func (k *idemKey) freeKey(tx *store.Tx) error {
	if k == nil || !k.interim {
		return nil
	}
	return tx.DeleteIdempotency(&k.rec)
}

func (k *idemKey) record(tx *store.Tx, resp proto.Message, err error) (*store.IdempotencyRecord, error) {
	if k == nil {
		return nil, nil
	}
	rec := k.rec
	rec.Created = tx.Now()
	var merr error
	if err != nil {
		st := status.Convert(toGRPC(err))
		rec.Code = int(st.Code())
		rec.Response, merr = proto.Marshal(st.Proto())
	} else if ev := tx.LastEvent(); ev != nil && eventHolds(ev, objectField(resp)) {
		// The response is the object the change's event already holds:
		// point at the event instead of storing the object twice.
		rec.EventID = ev.ID
	} else {
		rec.Response, merr = proto.MarshalOptions{Deterministic: true}.Marshal(resp)
	}
	return &rec, merr
}

// objectField returns the object a response wraps when it is a message
// with exactly one field, a set message (CreatePaymentResponse.payment …),
// or nil.
func objectField(resp proto.Message) proto.Message {
	m := resp.ProtoReflect()
	fields := m.Descriptor().Fields()
	if fields.Len() != 1 {
		return nil
	}
	fd := fields.Get(0)
	if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() || !m.Has(fd) {
		return nil
	}
	return m.Get(fd).Message().Interface()
}

// eventHolds reports whether ev's data is obj, so that a replay may read
// the response's object from the event. The usual case costs nothing: the
// change encoded obj itself into the event (recordEvent) just before
// answering with it, and its encoded size still matches (a guard against
// an object changed after its event was written). Otherwise the event is
// decoded and compared.
func eventHolds(ev *store.Event, obj proto.Message) bool {
	if obj == nil {
		return false
	}
	if src, ok := ev.Source.(proto.Message); ok && src == obj && proto.Size(obj) == len(ev.Data) {
		return true
	}
	stored := obj.ProtoReflect().New().Interface()
	return proto.Unmarshal(ev.Data, stored) == nil && proto.Equal(stored, obj)
}

// replayFromEvent fills the object field of resp (see objectField) from the
// stored event.
func (i *idempotency) replayFromEvent(ctx context.Context, rec *store.IdempotencyRecord, resp proto.Message) error {
	m := resp.ProtoReflect()
	if m.Descriptor().Fields().Len() != 1 {
		return fmt.Errorf("idempotency: %s does not wrap one object", m.Descriptor().FullName())
	}
	ev, err := i.store.GetEvent(ctx, rec.AccountID, rec.Livemode, rec.EventID)
	if err != nil {
		return err
	}
	return proto.Unmarshal(ev.Data, m.Mutable(m.Descriptor().Fields().Get(0)).Message().Interface())
}

// run executes do once per idempotency key: a repeat of a finished call
// replays its stored outcome into resp; a repeat with a different request is
// an idempotency_error; a repeat while the first is running is a conflict.
func (i *idempotency) run(ctx context.Context, method string, req, resp proto.Message, do func(*idemKey) error) (callErr error) {
	p, _ := PrincipalFrom(ctx)
	// ValueFromIncomingContext reads without copying the whole metadata.
	vals := metadata.ValueFromIncomingContext(ctx, idemKeyMetadata)
	if err := checkIdempotencyKey(vals); err != nil {
		return err
	}
	if p == nil || len(vals) == 0 {
		return do(nil)
	}
	key := vals[0]
	reqBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return err
	}
	hash := sha256.Sum256(reqBytes)
	k := &idemKey{rec: store.IdempotencyRecord{
		AccountID: p.AccountID, Livemode: p.Livemode, Method: method, Key: key, RequestHash: hash[:requestHashLen],
	}}
	if i.fleet && recordFirst[method] {
		return i.runRecordFirst(ctx, k, resp, do)
	}

	k.leases, k.holder = i.leases, i.replica+"/"+strconv.FormatUint(i.calls.Add(1), 10)
	k.lease = store.Lease{AccountID: p.AccountID, Livemode: p.Livemode, Name: "idempotency/" + method + "/" + key}
	held, err := i.leases.acquire(ctx, k.lease, k.holder, i.leaseUntil(ctx))
	if err != nil {
		return err
	}
	if !held {
		i.metrics.idempotency.WithLabelValues("conflict").Inc()
		return Errorf(KindInFlight, "idempotency_key_in_use",
			"A request with this idempotency key is still being processed; retry after it finishes.")
	}
	defer func() {
		// A write that saved an outcome released the lease with it; a
		// call that failed may not have committed that write.
		if !k.released || callErr != nil {
			i.leases.release(context.WithoutCancel(ctx), k.lease, k.holder)
		}
	}()
	if done, err := i.replay(ctx, &k.rec, resp); done {
		return err
	}
	return do(k)
}

// recordFirst are the methods whose calls store an outcome, interim or
// final, in their first write, and do nothing before it that a second run
// could repeat to any effect:
//   - CreatePayment records a payment processing before asking a provider
//     that may move money without answering, and only asks first a provider
//     that moves none and always answers (the sandbox,
//     providers.AlwaysAnswers), which may as well be asked twice;
//   - CreateRefund reserves the amount and records the refund pending, and
//     CreatePayout reserves and records the payout, before the provider is
//     asked.
//
// A method whose first write does not store its outcome (CapturePayment and
// CancelPayment mark the payment first) must not be listed here.
var recordFirst = map[string]bool{"CreatePayment": true, "CreateRefund": true, "CreatePayout": true}

// conflictFirst are the recordFirst methods whose retry learns of the
// stored outcome from its write's conflict, without a read before: nothing
// in the first write can fail for a retry before the record conflicts (a
// payment's write checks no balance), so the replay comes after the write
// rolled back. That saves every first call a round trip to the database. A
// refund or payout retry must read first: its reservation could fail
// (the amount it reserved is gone) before its record conflicted.
var conflictFirst = map[string]bool{"CreatePayment": true}

// runRecordFirst runs a recordFirst call in a fleet without a lease: the
// record's unique key is the in-flight marker. Of the replicas running one
// key at once, the first write to commit its record wins; the others'
// writes conflict and roll back whole, and they answer as a retry would,
// with the winner's outcome. This saves a fleet's hottest call the lease's
// write and its commit.
func (i *idempotency) runRecordFirst(ctx context.Context, k *idemKey, resp proto.Message, do func(*idemKey) error) error {
	if !conflictFirst[k.rec.Method] {
		if done, err := i.replay(ctx, &k.rec, resp); done {
			return err
		}
	}
	err := do(k)
	if errors.Is(err, store.ErrConflict) {
		if done, rerr := i.replay(ctx, &k.rec, resp); done {
			return rerr
		}
	}
	return err
}

// replay answers a call from the stored outcome of its key, if there is one
// (done): the outcome again, or idempotency_key_reused when the stored call
// had other parameters.
func (i *idempotency) replay(ctx context.Context, k *store.IdempotencyRecord, resp proto.Message) (done bool, err error) {
	rec, err := i.store.GetIdempotency(ctx, k.AccountID, k.Livemode, k.Method, k.Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return true, err
	case !sameRequest(rec.RequestHash, k.RequestHash):
		i.metrics.idempotency.WithLabelValues("mismatch").Inc()
		return true, Errorf(KindIdempotency, "idempotency_key_reused",
			"This idempotency key was already used with different parameters for %s; use a new key for a new request.", k.Method)
	}
	i.metrics.idempotency.WithLabelValues("replay").Inc()
	switch {
	case rec.Code == int(codes.OK) && rec.EventID != "":
		return true, i.replayFromEvent(ctx, rec, resp)
	case rec.Code == int(codes.OK):
		return true, proto.Unmarshal(rec.Response, resp)
	}
	var st spb.Status
	if err := proto.Unmarshal(rec.Response, &st); err != nil {
		return true, err
	}
	return true, status.FromProto(&st).Err()
}

// requestHashLen is how many bytes of the request's SHA-256 a record
// keeps: 128 bits tell two requests made with one key apart as surely as
// 256 do, and every payment's record is 16 bytes smaller.
const requestHashLen = 16

// sameRequest reports whether a stored request hash is the call's. Records
// written before requestHashLen kept all 32 bytes of the SHA-256; their
// first 16 are the ones kept now.
func sameRequest(stored, call []byte) bool {
	if len(stored) > len(call) {
		stored = stored[:len(call)]
	}
	return string(stored) == string(call)
}

// leaseUntil is how long a call may hold its key: until its deadline, plus
// the time its answer may still take to be recorded once the deadline has
// passed (recordCtx), plus a margin for clocks that differ between replicas.
func (i *idempotency) leaseUntil(ctx context.Context) time.Time {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(i.leaseFor)
	}
	return deadline.Add(recordTimeout + leaseMargin)
}

// sweepChunk is how many idempotency records one transaction of the sweep
// walks: a few milliseconds of the writer, so that calls' writes queued
// behind it wait no longer than behind a full group-commit batch.
const sweepChunk = 1000

// sweep deletes the records older than IdempotencyTTL, a chunk of keys per
// transaction, and the leases that expired (their holders crashed) an hour
// ago or more.
func (i *idempotency) sweep(ctx context.Context) error {
	sw := store.IdempotencySweep{Before: time.Now().Add(-IdempotencyTTL)}
	for !sw.Done {
		var next store.IdempotencySweep
		if err := i.store.Write(ctx, func(tx *store.Tx) error {
			next = sw // the change may run again before its batch commits
			return tx.SweepIdempotency(&next, sweepChunk)
		}); err != nil {
			return err
		}
		sw = next
	}
	return i.store.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExpireLeases(tx.Now().Add(-time.Hour))
		return err
	})
}
