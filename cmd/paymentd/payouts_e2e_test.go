package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store/storetest"
)

// payoutServer is a paymentd with a payouts client and a context carrying
// the server's test key (scopes write and payouts).
type payoutServer struct {
	*testServer
	po  pb.PayoutsServiceClient
	ctx context.Context
}

// Sandbox payout delays: "hold" keeps payouts pending for the whole test,
// "fast" moves them along within milliseconds. checkpointOften makes the
// server checkpoint balances every few entries, so that balance reads and
// the payout guard go through checkpoints while payouts run.
var (
	holdPayouts     = []string{"--sandbox-payout-processing-delay", "1h", "--sandbox-payout-completion-delay", "1h"}
	fastPayouts     = []string{"--sandbox-payout-processing-delay", "10ms", "--sandbox-payout-completion-delay", "10ms"}
	checkpointOften = []string{"--ledger-checkpoint-interval", "2ms", "--ledger-checkpoint-entries", "4"}
)

func startPayoutServer(t *testing.T, delays []string) *payoutServer {
	t.Helper()
	return payoutServerOn(t, testDB(t), delays)
}

// payoutServerOn is startPayoutServer on the database db.
func payoutServerOn(t *testing.T, db string, delays []string) *payoutServer {
	srv := startServer(t, db, delays...)
	return &payoutServer{testServer: srv, po: pb.NewPayoutsServiceClient(srv.conn), ctx: withKey(t.Context(), srv.key)}
}

// collect takes a sandbox card payment (automatic capture), which credits
// the available balance.
func (s *payoutServer) collect(t *testing.T, amount int64, currency string) {
	t.Helper()
	resp, err := s.payments.CreatePayment(s.ctx, &pb.CreatePaymentRequest{Amount: amount, Currency: currency, PaymentMethod: "pm_card_visa"})
	if err != nil || resp.Payment.Status != "succeeded" {
		t.Fatalf("CreatePayment %d %s: %v, %v; want succeeded", amount, currency, resp, err)
	}
}

func (s *payoutServer) create(t *testing.T, req *pb.CreatePayoutRequest) *pb.Payout {
	t.Helper()
	resp, err := s.po.CreatePayout(s.ctx, req)
	if err != nil {
		t.Fatalf("CreatePayout(%v): %v", req, err)
	}
	return resp.Payout
}

func (s *payoutServer) get(t *testing.T, idOrRef string) *pb.Payout {
	t.Helper()
	resp, err := s.po.GetPayout(s.ctx, &pb.GetPayoutRequest{Id: idOrRef})
	if err != nil {
		t.Fatalf("GetPayout(%s): %v", idOrRef, err)
	}
	return resp.Payout
}

// balance returns the one balance of currency (zero if there is none).
func (s *payoutServer) balance(t *testing.T, currency string) *pb.Balance {
	t.Helper()
	resp, err := s.po.GetBalance(s.ctx, &pb.GetBalanceRequest{})
	if err != nil {
		t.Fatalf("GetBalance: %v", err)
	}
	for _, b := range resp.Balances {
		if b.Currency == currency {
			return b
		}
	}
	return &pb.Balance{Currency: currency}
}

func checkBalance(t *testing.T, b *pb.Balance, available, reserved, paidOut int64) {
	t.Helper()
	if b.Available != available || b.Reserved != reserved || b.PaidOut != paidOut || b.Pending != 0 {
		t.Errorf("%s balance: available %d reserved %d paid_out %d pending %d; want %d %d %d 0",
			b.Currency, b.Available, b.Reserved, b.PaidOut, b.Pending, available, reserved, paidOut)
	}
}

