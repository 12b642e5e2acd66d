package service

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// BenchmarkUnaryInterceptorChain measures what paymentd's whole interceptor
// chain (metrics, request id, log, UTF-8 check, default deadline, auth with
// a cached key, idempotency-key check, card-number scan, page token, error
// conversion) adds to one unary call whose handler does nothing: the
// per-call overhead every RPC pays, apart from the transport.
func BenchmarkUnaryInterceptorChain(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "paymentd.db"), store.Options{Synchronous: "OFF"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	secret := NewAPIKey(false)
	if err := st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.InsertAccount(&store.Account{ID: "acct_bench", Name: "bench", Created: tx.Now()}); err != nil {
			return err
		}
		return tx.InsertAPIKey(&store.APIKey{ID: "key_bench", AccountID: "acct_bench", Hash: HashAPIKey(secret),
			Hint: secret[len(secret)-4:], Scopes: []string{ScopeWrite}, Created: tx.Now()})
	}); err != nil {
		b.Fatal(err)
	}
	s := New(Config{Store: st, DefaultDeadline: 30 * time.Second, RateLimit: -1})
	icpt := s.UnaryInterceptor()
	for _, c := range []struct {
		name string
		req  any
		md   metadata.MD
		info *grpc.UnaryServerInfo
	}{
		{"get", &pb.GetPaymentRequest{Id: "pay_x"}, metadata.Pairs("authorization", "Bearer "+secret),
			&grpc.UnaryServerInfo{FullMethod: pb.PaymentsService_GetPayment_FullMethodName}},
		{"list", &pb.ListPaymentsRequest{}, metadata.Pairs("authorization", "Bearer "+secret),
			&grpc.UnaryServerInfo{FullMethod: pb.PaymentsService_ListPayments_FullMethodName}},
		{"create", &pb.CreatePaymentRequest{Amount: 2000, Currency: "USD", PaymentMethod: "pm_card_visa", Description: "bench"},
			metadata.Pairs("authorization", "Bearer "+secret, "idempotency-key", "bench-key-0001"),
			&grpc.UnaryServerInfo{FullMethod: pb.PaymentsService_CreatePayment_FullMethodName}},
	} {
		b.Run(c.name, func(b *testing.B) {
			handler := func(context.Context, any) (any, error) { return nil, nil }
			h := func(ctx context.Context, req any) (any, error) { return icpt(ctx, req, c.info, handler) }
			ictx := grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(ctx, c.md), nopStream{c.info.FullMethod})
			if _, err := h(ictx, c.req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = h(ictx, c.req)
			}
		})
	}
}

// nopStream stands in for the transport's stream, which the request-id
// interceptor sets a header on.
type nopStream struct{ method string }

func (s nopStream) Method() string             { return s.method }
func (nopStream) SetHeader(metadata.MD) error  { return nil }
func (nopStream) SendHeader(metadata.MD) error { return nil }
func (nopStream) SetTrailer(metadata.MD) error { return nil }
