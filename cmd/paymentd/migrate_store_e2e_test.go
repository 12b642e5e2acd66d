package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store/storetest"
)

// msFlags are the serve flags of both servers of the migrate-store test:
// webhooks to the loopback receiver, retried fast, and sandbox payouts held
// pending, so that nothing changes on its own between the two servers, and
// ledger checkpoints every few entries, so that the move carries some.
var msFlags = append(append(append([]string{}, whFast...), holdPayouts...), checkpointOften...)

// msPopulate drives the flows an operator's database holds through a real
// server: payments (automatic, manual and captured in part, canceled),
// refunds, idempotent replays, a card and a crypto invoice with receipts, a
// canceled invoice, payouts (pending and cancelled), a webhook endpoint that
// first fails and then receives every event. It returns the idempotency
// key, request and payment of one create, for the replay after the move.
func msPopulate(t *testing.T, srv *testServer) (string, *pb.CreatePaymentRequest, *pb.Payment) {
	t.Helper()
	ctx := withKey(t.Context(), srv.key)
	rcv := whNewReceiver(t)
	rcv.failNext = 2 // two failed attempts before the first delivery
	whCreateEndpoint(t, srv, srv.key, rcv.URL)

	createReq := &pb.CreatePaymentRequest{Amount: 120_000, Currency: "USD", PaymentMethod: "pm_card_visa", Description: "Zoë's order ✓",
		Metadata: map[string]string{"order": "42"}, Customer: &pb.Customer{Name: "Zoë", Email: "zoe@example.com"}}
	first, err := srv.payments.CreatePayment(withIdem(ctx, "ms-create-1"), createReq)
	if err != nil {
		t.Fatal(err)
	}
	replay, err := srv.payments.CreatePayment(withIdem(ctx, "ms-create-1"), createReq)
	if err != nil || !proto.Equal(replay.Payment, first.Payment) {
		t.Fatalf("replay before the move = %v, %v; want the first payment", replay, err)
	}
	manualPay := mustCreate(t, withIdem(ctx, "ms-manual"), srv.payments, manual(5000))
	if _, err := srv.payments.CapturePayment(withIdem(ctx, "ms-capture"), &pb.CapturePaymentRequest{Id: manualPay.Id, Amount: proto.Int64(3000)}); err != nil {
		t.Fatal(err)
	}
	canceled := mustCreate(t, ctx, srv.payments, manual(700))
	if _, err := srv.payments.CancelPayment(ctx, &pb.CancelPaymentRequest{Id: canceled.Id}); err != nil {
		t.Fatal(err)
	}
	for i, amount := range []int64{1000, 250} {
		if _, err := srv.payments.CreateRefund(withIdem(ctx, "ms-refund-"+string(rune('a'+i))),
			&pb.CreateRefundRequest{PaymentId: first.Payment.Id, Amount: proto.Int64(amount)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		mustCreate(t, ctx, srv.payments, visa(2000))
	}

	// Invoices call back to the same receiver (their deliveries are signed
	// with the account's secret).
	inv := pb.NewInvoicesServiceClient(srv.conn)
	invoice := func(req *pb.CreateInvoiceRequest) *pb.CreateInvoiceRequest {
		req.CallbackUrl = rcv.URL + "/return"
		return req
	}
	mustCreateInvoice(t, withIdem(ctx, "ms-inv-1"), inv, invoice(cardInvoice("ms-order-1")))
	crypto := mustCreateInvoice(t, ctx, inv, invoice(usdtInvoice("ms-order-2", "cus_9")))
	mustReceipt(t, ctx, inv, crypto.Id, "0xfeed", 10_000_000, 1)
	mustReceipt(t, ctx, inv, crypto.Id, "0xfeed", 10_000_000, 25)
	gone := mustCreateInvoice(t, ctx, inv, invoice(cardInvoice("ms-order-3")))
	if _, err := inv.CancelInvoice(ctx, &pb.CancelInvoiceRequest{Id: gone.Id}); err != nil {
		t.Fatal(err)
	}

	po := pb.NewPayoutsServiceClient(srv.conn)
	if _, err := po.CreatePayout(withIdem(ctx, "ms-po-1"), usBank(5000, "ms-wd-1")); err != nil {
		t.Fatal(err)
	}
	cancelPo, err := po.CreatePayout(ctx, usBank(2000, "ms-wd-2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := po.CancelPayout(ctx, &pb.CancelPayoutRequest{Id: cancelPo.Payout.Id}); err != nil {
		t.Fatal(err)
	}

	// Every delivery is settled before the move, so that the two servers
	// show the same delivery states.
	whWait(t, "every event delivered", func() bool {
		pending, err := whEvents(srv).ListEvents(ctx, &pb.ListEventsRequest{DeliveryStatus: "pending", PageSize: 100})
		return err == nil && len(pending.Events) == 0 && len(rcv.requests()) > 2
	})
	return "ms-create-1", createReq, first.Payment
}

// msSnapshot reads everything the API shows of the account: every list
// (one page of 100 holds it all) and every object by id. Page tokens are
// left out: they are the server's, not the data's.
func msSnapshot(t *testing.T, srv *testServer, key string) map[string]proto.Message {
	t.Helper()
	ctx := withKey(t.Context(), key)
	out := map[string]proto.Message{}
	must := func(what string, m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		out[what] = m
	}
	pays, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{PageSize: 100})
	must("ListPayments", &pb.ListPaymentsResponse{Payments: pays.GetPayments()}, err)
	for _, p := range pays.GetPayments() {
		r, err := srv.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: p.Id})
		must("GetPayment "+p.Id, r, err)
	}
	refunds, err := srv.payments.ListRefunds(ctx, &pb.ListRefundsRequest{PageSize: 100})
	must("ListRefunds", &pb.ListRefundsResponse{Refunds: refunds.GetRefunds()}, err)
	for _, r := range refunds.GetRefunds() {
		got, err := srv.payments.GetRefund(ctx, &pb.GetRefundRequest{Id: r.Id})
		must("GetRefund "+r.Id, got, err)
	}
	inv := pb.NewInvoicesServiceClient(srv.conn)
	invs, err := inv.ListInvoices(ctx, &pb.ListInvoicesRequest{PageSize: 100})
	must("ListInvoices", &pb.ListInvoicesResponse{Invoices: invs.GetInvoices()}, err)
	for _, i := range invs.GetInvoices() {
		for _, k := range []string{i.Id, i.TransactionReference} {
			got, err := inv.GetInvoice(ctx, &pb.GetInvoiceRequest{Id: k})
			must("GetInvoice "+k, got, err)
		}
	}
	po := pb.NewPayoutsServiceClient(srv.conn)
	pos, err := po.ListPayouts(ctx, &pb.ListPayoutsRequest{PageSize: 100})
	must("ListPayouts", &pb.ListPayoutsResponse{Payouts: pos.GetPayouts()}, err)
	for _, p := range pos.GetPayouts() {
		got, err := po.GetPayout(ctx, &pb.GetPayoutRequest{Id: p.Id})
		must("GetPayout "+p.Id, got, err)
	}
	bal, err := po.GetBalance(ctx, &pb.GetBalanceRequest{})
	must("GetBalance", bal, err)
	events, err := whEvents(srv).ListEvents(ctx, &pb.ListEventsRequest{PageSize: 100})
	must("ListEvents", &pb.ListEventsResponse{Events: events.GetEvents()}, err)
	for _, e := range events.GetEvents() {
		got, err := whEvents(srv).GetEvent(ctx, &pb.GetEventRequest{Id: e.Id})
		must("GetEvent "+e.Id, got, err)
	}
	hooks, err := whEvents(srv).ListWebhookEndpoints(ctx, &pb.ListWebhookEndpointsRequest{})
	must("ListWebhookEndpoints", hooks, err)
	secret, err := whEvents(srv).GetAccountWebhookSecret(ctx, &pb.GetAccountWebhookSecretRequest{})
	must("GetAccountWebhookSecret", secret, err)
	if len(pays.GetPayments()) < 6 || len(refunds.GetRefunds()) < 2 || len(invs.GetInvoices()) < 3 || len(pos.GetPayouts()) < 2 || len(events.GetEvents()) < 10 {
		t.Fatalf("the snapshot holds %d payments, %d refunds, %d invoices, %d payouts, %d events; want the flows' objects",
			len(pays.GetPayments()), len(refunds.GetRefunds()), len(invs.GetInvoices()), len(pos.GetPayouts()), len(events.GetEvents()))
	}
	return out
}

