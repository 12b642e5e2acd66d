package service

import (
	"encoding/base64"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

func paymentProto(p *store.Payment) *pb.Payment {
	out := &pb.Payment{
		Id: p.ID, Amount: p.Amount, Currency: p.Currency, Status: p.Status, CaptureMethod: p.CaptureMethod,
		PaymentMethod: p.PaymentMethod, AmountCapturable: p.AmountCapturable, AmountCaptured: p.AmountCaptured,
		AmountRefunded: p.AmountRefunded, Description: p.Description, Metadata: p.Metadata, AgentId: p.AgentID,
		Livemode: p.Livemode, Provider: p.Provider, FailureCode: p.FailureCode, FailureMessage: p.FailureMessage,
		CreatedAt: timestamppb.New(p.Created), UpdatedAt: timestamppb.New(p.Updated),
		PendingOperation: p.PendingOp, PendingAmount: p.PendingAmount,
	}
	if p.CustomerName != "" || p.CustomerEmail != "" || p.CustomerID != "" {
		out.Customer = &pb.Customer{Name: p.CustomerName, Email: p.CustomerEmail, Id: p.CustomerID}
	}
	return out
}

func refundProto(r *store.Refund) *pb.Refund {
	return &pb.Refund{
		Id: r.ID, PaymentId: r.PaymentID, Amount: r.Amount, Currency: r.Currency, Status: r.Status,
		Reason: r.Reason, Metadata: r.Metadata, Livemode: r.Livemode, CreatedAt: timestamppb.New(r.Created),
	}
}

// Page tokens are opaque to callers: the last id of the page, encoded.
func encodePageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

func decodePageToken(token, prefix string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !validID(string(b), prefix) {
		return "", Invalid("page_token", "page_token_invalid",
			"page_token is not valid; pass the next_page_token of the previous page unchanged, or omit it for the first page.")
	}
	return string(b), nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n == 0:
		return 20, nil
	case n < 0 || n > 100:
		return 0, Invalid("page_size", "page_size_invalid", "page_size must be between 1 and 100; got %d.", n)
	}
	return int(n), nil
}

// minID returns the smaller of two id bounds, treating "" as no bound.
func minID(a, b string) string {
	if a == "" || (b != "" && strings.Compare(b, a) < 0) {
		return b
	}
	return a
}