// waitPayout polls until the payout reaches status (generous deadline: the
// machine is shared).
func (s *payoutServer) waitPayout(t *testing.T, id, status string) *pb.Payout {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := s.get(t, id)
		if p.Status == status {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("payout %s is still %s after 30s; want %s", id, p.Status, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func usBank(amount int64, ref string) *pb.CreatePayoutRequest {
	return &pb.CreatePayoutRequest{PayoutMethodId: "us_bank", Amount: amount, RecipientName: "Jane Doe",
		RecipientAccount: "000123456789", TransactionReference: ref}
}

// samePayout compares payouts without their timestamps.
func samePayout(t *testing.T, what string, got, want *pb.Payout) {
	t.Helper()
	g, w := proto.Clone(got).(*pb.Payout), proto.Clone(want).(*pb.Payout)
	for _, p := range []*pb.Payout{g, w} {
		p.CreatedAt, p.UpdatedAt, p.ProcessedAt = nil, nil, nil
	}
	if !proto.Equal(g, w) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// eventTypes reads the types of an object's events, oldest first, straight
// from the database.
func eventTypes(t *testing.T, dbPath, objectID string) []string {
	t.Helper()
	rows, err := rawDB(t, dbPath).Query(`SELECT type FROM events WHERE object_id = $1 ORDER BY id`, objectID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types := []string{}
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			t.Fatal(err)
		}
		types = append(types, typ)
	}
	return types
}

// runCheck runs `paymentd check --db PATH` and returns its report and error.
func runCheck(dbPath string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"check", "--db", dbPath}, noEnv, &out, &errOut)
	return out.String() + errOut.String(), err
}

// checkpoints counts the ledger checkpoints written to the database.
func checkpoints(t *testing.T, dbPath string) int {
	t.Helper()
	var n int
	if err := rawDB(t, dbPath).QueryRow(`SELECT count(DISTINCT through_id) FROM ledger_checkpoints`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func mustPassCheck(t *testing.T, dbPath string) {
	t.Helper()
	report, err := runCheck(dbPath)
	if err != nil || !strings.Contains(report, "All 7 checks passed.") {
		t.Fatalf("paymentd check: %v\n%s", err, report)
	}
}

func wantGRPCError(t *testing.T, what string, err error, code codes.Code, errCode, param string) {
	t.Helper()
	got := grpcError(t, err)
	if got.grpcCode != code || got.code != errCode || got.param != param {
		t.Errorf("%s: %v %q param %q; want %v %q param %q (%v)", what, got.grpcCode, got.code, got.param, code, errCode, param, err)
	}
}

func TestPayoutsOverGRPC(t *testing.T) {
	t.Parallel()
	s := startPayoutServer(t, holdPayouts)

	methods, err := s.po.ListPayoutMethods(s.ctx, &pb.ListPayoutMethodsRequest{})
	if err != nil {
		t.Fatalf("ListPayoutMethods: %v", err)
	}
	wantMethods := []*pb.PayoutMethod{
		{Id: "bkash", Name: "bKash", Type: "mobile_banking", Currency: "BDT", MinAmount: 10_000, MaxAmount: 5_000_000,
			Fee: &pb.PayoutFee{BasisPoints: 150, Percent: "1.50"}},
		{Id: "us_bank", Name: "US bank transfer", Type: "bank_transfer", Currency: "USD", MinAmount: 1_000, MaxAmount: 1_000_000,
			Fee: &pb.PayoutFee{FixedAmount: 25, BasisPoints: 100, Percent: "1.00"}},
		{Id: "usdt_tron", Name: "USDT on Tron (TRC-20)", Type: "crypto", Currency: "USDT", Network: "tron",
			MinAmount: 10_000_000, MaxAmount: 10_000_000_000, Fee: &pb.PayoutFee{FixedAmount: 1_000_000, Percent: "0.00"}},
	}
	if len(methods.PayoutMethods) != len(wantMethods) {
		t.Fatalf("ListPayoutMethods = %v; want the 3 sandbox methods", methods.PayoutMethods)
	}
	for i, m := range methods.PayoutMethods {
		if m.AccountFormat == "" {
			t.Errorf("method %s has no account_format hint", m.Id)
		}
		m.AccountFormat = ""
		if !proto.Equal(m, wantMethods[i]) {
			t.Errorf("method %d:\n got  %v\n want %v", i, m, wantMethods[i])
		}
	}

	if b, err := s.po.GetBalance(s.ctx, &pb.GetBalanceRequest{}); err != nil || len(b.Balances) != 0 || b.Livemode {
		t.Errorf("GetBalance on a new account = %v, %v; want no balances, test mode", b, err)
	}
	s.collect(t, 10_000, "USD")
	checkBalance(t, s.balance(t, "USD"), 10_000, 0, 0)

	// Create: fee 25 + 1 % of 5000 = 75.
	req := usBank(5000, "WD-1")
	req.Currency = "usd"
	req.Description = "withdrawal 1"
	req.CallbackUrl = "https://example.com/payouts/callback"
	req.Metadata = map[string]string{"user": "42"}
	p1 := s.create(t, req)
	if !strings.HasPrefix(p1.Id, "po_") || p1.CreatedAt == nil || p1.ProcessedAt != nil {
		t.Errorf("payout id %q created_at %v processed_at %v; want po_…, set, unset", p1.Id, p1.CreatedAt, p1.ProcessedAt)
	}
	samePayout(t, "created payout", p1, &pb.Payout{Id: p1.Id, TransactionReference: "WD-1", Status: "pending",
		PayoutMethodId: "us_bank", PayoutMethodType: "bank_transfer", Amount: 5000, Fee: 75, TotalAmount: 5075, Currency: "USD",
		RecipientName: "Jane Doe", RecipientAccount: "000123456789", Description: "withdrawal 1",
		CallbackUrl: "https://example.com/payouts/callback", Metadata: map[string]string{"user": "42"}, Provider: "sandbox"})
	checkBalance(t, s.balance(t, "USD"), 4925, 5075, 0)

	for _, key := range []string{p1.Id, "WD-1"} {
		if got := s.get(t, key); !proto.Equal(got, p1) {
			t.Errorf("GetPayout(%s):\n got  %v\n want %v", key, got, p1)
		}
	}
	_, err = s.po.GetPayout(s.ctx, &pb.GetPayoutRequest{Id: "WD-404"})
	wantGRPCError(t, "GetPayout(unknown reference)", err, codes.NotFound, "resource_missing", "id")

	// A reference is unique per account and mode.
	_, err = s.po.CreatePayout(s.ctx, usBank(1000, "WD-1"))
	wantGRPCError(t, "duplicate reference", err, codes.AlreadyExists, "transaction_reference_in_use", "transaction_reference")
	checkBalance(t, s.balance(t, "USD"), 4925, 5075, 0)

	p2 := s.create(t, usBank(1000, "WD-2")) // fee 25 + 10 = 35
	if p2.Fee != 35 || p2.TotalAmount != 1035 {
		t.Errorf("payout of 1000: fee %d total %d; want 35 and 1035", p2.Fee, p2.TotalAmount)
	}

	// Batch: found by id and by reference, in the order asked; duplicates counted once.
	missing := "po_01m7zzzzzzzzzzzzzzzzzzzzzz"
	batch, err := s.po.BatchGetPayouts(s.ctx, &pb.BatchGetPayoutsRequest{Ids: []string{"WD-2", "nope", p1.Id, missing, "WD-2"}})
	if err != nil {
		t.Fatalf("BatchGetPayouts: %v", err)
	}
	if batch.TotalRequested != 4 || batch.TotalFound != 2 || len(batch.Payouts) != 2 ||
		batch.Payouts[0].Id != p2.Id || batch.Payouts[1].Id != p1.Id ||
		strings.Join(batch.NotFoundIds, ",") != "nope,"+missing {
		t.Errorf("BatchGetPayouts = %v; want [%s %s], not found [nope %s], 4 requested, 2 found", batch, p2.Id, p1.Id, missing)
	}
	_, err = s.po.BatchGetPayouts(s.ctx, &pb.BatchGetPayoutsRequest{})
	wantGRPCError(t, "BatchGetPayouts without ids", err, codes.InvalidArgument, "ids_invalid", "ids")
	_, err = s.po.BatchGetPayouts(s.ctx, &pb.BatchGetPayoutsRequest{Ids: make([]string, 101)})
	wantGRPCError(t, "BatchGetPayouts with 101 ids", err, codes.InvalidArgument, "ids_invalid", "ids")

	// Lists.
	page, err := s.po.ListPayouts(s.ctx, &pb.ListPayoutsRequest{PageSize: 1})
	if err != nil || len(page.Payouts) != 1 || page.Payouts[0].Id != p2.Id || page.NextPageToken == "" {
		t.Fatalf("ListPayouts page 1 = %v, %v; want [%s] and a next page", page, err, p2.Id)
	}
	page, err = s.po.ListPayouts(s.ctx, &pb.ListPayoutsRequest{PageSize: 1, PageToken: page.NextPageToken})
	if err != nil || len(page.Payouts) != 1 || page.Payouts[0].Id != p1.Id || page.NextPageToken != "" {
		t.Errorf("ListPayouts page 2 = %v, %v; want [%s] and no next page", page, err, p1.Id)
	}

	// Cancel (by reference) releases the reservation; only once.
	cancelled, err := s.po.CancelPayout(s.ctx, &pb.CancelPayoutRequest{Id: "WD-2"})
	if err != nil || cancelled.Payout.Status != "cancelled" || cancelled.Payout.Id != p2.Id {
		t.Fatalf("CancelPayout(WD-2) = %v, %v; want %s cancelled", cancelled, err, p2.Id)
	}
	checkBalance(t, s.balance(t, "USD"), 4925, 5075, 0)
	_, err = s.po.CancelPayout(s.ctx, &pb.CancelPayoutRequest{Id: p2.Id})
	wantGRPCError(t, "second cancel", err, codes.FailedPrecondition, "payout_unexpected_state", "id")
	for status, want := range map[string][]string{"pending": {p1.Id}, "cancelled": {p2.Id}, "completed": {}} {
		l, err := s.po.ListPayouts(s.ctx, &pb.ListPayoutsRequest{Status: status})
		if err != nil {
			t.Fatalf("ListPayouts status=%s: %v", status, err)
		}
		got := []string{}
		for _, p := range l.Payouts {
			got = append(got, p.Id)
		}
		equalIDs(t, "ListPayouts status="+status, got, want...)
	}
	_, err = s.po.ListPayouts(s.ctx, &pb.ListPayoutsRequest{Status: "done"})
	wantGRPCError(t, "ListPayouts status=done", err, codes.InvalidArgument, "parameter_invalid", "status")

	// More than available: 6000 + 85 > 4925.
	_, err = s.po.CreatePayout(s.ctx, usBank(6000, "WD-3"))
	got := grpcError(t, err)
	if got.grpcCode != codes.FailedPrecondition || got.code != "insufficient_funds" || got.errType != "balance_error" {
		t.Errorf("payout above the balance: %v %q %q; want FailedPrecondition insufficient_funds balance_error", got.grpcCode, got.code, got.errType)
	}
	if !strings.Contains(err.Error(), "49.25") || !strings.Contains(err.Error(), "60.85") {
		t.Errorf("insufficient_funds message %q; want it to name the available 49.25 and the needed 60.85", err)
	}
	// Exactly the available balance fits: 4851 + 25 + ⌈48.51⌉ = 4925.
	p3 := s.create(t, usBank(4851, "WD-3"))
	if p3.TotalAmount != 4925 {
		t.Errorf("payout of 4851: total %d; want 4925 (fee 25 + ⌈48.51⌉ = 74)", p3.TotalAmount)
	}
	checkBalance(t, s.balance(t, "USD"), 0, 5075+4925, 0)

	equalIDs(t, "events of "+p1.Id, eventTypes(t, s.db, p1.Id), "payout.created")
	equalIDs(t, "events of "+p2.Id, eventTypes(t, s.db, p2.Id), "payout.created", "payout.cancelled")
	mustPassCheck(t, s.db)
}

// TestPayoutRequestsRefused covers every refusal of CreatePayout before any
// money moves, over gRPC and REST alike.
func TestPayoutRequestsRefused(t *testing.T) {
	t.Parallel()
	s := startPayoutServer(t, holdPayouts)
	s.collect(t, 100_000, "USD")
	readKey, _ := createKey(t, s.db, "test", "read", "")
	writeKey, _ := createKey(t, s.db, "test", "write", "")
	liveKey, _ := createKey(t, s.db, "live", "write,payouts", "")

	type refusal struct {
		name         string
		key          string // default: the server's key
		body         string // the REST body; the gRPC request is decoded from it
		grpcCode     codes.Code
		httpStatus   int
		code, param  string
		msgFragments []string
	}
	// valid is a valid request body with some fields changed.
	valid := func(change string) string {
		body := map[string]any{"payout_method_id": "us_bank", "amount": 2000, "recipient_name": "Jane Doe",
			"recipient_account": "000123456789", "transaction_reference": "R-1"}
		if change != "" {
			if err := json.Unmarshal([]byte("{"+strings.TrimPrefix(change, ",")+"}"), &body); err != nil {
				t.Fatalf("change %s: %v", change, err)
			}
		}
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []refusal{
		{name: "below min_amount", body: valid(`, "amount": 999`), grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "amount_too_small", param: "amount", msgFragments: []string{"at least 1000 (10.00 USD)", "min_amount", "us_bank"}},
		{name: "above max_amount", body: valid(`, "amount": 1000001`), grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "amount_too_large", param: "amount", msgFragments: []string{"at most 1000000 (10000.00 USD)", "max_amount"}},
		{name: "bkash below 100 taka", body: `{"payout_method_id": "bkash", "amount": 9999, "recipient_name": "A",
			"recipient_account": "01712345678", "transaction_reference": "R-1"}`, grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "amount_too_small", param: "amount", msgFragments: []string{"at least 10000 (100.00 BDT)"}},
		{name: "bkash above 50000 taka", body: `{"payout_method_id": "bkash", "amount": 5000001, "recipient_name": "A",
			"recipient_account": "01712345678", "transaction_reference": "R-1"}`, grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "amount_too_large", param: "amount", msgFragments: []string{"at most 5000000 (50000.00 BDT)"}},
		{name: "zero amount", body: valid(`, "amount": 0`), grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "amount_invalid", param: "amount"},
		{name: "currency mismatch", body: valid(`, "currency": "BDT"`), grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "currency_mismatch", param: "currency", msgFragments: []string{"pays out USD"}},
		{name: "unknown method", body: valid(`, "payout_method_id": "paypal"`), grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "payout_method_invalid", param: "payout_method_id", msgFragments: []string{"bkash, us_bank, usdt_tron"}},
		{name: "mobile number with letters", body: `{"payout_method_id": "bkash", "amount": 10000, "recipient_name": "A",
			"recipient_account": "0171234567a", "transaction_reference": "R-1"}`, grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "recipient_account_invalid", param: "recipient_account"},
		{name: "mobile number too short", body: `{"payout_method_id": "bkash", "amount": 10000, "recipient_name": "A",
			"recipient_account": "017123", "transaction_reference": "R-1"}`, grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "recipient_account_invalid", param: "recipient_account"},
		{name: "bank account with dashes", body: valid(`, "recipient_account": "0001-2345-6789"`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "recipient_account_invalid", param: "recipient_account", msgFragments: []string{"6–34 letters and digits"}},
		{name: "bank account too short", body: valid(`, "recipient_account": "12345"`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "recipient_account_invalid", param: "recipient_account"},
		{name: "tron address with a bad checksum", body: `{"payout_method_id": "usdt_tron", "amount": 10000000, "recipient_name": "A",
			"recipient_account": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u", "transaction_reference": "R-1"}`, grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "recipient_account_invalid", param: "recipient_account", msgFragments: []string{"Tron address"}},
		{name: "ethereum address on tron", body: `{"payout_method_id": "usdt_tron", "amount": 10000000, "recipient_name": "A",
			"recipient_account": "0x52908400098527886E0F7030069857D2E4169EE7", "transaction_reference": "R-1"}`, grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "recipient_account_invalid", param: "recipient_account"},
		{name: "card number as bank account", body: valid(`, "recipient_account": "4242424242424242"`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "card_number_refused", param: "recipient_account", msgFragments: []string{"never accepts card numbers"}},
		{name: "card number as mobile number", body: `{"payout_method_id": "bkash", "amount": 10000, "recipient_name": "A",
			"recipient_account": "378282246310005", "transaction_reference": "R-1"}`, grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "card_number_refused", param: "recipient_account"},
		{name: "card number with a bad amount too", body: `{"payout_method_id": "bkash", "amount": 0, "recipient_name": "A",
			"recipient_account": "378282246310005", "transaction_reference": "R-1"}`, grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "card_number_refused", param: "recipient_account"},
		{name: "missing recipient account", body: valid(`, "recipient_account": ""`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "parameter_missing", param: "recipient_account"},
		{name: "missing recipient name", body: valid(`, "recipient_name": " "`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "parameter_missing", param: "recipient_name"},
		{name: "missing reference", body: valid(`, "transaction_reference": ""`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "parameter_missing", param: "transaction_reference"},
		{name: "reference of 51 characters", body: valid(`, "transaction_reference": "` + strings.Repeat("r", 51) + `"`),
			grpcCode: codes.InvalidArgument, httpStatus: 400, code: "parameter_too_long", param: "transaction_reference"},
		{name: "reference with a slash", body: valid(`, "transaction_reference": "a/b"`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "transaction_reference_invalid", param: "transaction_reference"},
		{name: "reference of two dots", body: valid(`, "transaction_reference": ".."`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "transaction_reference_invalid", param: "transaction_reference"},
		{name: "reference that looks like an id", body: valid(`, "transaction_reference": "po_123"`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "transaction_reference_invalid", param: "transaction_reference"},
		{name: "callback_url not http", body: valid(`, "callback_url": "ftp://example.com/x"`), grpcCode: codes.InvalidArgument,
			httpStatus: 400, code: "url_invalid", param: "callback_url"},
		{name: "no funds in BDT", body: `{"payout_method_id": "bkash", "amount": 10000, "recipient_name": "A",
			"recipient_account": "01712345678", "transaction_reference": "R-1"}`, grpcCode: codes.FailedPrecondition, httpStatus: 402,
			code: "insufficient_funds", param: "amount", msgFragments: []string{"available BDT balance is 0.00", "needs 101.50"}},
		{name: "no funds in USDT", body: `{"payout_method_id": "usdt_tron", "amount": 10000000, "recipient_name": "A",
			"recipient_account": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "transaction_reference": "R-1"}`, grpcCode: codes.FailedPrecondition,
			httpStatus: 402, code: "insufficient_funds", param: "amount", msgFragments: []string{"needs 11.000000"}},
		{name: "read-only key", key: readKey, body: valid(""), grpcCode: codes.PermissionDenied, httpStatus: 403, code: "scope_missing"},
		{name: "write key without payouts scope", key: writeKey, body: valid(""), grpcCode: codes.PermissionDenied, httpStatus: 403,
			code: "scope_missing", msgFragments: []string{"payouts scope"}},
		{name: "live key", key: liveKey, body: valid(""), grpcCode: codes.InvalidArgument, httpStatus: 400,
			code: "live_mode_not_configured", msgFragments: []string{"test key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := c.key
			if key == "" {
				key = s.key
			}
			var req pb.CreatePayoutRequest
			if err := protojson.Unmarshal([]byte(c.body), &req); err != nil {
				t.Fatalf("body %s: %v", c.body, err)
			}
			_, err := s.po.CreatePayout(withKey(t.Context(), key), &req)
			got := grpcError(t, err)
			if got.grpcCode != c.grpcCode || got.code != c.code || got.param != c.param {
				t.Errorf("gRPC: %v %q param %q; want %v %q param %q (%v)", got.grpcCode, got.code, got.param, c.grpcCode, c.code, c.param, err)
			}
			for _, f := range c.msgFragments {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("gRPC message %q lacks %q", err, f)
				}
			}
			status, body, _ := s.restDo(t, "POST", "/v1/payouts", key, "", c.body)
			rest := restError(t, status, body)
			if rest.httpStatus != c.httpStatus || rest.code != c.code || rest.param != c.param {
				t.Errorf("REST: %d %q param %q; want %d %q param %q (%v)", rest.httpStatus, rest.code, rest.param, c.httpStatus, c.code, c.param, body)
			}
		})
	}
	// Nothing was reserved by any of them, and reads still work with a read-only key.
	b, err := s.po.GetBalance(withKey(t.Context(), readKey), &pb.GetBalanceRequest{})
	if err != nil || len(b.Balances) != 1 {
		t.Fatalf("GetBalance with a read key = %v, %v; want the USD balance", b, err)
	}
	checkBalance(t, b.Balances[0], 100_000, 0, 0)
	if l, err := s.po.ListPayouts(withKey(t.Context(), readKey), &pb.ListPayoutsRequest{}); err != nil || len(l.Payouts) != 0 {
		t.Errorf("ListPayouts = %v, %v; want no payouts", l, err)
	}
	// Long account numbers that pass the Luhn check but are no card numbers
	// are accepted: a 16-digit bank account starting with 1, a mobile
	// number in international form.
	s.collect(t, 20_000, "BDT")
	s.create(t, &pb.CreatePayoutRequest{PayoutMethodId: "us_bank", Amount: 2000, RecipientName: "A",
		RecipientAccount: "1000123456789013", TransactionReference: "R-luhn-bank"})
	s.create(t, &pb.CreatePayoutRequest{PayoutMethodId: "bkash", Amount: 10_000, RecipientName: "A",
		RecipientAccount: "+8801712345670", TransactionReference: "R-luhn-mobile"})
	checkBalance(t, s.balance(t, "USD"), 100_000-2045, 2045, 0)
	checkBalance(t, s.balance(t, "BDT"), 20_000-10_150, 10_150, 0)
	// Live mode has no payout methods until they are configured.
	if l, err := s.po.ListPayoutMethods(withKey(t.Context(), liveKey), &pb.ListPayoutMethodsRequest{}); err != nil || len(l.PayoutMethods) != 0 {
		t.Errorf("live ListPayoutMethods = %v, %v; want none", l, err)
	}
	mustPassCheck(t, s.db)
}

func TestPayoutsOverREST(t *testing.T) {
	t.Parallel()
	s := startPayoutServer(t, holdPayouts)
	do := func(method, path, idem, body string, want int) map[string]any {
		t.Helper()
		code, m, _ := s.restDo(t, method, path, s.key, idem, body)
		if code != want {
			t.Fatalf("%s %s %s: status %d %v; want %d", method, path, body, code, m, want)
		}
		return m
	}
	methods := items(t, do("GET", "/v1/payout-methods", "", "", 200), "payout_methods")
	if len(methods) != 3 || str(methods[0], "id") != "bkash" || str(methods[0], "min_amount") != "10000" ||
		str(methods[0], "max_amount") != "5000000" || str(methods[0], "currency") != "BDT" || str(methods[0], "type") != "mobile_banking" {
		t.Errorf("GET /v1/payout-methods: %v; want bkash (BDT, 10000–5000000) first of 3", methods)
	}
	if fee, _ := methods[1]["fee"].(map[string]any); str(fee, "fixed_amount") != "25" || fee["basis_points"] != float64(100) || str(fee, "percent") != "1.00" {
		t.Errorf("us_bank fee %v; want fixed_amount 25, basis_points 100, percent 1.00", methods[1]["fee"])
	}
	do("POST", "/v1/payments", "", `{"amount": 20000, "currency": "USD", "payment_method": "pm_card_visa"}`, 200)
	bal := items(t, do("GET", "/v1/balance", "", "", 200), "balances")
	if len(bal) != 1 || str(bal[0], "currency") != "USD" || str(bal[0], "available") != "20000" || str(bal[0], "reserved") != "0" {
		t.Errorf("GET /v1/balance: %v; want USD available 20000", bal)
	}

	body := `{"payout_method_id": "us_bank", "amount": 3000, "recipient_name": "John Doe", "recipient_account": "GB33BUKB20201555555555",
		"transaction_reference": "WD123456", "description": "cash out", "metadata": {"k": "v"}}`
	p := do("POST", "/v1/payouts", "idem-1", body, 200)
	for k, v := range map[string]string{"transaction_reference": "WD123456", "status": "pending", "amount": "3000", "fee": "55",
		"total_amount": "3055", "currency": "USD", "recipient_account": "GB33BUKB20201555555555", "payout_method_id": "us_bank",
		"payout_method_type": "bank_transfer", "provider": "sandbox", "description": "cash out"} {
		if str(p, k) != v {
			t.Errorf("payout %s = %v; want %q", k, p[k], v)
		}
	}
	id := str(p, "id")
	// The same idempotency key replays the payout; nothing more is reserved.
	if again := do("POST", "/v1/payouts", "idem-1", body, 200); str(again, "id") != id {
		t.Errorf("replay with the same Idempotency-Key: id %s; want %s", str(again, "id"), id)
	}
	bal = items(t, do("GET", "/v1/balance", "", "", 200), "balances")
	if str(bal[0], "available") != "16945" || str(bal[0], "reserved") != "3055" || str(bal[0], "paid_out") != "0" {
		t.Errorf("balance after one payout: %v; want available 16945, reserved 3055", bal[0])
	}
	// A new key with the same reference is a duplicate.
	code, m, _ := s.restDo(t, "POST", "/v1/payouts", s.key, "idem-2", body)
	if e := restError(t, code, m); e.httpStatus != 409 || e.code != "transaction_reference_in_use" || e.param != "transaction_reference" {
		t.Errorf("duplicate reference: %+v; want 409 transaction_reference_in_use", e)
	}

	for _, key := range []string{id, "WD123456"} {
		if got := do("GET", "/v1/payouts/"+key, "", "", 200); str(got, "id") != id || str(got, "status") != "pending" {
			t.Errorf("GET /v1/payouts/%s: %v; want %s pending", key, got, id)
		}
	}
	code, m, _ = s.restDo(t, "GET", "/v1/payouts/WD999", s.key, "", "")
	if e := restError(t, code, m); e.httpStatus != 404 || e.code != "resource_missing" {
		t.Errorf("GET /v1/payouts/WD999: %+v; want 404 resource_missing", e)
	}

	p2 := do("POST", "/v1/payouts", "", `{"payout_method_id": "us_bank", "amount": 1000, "recipient_name": "A", "recipient_account": "123456",
		"transaction_reference": "WD2"}`, 200)
	batch := do("POST", "/v1/payouts/batch", "", `{"ids": ["WD123456", "ATPAY123", "`+str(p2, "id")+`"]}`, 200)
	equalIDs(t, "batch payouts", jsonIDs(items(t, batch, "payouts")), id, str(p2, "id"))
	if nf, _ := batch["not_found_ids"].([]any); len(nf) != 1 || nf[0] != "ATPAY123" ||
		batch["total_requested"] != float64(3) || batch["total_found"] != float64(2) {
		t.Errorf("batch: %v; want not_found_ids [ATPAY123], total_requested 3, total_found 2", batch)
	}

	list := do("GET", "/v1/payouts?page_size=1&status=pending", "", "", 200)
	equalIDs(t, "GET /v1/payouts page 1", jsonIDs(items(t, list, "payouts")), str(p2, "id"))
	list = do("GET", "/v1/payouts?page_size=1&status=pending&page_token="+url.QueryEscape(str(list, "next_page_token")), "", "", 200)
	equalIDs(t, "GET /v1/payouts page 2", jsonIDs(items(t, list, "payouts")), id)

	c := do("POST", "/v1/payouts/WD2/cancel", "", `{}`, 200)
	if str(c, "status") != "cancelled" || str(c, "id") != str(p2, "id") {
		t.Errorf("cancel: %v; want %s cancelled", c, str(p2, "id"))
	}
	code, m, _ = s.restDo(t, "POST", "/v1/payouts/WD2/cancel", s.key, "", `{}`)
	if e := restError(t, code, m); e.httpStatus != 409 || e.code != "payout_unexpected_state" {
		t.Errorf("second cancel: %+v; want 409 payout_unexpected_state", e)
	}

	// 20000 - 3055 = 16945 available; 16800 + 25 + 168 = 16993 does not fit.
	code, m, _ = s.restDo(t, "POST", "/v1/payouts", s.key, "", `{"payout_method_id": "us_bank", "amount": 16800,
		"recipient_name": "A", "recipient_account": "123456", "transaction_reference": "WD3"}`)
	if e := restError(t, code, m); e.httpStatus != 402 || e.code != "insufficient_funds" || e.errType != "balance_error" {
		t.Errorf("payout above the balance: %+v; want 402 insufficient_funds balance_error", e)
	}
	paths, _ := do("GET", "/openapi.json", "", "", 200)["paths"].(map[string]any)
	for _, p := range []string{"/v1/payout-methods", "/v1/payouts", "/v1/payouts/{id}", "/v1/payouts/batch", "/v1/payouts/{id}/cancel", "/v1/balance"} {
		if paths[p] == nil {
			t.Errorf("/openapi.json has no path %s", p)
		}
	}
	mustPassCheck(t, s.db)
}

// TestPayoutLifecycle follows payouts through the sandbox to completed and
// to rejected (the documented test recipients), with their events and the
// balance at the end.
func TestPayoutLifecycle(t *testing.T) {
	t.Parallel()
	s := startPayoutServer(t, fastPayouts)
	s.collect(t, 50_000, "USD")
	s.collect(t, 100_000_000, "USDT") // 100 USDT

	ok := s.create(t, usBank(10_000, "L-ok"))                                  // fee 125
	rejected := s.create(t, &pb.CreatePayoutRequest{PayoutMethodId: "us_bank", // fee 25 + 20 = 45
		Amount: 2000, RecipientName: "Test", RecipientAccount: "0000000000", TransactionReference: "L-rejected"})
	tron := s.create(t, &pb.CreatePayoutRequest{PayoutMethodId: "usdt_tron", Amount: 20_000_000, RecipientName: "Satoshi",
		RecipientAccount: "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", TransactionReference: "L-tron"})
	tronRejected := s.create(t, &pb.CreatePayoutRequest{PayoutMethodId: "usdt_tron", Amount: 10_000_000, RecipientName: "Nobody",
		RecipientAccount: "T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb", TransactionReference: "L-tron-rejected"})
	if tron.Network != "tron" || tron.Fee != 1_000_000 || tron.TotalAmount != 21_000_000 {
		t.Errorf("tron payout: network %q fee %d total %d; want tron, 1000000, 21000000", tron.Network, tron.Fee, tron.TotalAmount)
	}

	for _, p := range []*pb.Payout{ok, tron} {
		done := s.waitPayout(t, p.Id, "completed")
		if done.ProcessedAt == nil || done.FailureCode != "" || !done.UpdatedAt.AsTime().After(p.CreatedAt.AsTime()) {
			t.Errorf("completed payout %v; want processed_at set, no failure, updated after creation", done)
		}
		equalIDs(t, "events of "+p.Id, eventTypes(t, s.db, p.Id), "payout.created", "payout.processing", "payout.completed")
	}
	for _, p := range []*pb.Payout{rejected, tronRejected} {
		done := s.waitPayout(t, p.Id, "rejected")
		if done.ProcessedAt == nil || done.FailureCode != "recipient_account_rejected" || !strings.Contains(done.FailureMessage, p.RecipientAccount) {
			t.Errorf("rejected payout %v; want processed_at, failure_code recipient_account_rejected and a reason naming the account", done)
		}
		equalIDs(t, "events of "+p.Id, eventTypes(t, s.db, p.Id), "payout.created", "payout.processing", "payout.rejected")
	}
	// A finished payout cannot be cancelled.
	_, err := s.po.CancelPayout(s.ctx, &pb.CancelPayoutRequest{Id: "L-ok"})
	wantGRPCError(t, "cancel after completion", err, codes.FailedPrecondition, "payout_unexpected_state", "id")

	checkBalance(t, s.balance(t, "USD"), 50_000-10_125, 0, 10_125)
	checkBalance(t, s.balance(t, "USDT"), 100_000_000-21_000_000, 0, 21_000_000)
	mustPassCheck(t, s.db)
}

// TestPayoutCancelAfterProcessingRefused: once the sandbox has started
// processing a payout, cancelling it is refused and nothing changes.
func TestPayoutCancelAfterProcessingRefused(t *testing.T) {
	t.Parallel()
	s := startPayoutServer(t, []string{"--sandbox-payout-processing-delay", "10ms", "--sandbox-payout-completion-delay", "1h"})
	s.collect(t, 5000, "USD")
	p := s.create(t, usBank(1000, "P-1"))
	s.waitPayout(t, p.Id, "processing")
	_, err := s.po.CancelPayout(s.ctx, &pb.CancelPayoutRequest{Id: p.Id})
	wantGRPCError(t, "cancel while processing", err, codes.FailedPrecondition, "payout_unexpected_state", "id")
	if !strings.Contains(err.Error(), "status is processing") {
		t.Errorf("message %q; want it to name the processing status", err)
	}
	code, m, _ := s.restDo(t, "POST", "/v1/payouts/P-1/cancel", s.key, "", `{}`)
	if e := restError(t, code, m); e.httpStatus != 409 || e.code != "payout_unexpected_state" {
		t.Errorf("REST cancel while processing: %+v; want 409 payout_unexpected_state", e)
	}
	if got := s.get(t, p.Id); got.Status != "processing" {
		t.Errorf("status after the refused cancel: %s; want processing", got.Status)
	}
	checkBalance(t, s.balance(t, "USD"), 5000-1035, 1035, 0)
	equalIDs(t, "events", eventTypes(t, s.db, p.Id), "payout.created", "payout.processing")
	mustPassCheck(t, s.db)
}

// TestPayoutFeeArithmetic configures methods with `paymentd payout-methods
// set` on a running server and checks fees at the edges: rounding up, the
// largest amounts, and totals that do not fit.
func TestPayoutFeeArithmetic(t *testing.T) {
	t.Parallel()
	s := startPayoutServer(t, holdPayouts)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("methods.json", `{"payout_methods": [
		{"id": "odd", "name": "Odd fee", "type": "bank_transfer", "currency": "USD", "min_amount": 1, "max_amount": 999999999999,
		 "fee": {"fixed_amount": 7, "basis_points": 333}, "account_format": "6–34 letters and digits"},
		{"id": "all", "name": "Everything", "type": "mobile_banking", "currency": "USD", "min_amount": "1", "max_amount": "999999999999",
		 "fee": {"fixed_amount": "999999999999", "basis_points": 10000, "percent": "100.00"}},
		{"id": "eth", "name": "USDC on Ethereum", "type": "crypto", "network": "ethereum", "currency": "USDC", "min_amount": 1000000, "max_amount": 5000000000}
	]}`)
	// methodIDs parses what payout-methods prints (the API's JSON).
	methodIDs := func(out string) string {
		t.Helper()
		var l pb.ListPayoutMethodsResponse
		if err := protojson.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("payout-methods printed %q: %v", out, err)
		}
		var ids []string
		for _, m := range l.PayoutMethods {
			ids = append(ids, m.Id+":"+m.GetFee().GetPercent())
		}
		return strings.Join(ids, " ")
	}
	out, _ := cli(t, "payout-methods", "set", "--db", s.db, "--file", cfg)
	if got := methodIDs(out); got != "odd:3.33 all:100.00 eth:0.00" {
		t.Errorf("payout-methods set printed %s; want odd:3.33 all:100.00 eth:0.00", got)
	}
	l, err := s.po.ListPayoutMethods(s.ctx, &pb.ListPayoutMethodsRequest{})
	if err != nil || len(l.PayoutMethods) != 3 || l.PayoutMethods[0].Id != "odd" || l.PayoutMethods[2].Network != "ethereum" {
		t.Fatalf("ListPayoutMethods after set = %v, %v; want odd, all, eth", l, err)
	}

	// Two payments of the largest amount: 1 999 999 999 998 available.
	s.collect(t, 999_999_999_999, "USD")
	s.collect(t, 999_999_999_999, "USD")
	for i, c := range []struct{ amount, fee int64 }{
		{1, 8},                                // 7 + ⌈0.0333⌉
		{30, 8},                               // 7 + ⌈0.999⌉
		{31, 9},                               // 7 + ⌈1.0323⌉
		{10_000, 340},                         // 7 + 333 exactly
		{30_030, 1007},                        // 7 + ⌈999.999⌉
		{999_999_999_999, 33_300_000_007 + 0}, // 7 + ⌈33 299 999 999.9667⌉
	} {
		p := s.create(t, &pb.CreatePayoutRequest{PayoutMethodId: "odd", Amount: c.amount, RecipientName: "A",
			RecipientAccount: "123456", TransactionReference: fmt.Sprintf("F-%d", i)})
		if p.Fee != c.fee || p.TotalAmount != c.amount+c.fee {
			t.Errorf("amount %d: fee %d total %d; want fee %d total %d", c.amount, p.Fee, p.TotalAmount, c.fee, c.amount+c.fee)
		}
	}
	// 100 % + the largest fixed fee: 999 999 999 999 + 1 999 999 999 998 does not fit in what is left.
	_, err = s.po.CreatePayout(s.ctx, &pb.CreatePayoutRequest{PayoutMethodId: "all", Amount: 999_999_999_999, RecipientName: "A",
		RecipientAccount: "01712345678", TransactionReference: "F-all"})
	wantGRPCError(t, "total above the balance", err, codes.FailedPrecondition, "insufficient_funds", "amount")
	if !strings.Contains(err.Error(), "needs 29999999999.97 (amount 9999999999.99 + fee 19999999999.98)") {
		t.Errorf("message %q; want it to spell out the total, amount and fee", err)
	}
	_, err = s.po.CreatePayout(s.ctx, &pb.CreatePayoutRequest{PayoutMethodId: "eth", Amount: 1_000_000, RecipientName: "A",
		RecipientAccount: "0x52908400098527886E0F7030069857D2E4169EE7", TransactionReference: "F-eth"})
	wantGRPCError(t, "USDC without a USDC balance", err, codes.FailedPrecondition, "insufficient_funds", "amount")
	_, err = s.po.CreatePayout(s.ctx, &pb.CreatePayoutRequest{PayoutMethodId: "eth", Amount: 1_000_000, RecipientName: "A",
		RecipientAccount: "0x5290840009852788", TransactionReference: "F-eth"})
	wantGRPCError(t, "short EVM address", err, codes.InvalidArgument, "recipient_account_invalid", "recipient_account")

	// Bad configurations are refused whole.
	for name, c := range map[string]struct{ body, want string }{
		"basis points above 100 %": {`{"payout_methods": [{"id": "x", "name": "X", "type": "bank_transfer", "currency": "USD",
			"min_amount": 1, "max_amount": 2, "fee": {"basis_points": 10001}}]}`, "basis_points must be between 0 and 10000"},
		"min above max": {`{"payout_methods": [{"id": "x", "name": "X", "type": "bank_transfer", "currency": "USD",
			"min_amount": 3, "max_amount": 2}]}`, "min_amount ≤ max_amount"},
		"crypto without network": {`{"payout_methods": [{"id": "x", "name": "X", "type": "crypto", "currency": "USDT",
			"min_amount": 1, "max_amount": 2}]}`, "needs a network"},
		"unknown currency": {`{"payout_methods": [{"id": "x", "name": "X", "type": "bank_transfer", "currency": "XXX",
			"min_amount": 1, "max_amount": 2}]}`, `currency "XXX"`},
		"percent disagrees": {`{"payout_methods": [{"id": "x", "name": "X", "type": "bank_transfer", "currency": "USD",
			"min_amount": 1, "max_amount": 2, "fee": {"basis_points": 150, "percent": "15"}}]}`, "disagrees with basis_points"},
		"unknown field": {`{"payout_methods": [{"id": "x", "fees": 1}]}`, "unknown field"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"payout-methods", "set", "--db", s.db, "--file", write("bad.json", c.body)}, noEnv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: payout-methods set returned %v; want an error containing %q", name, err, c.want)
		}
	}
	// reset goes back to the sandbox defaults.
	out, _ = cli(t, "payout-methods", "reset", "--db", s.db)
	if got := methodIDs(out); got != "bkash:1.50 us_bank:1.00 usdt_tron:0.00" {
		t.Errorf("payout-methods reset printed %s; want the default methods", got)
	}
	if l, err := s.po.ListPayoutMethods(s.ctx, &pb.ListPayoutMethodsRequest{}); err != nil || len(l.PayoutMethods) != 3 || l.PayoutMethods[0].Id != "bkash" {
		t.Errorf("ListPayoutMethods after reset = %v, %v; want the defaults", l, err)
	}
	mustPassCheck(t, s.db)
}

// TestConcurrentPayoutsNeverOverdraw sends 30 payouts of 1000 (+ fee 35) at
// once against 10 000 available, half over gRPC and half over REST, while
// the sandbox completes them: exactly 9 fit, the rest get 402, and at every
// moment available ≥ 0 and available + reserved + paid out = collected.
func TestConcurrentPayoutsNeverOverdraw(t *testing.T) {
	t.Parallel()
	s := startPayoutServer(t, slices.Concat(fastPayouts, checkpointOften))
	s.collect(t, 10_000, "USD")

	stop := make(chan struct{})
	var watcher sync.WaitGroup
	var samples atomic.Int64
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := s.po.GetBalance(s.ctx, &pb.GetBalanceRequest{})
			if err != nil || len(resp.Balances) != 1 {
				t.Errorf("GetBalance: %v, %v", resp, err)
				return
			}
			b := resp.Balances[0]
			if b.Available < 0 || b.Reserved < 0 || b.Available+b.Reserved+b.PaidOut != 10_000 {
				t.Errorf("balance %v: want available ≥ 0 and available + reserved + paid_out = 10000", b)
			}
			samples.Add(1)
		}
	})

	var ok, refused atomic.Int64
	var created sync.Map
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 30 {
		wg.Go(func() {
			<-start
			ref := fmt.Sprintf("C-%02d", i)
			if i%2 == 0 {
				resp, err := s.po.CreatePayout(s.ctx, usBank(1000, ref))
				if err == nil {
					ok.Add(1)
					created.Store(resp.Payout.Id, true)
					return
				}
				if e := grpcError(t, err); e.code != "insufficient_funds" || e.grpcCode != codes.FailedPrecondition {
					t.Errorf("payout %s: %v; want success or insufficient_funds", ref, err)
				}
				refused.Add(1)
				return
			}
			code, body, _ := s.restDo(t, "POST", "/v1/payouts", s.key, "", fmt.Sprintf(`{"payout_method_id": "us_bank", "amount": 1000,
				"recipient_name": "Jane Doe", "recipient_account": "000123456789", "transaction_reference": %q}`, ref))
			if code == http.StatusOK {
				ok.Add(1)
				created.Store(str(body, "id"), true)
				return
			}
			if e := restError(t, code, body); e.httpStatus != http.StatusPaymentRequired || e.code != "insufficient_funds" {
				t.Errorf("payout %s: %d %v; want 200 or 402 insufficient_funds", ref, code, body)
			}
			refused.Add(1)
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != 9 || refused.Load() != 21 {
		t.Errorf("%d payouts succeeded and %d were refused; want 9 (9 × 1035 ≤ 10000 < 10 × 1035) and 21", ok.Load(), refused.Load())
	}
	created.Range(func(id, _ any) bool {
		s.waitPayout(t, id.(string), "completed")
		return true
	})
	close(stop)
	watcher.Wait()
	n := checkpoints(t, s.db)
	t.Logf("%d balance samples taken and %d checkpoints written while payouts ran", samples.Load(), n)
	if n == 0 {
		t.Errorf("no ledger checkpoint was written; want the balances read through checkpoints")
	}
	checkBalance(t, s.balance(t, "USD"), 10_000-9*1035, 0, 9*1035)
	mustPassCheck(t, s.db)
}

// TestCancelRacesProcessing cancels payouts (twice at once) just as the
// sandbox starts processing them: each ends in exactly one final state,
// with the events and ledger of that state only.
func TestCancelRacesProcessing(t *testing.T) {
	t.Parallel()
	s := startPayoutServer(t, slices.Concat([]string{"--sandbox-payout-processing-delay", "1ms", "--sandbox-payout-completion-delay", "10ms"},
		checkpointOften))
	const n = 20
	s.collect(t, n*1035, "USD")
	var completedTotal int64
	outcomes := map[string]int{}
	for i := range n {
		p := s.create(t, usBank(1000, fmt.Sprintf("X-%02d", i)))
		var cancelled atomic.Int64
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				_, err := s.po.CancelPayout(s.ctx, &pb.CancelPayoutRequest{Id: p.Id})
				if err == nil {
					cancelled.Add(1)
					return
				}
				if e := grpcError(t, err); e.code != "payout_unexpected_state" {
					t.Errorf("cancel %s: %v; want success or payout_unexpected_state", p.Id, err)
				}
			})
		}
		wg.Wait()
		var final *pb.Payout
		switch cancelled.Load() {
		case 0:
			final = s.waitPayout(t, p.Id, "completed")
			equalIDs(t, "events of "+p.Id, eventTypes(t, s.db, p.Id), "payout.created", "payout.processing", "payout.completed")
			completedTotal += final.TotalAmount
		case 1:
			final = s.get(t, p.Id)
			if final.Status != "cancelled" {
				t.Errorf("payout %s: a cancel succeeded but its status is %s", p.Id, final.Status)
			}
			equalIDs(t, "events of "+p.Id, eventTypes(t, s.db, p.Id), "payout.created", "payout.cancelled")
		default:
			t.Errorf("payout %s was cancelled %d times", p.Id, cancelled.Load())
		}
		outcomes[final.GetStatus()]++
	}
	t.Logf("outcomes: %v", outcomes)
	// Let anything still moving settle, then the books must add up.
	deadline := time.Now().Add(30 * time.Second)
	for s.balance(t, "USD").Reserved != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	checkBalance(t, s.balance(t, "USD"), n*1035-completedTotal, 0, completedTotal)
	mustPassCheck(t, s.db)
}

// TestCheckReportsCorruption runs `paymentd check` on a copy of a database
// in which entries were changed with plain SQL.
func TestCheckReportsCorruption(t *testing.T) {
	t.Parallel()
	s := payoutServerOn(t, storetest.SQLitePath(t), fastPayouts) // SQLite only: VACUUM INTO snapshots of the file
	s.collect(t, 10_000, "USD")
	p := s.create(t, usBank(2000, "K-1"))
	s.waitPayout(t, p.Id, "completed")
	mustPassCheck(t, s.db)

	snapshot := func(name string) string {
		t.Helper()
		dst := filepath.Join(t.TempDir(), name)
		db, err := sql.Open("sqlite", "file:"+s.db+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`VACUUM INTO ?`, dst); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	corrupt := func(path string, stmts ...string) {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range stmts {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}

	unbalanced := snapshot("unbalanced.db")
	mustPassCheck(t, unbalanced) // the copy itself is fine
	corrupt(unbalanced, `INSERT INTO ledger_entries (account_id, livemode, currency, book, amount, source_id, created)
		SELECT account_id, livemode, currency, 'available', 5000, 'forged', created FROM ledger_entries LIMIT 1`)
	report, err := runCheck(unbalanced)
	if err == nil || !strings.Contains(err.Error(), "check failed") {
		t.Errorf("check on an unbalanced ledger returned %v; want a check failed error", err)
	}
	for _, want := range []string{`FAIL  ledger movements balance`, `source "forged" sum to 5000, not 0`} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}

	overdrawn := snapshot("overdrawn.db")
	corrupt(overdrawn,
		// A completed payout forged without its money: its entries no longer match.
		`UPDATE payouts SET status = 'completed', total_amount = 9000, amount = 9000, fee = 0`,
		// A balanced movement that pays out more than there is.
		`INSERT INTO ledger_entries (account_id, livemode, currency, book, amount, source_id, created)
			SELECT account_id, livemode, currency, 'available', -20000, 'po_forged', created FROM ledger_entries LIMIT 1`,
		`INSERT INTO ledger_entries (account_id, livemode, currency, book, amount, source_id, created)
			SELECT account_id, livemode, currency, 'payouts:sandbox', 20000, 'po_forged', created FROM ledger_entries LIMIT 1`)
	report, err = runCheck(overdrawn)
	if err == nil {
		t.Errorf("check on an overdrawn ledger passed:\n%s", report)
	}
	for _, want := range []string{
		"FAIL  books never negative",
		"USD available goes negative (-12045)",
		"FAIL  payouts: ledger entries match status",
		"payout " + p.Id + " (completed, total_amount 9000 USD) moved available -2045, reserved 0, paid out 2045",
		"2 of 7 checks FAILED.",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if _, err := runCheck(filepath.Join(t.TempDir(), "missing.db")); err == nil || !strings.Contains(err.Error(), "no database at") {
		t.Errorf("check on a missing file: %v; want no database at …", err)
	}
}