// TestMigrateStoreMovesEverything moves a SQLite database filled by real
// flows through a real server into a fresh PostgreSQL database (and, so
// that the move is tested without PostgreSQL too, into a fresh SQLite
// file): migrate-store reports every table's counts and a passing check;
// `paymentd check` passes on the target; a server on the target shows the
// same objects through the API, replays an idempotent create instead of
// creating it again, and takes new payments; a second migrate-store into
// the same target refuses and changes nothing.
func TestMigrateStoreMovesEverything(t *testing.T) {
	src := filepath.Join(t.TempDir(), "paymentd.db")
	srv := startServer(t, src, msFlags...)
	key := srv.key
	idemKey, createReq, created := msPopulate(t, srv)
	want := msSnapshot(t, srv, key)
	created = want["GetPayment "+created.Id].(*pb.GetPaymentResponse).Payment // as it is now, refunded in part
	listed := len(want["ListPayments"].(*pb.ListPaymentsResponse).Payments)
	srv.stop()
	cli(t, "check", "--db", src)

	for _, tc := range []struct {
		name   string
		target func(t *testing.T) string
	}{
		{"postgres", func(t *testing.T) string {
			return storetest.PostgresDSN(t)
		}},
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "moved.db") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target(t)
			out, _ := cli(t, "migrate-store", "--from", src, "--to", target, "--batch", "3")
			t.Logf("migrate-store printed:\n%s", out)
			for _, line := range []string{"every table's count matches", "All ", "checks passed", "payments", "ledger_entries", "webhook_attempts",
				"--secrets-key-file " + src + ".secrets-key"} {
				if !strings.Contains(out, line) {
					t.Errorf("migrate-store printed no %q:\n%s", line, out)
				}
			}
			cli(t, "check", "--db", target)

			// The secrets are sealed with the source's key (migrate-store says so).
			targetFlags := append([]string{"--secrets-key-file", src + ".secrets-key"}, msFlags...)
			moved := startServer(t, target, targetFlags...)
			got := msSnapshot(t, moved, key)
			for what, w := range want {
				if g, ok := got[what]; !ok || !proto.Equal(g, w) {
					t.Errorf("%s after the move:\n%s\nwant (before the move):\n%s", what, prototext.Format(g), prototext.Format(w))
				}
			}
			if len(got) != len(want) {
				t.Errorf("the snapshot after the move has %d reads; want %d", len(got), len(want))
			}

			ctx := withKey(t.Context(), key)
			replay, err := moved.payments.CreatePayment(withIdem(ctx, idemKey), createReq)
			if err != nil || replay.Payment.Id != created.Id || replay.Payment.Amount != created.Amount {
				t.Errorf("idempotent replay after the move = %v, %v; want payment %s, created before the move", replay, err, created.Id)
			}
			fresh := mustCreate(t, withIdem(ctx, "ms-after-move"), moved.payments, visa(4200))
			if _, err := moved.payments.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: fresh.Id, Amount: proto.Int64(200)}); err != nil {
				t.Errorf("a refund after the move: %v", err)
			}
			if n := len(mustList(t, ctx, moved.payments, &pb.ListPaymentsRequest{PageSize: 100}).Payments); n != listed+1 {
				t.Errorf("after the replay and one new payment the target lists %d payments; want %d", n, listed+1)
			}
			moved.stop()
			cli(t, "check", "--db", target)

			var stdout, stderr bytes.Buffer
			err = run(context.Background(), []string{"migrate-store", "--from", src, "--to", target}, noEnv, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "payments") {
				t.Errorf("a second migrate-store into the target = %v; want a refusal naming the tables that hold rows", err)
			}
			again := startServer(t, target, targetFlags...)
			if n := len(mustList(t, ctx, again.payments, &pb.ListPaymentsRequest{PageSize: 100}).Payments); n != listed+1 {
				t.Errorf("after the refused second move the target lists %d payments; want %d", n, listed+1)
			}
		})
	}
}

