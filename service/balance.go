package service

import (
	"context"
	"strings"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// GetBalance sums the account's ledger books per currency: available,
// pending, reserved (held by unfinished payouts) and paid out (every
// payouts:<provider> book). Balances are derived from the append-only
// ledger; nothing else holds them.
func (s *PayoutsServer) GetBalance(ctx context.Context, _ *pb.GetBalanceRequest) (*pb.GetBalanceResponse, error) {
	pr := mustPrincipal(ctx)
	books, err := s.store.Balances(ctx, pr.AccountID, pr.Livemode)
	if err != nil {
		return nil, err
	}
	resp := &pb.GetBalanceResponse{Livemode: pr.Livemode, Balances: []*pb.Balance{}}
	var cur *pb.Balance
	for _, b := range books { // ordered by currency
		if !store.OwnBook(b.Book) {
			continue
		}
		if cur == nil || cur.Currency != b.Currency {
			cur = &pb.Balance{Currency: b.Currency}
			resp.Balances = append(resp.Balances, cur)
		}
		switch {
		case b.Book == store.BookAvailable:
			cur.Available = b.Amount
		case b.Book == store.BookPending:
			cur.Pending = b.Amount
		case b.Book == store.BookReserved:
			cur.Reserved = b.Amount
		case strings.HasPrefix(b.Book, store.PayoutsBookPrefix):
			cur.PaidOut += b.Amount
		}
	}
	return resp, nil
}
