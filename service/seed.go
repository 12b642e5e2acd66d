package service

import (
	"context"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// SeedPayments writes n succeeded sandbox payments of the account, exactly
// as CreatePayment records them (payment, ledger entries, event and an
// idempotency record), through the store's batch path: batch payments per
// write. It exists to fill databases for benchmarks; progress, if not nil,
// is called after each batch with the number written so far.
func SeedPayments(ctx context.Context, st *store.Store, accountID string, livemode bool, n, batch int, progress func(done int)) error {
	pr := &Principal{AccountID: accountID, Livemode: livemode}
	for done := 0; done < n; {
		size := min(batch, n-done)
		err := st.Write(ctx, func(tx *store.Tx) error {
			for i := range size {
				p := &store.Payment{
					ID: NewID(PrefixPayment), AccountID: accountID, Livemode: livemode, Amount: 2000, Currency: "USD",
					AmountCaptured: 2000, CaptureMethod: "automatic", PaymentMethod: "pm_card_visa", Provider: "sandbox",
					Description: "seeded payment", Metadata: map[string]string{"order_id": strconv.Itoa(done + i)},
				}
				p.ProviderRef = "sb_" + p.ID
				ik := &idemKey{rec: store.IdempotencyRecord{AccountID: accountID, Livemode: livemode,
					Method: "CreatePayment", Key: "seed-" + p.ID, RequestHash: make([]byte, requestHashLen)}}
				respond := func(out *pb.Payment) proto.Message { return &pb.CreatePaymentResponse{Payment: out} }
				if err := writePayment(tx, pr, p, paymentd.PaymentCreateCaptured, ik, respond, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += size
		if progress != nil {
			progress(done)
		}
	}
	return nil
}