// TestMigrateStoreRefusals: no --to, a source that does not exist, and a
// password in the target's DSN, which never appears in what migrate-store
// prints.
func TestMigrateStoreRefusals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate-store", "--from", filepath.Join(t.TempDir(), "x.db")}, "--to is required"},
		{[]string{"migrate-store", "--from", filepath.Join(t.TempDir(), "missing.db"), "--to", "postgres://paymentd:s3cr3t-pw@127.0.0.1:1/paymentd?sslmode=disable"}, "no SQLite database"},
		{[]string{"migrate-store", "--from", filepath.Join(t.TempDir(), "x.db"), "--to", "postgres://u@h/db", "--batch", "0"}, "--batch"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(ctx, tc.args, noEnv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v = %v; want an error saying %q", tc.args, err, tc.want)
		}
		if all := stdout.String() + stderr.String() + err.Error(); strings.Contains(all, "s3cr3t-pw") {
			t.Errorf("%v printed the password: %s", tc.args, all)
		}
	}

	// A source that exists, into a PostgreSQL server that does not answer:
	// the failure names the target without its password.
	src := filepath.Join(t.TempDir(), "paymentd.db")
	cli(t, "migrate", "--db", src)
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"migrate-store", "--from", src, "--to", "postgres://paymentd:s3cr3t-pw@127.0.0.1:1/paymentd?sslmode=disable&connect_timeout=2"}, noEnv, &stdout, &stderr)
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("migrate-store into a server that does not answer succeeded")
		}
		if all := stdout.String() + stderr.String() + err.Error(); strings.Contains(all, "s3cr3t-pw") || !strings.Contains(stderr.String(), "paymentd:xxxxx@127.0.0.1:1") {
			t.Errorf("migrate-store printed %q / %q / %v; want the DSN with its password as xxxxx", stdout.String(), stderr.String(), err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("migrate-store into a server that does not answer did not return within 30s")
	}
}
