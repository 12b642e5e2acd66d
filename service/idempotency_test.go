package service

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// TestReplayOfRecordsWithEitherHashLength: a record keeps 16 bytes of the
// request's SHA-256 now, and records written before kept all 32; a retry
// with the same request replays either, and a different request under the
// same key is refused for either.
func TestReplayOfRecordsWithEitherHashLength(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "paymentd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	i := &idempotency{store: s, metrics: &metrics{idempotency: prometheus.NewCounterVec(
		prometheus.CounterOpts{Name: "test_idempotency_total"}, []string{"result"})}}

	req := &pb.CreatePaymentRequest{Amount: 2000, Currency: "usd", PaymentMethod: "pm_card_visa"}
	other := &pb.CreatePaymentRequest{Amount: 2001, Currency: "usd", PaymentMethod: "pm_card_visa"}
	hash := func(m proto.Message) [sha256.Size]byte {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	stored := hash(req)
	answer, err := proto.Marshal(&pb.CreatePaymentResponse{Payment: &pb.Payment{Id: "pay_1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		kept []byte
	}{{"old", stored[:]}, {"new", stored[:requestHashLen]}} {
		if err := s.Write(ctx, func(tx *store.Tx) error {
			return tx.PutIdempotency(&store.IdempotencyRecord{AccountID: "acct_1", Method: "CreatePayment", Key: c.key,
				RequestHash: c.kept, Response: answer, Created: tx.Now()})
		}); err != nil {
			t.Fatal(err)
		}
		call := hash(req)
		var resp pb.CreatePaymentResponse
		done, err := i.replay(ctx, &store.IdempotencyRecord{AccountID: "acct_1", Method: "CreatePayment", Key: c.key,
			RequestHash: call[:requestHashLen]}, &resp)
		if !done || err != nil || resp.GetPayment().GetId() != "pay_1" {
			t.Errorf("record with a %d-byte hash, same request: done %v, %v, %v; want pay_1 replayed", len(c.kept), done, err, &resp)
		}
		diff := hash(other)
		done, err = i.replay(ctx, &store.IdempotencyRecord{AccountID: "acct_1", Method: "CreatePayment", Key: c.key,
			RequestHash: diff[:requestHashLen]}, &resp)
		var e *Error
		if !done || !errors.As(err, &e) || e.Code != "idempotency_key_reused" {
			t.Errorf("record with a %d-byte hash, other request: done %v, %v; want idempotency_key_reused", len(c.kept), done, err)
		}
	}
}
