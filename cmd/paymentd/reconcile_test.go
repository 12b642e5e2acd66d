package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
	"github.com/paymentd/paymentd/providers/aspayds/aspaydsfake"
)

// reconcileRun runs `paymentd reconcile` on the server's database and configuration.
func reconcileRun(t *testing.T, s *pvServer) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"reconcile", "--db", s.db, "--config", s.config},
		func(k string) string { return pvEnv[k] }, &out, &errOut)
	if strings.Contains(out.String()+errOut.String(), pvAikdataToken) {
		t.Errorf("reconcile printed the provider token")
	}
	return out.String(), err
}

// reconcile agrees with a provider that did what paymentd recorded, and
// catches differences planted at the provider: a charge whose state changed
// behind paymentd's back, and a charge paymentd has no record of.
func TestReconcileCatchesPlantedDifference(t *testing.T) {
	fake := aikdatafake.New(pvAikdataToken)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '`+fake.URL()+`', credentials: {token: AIKDATA_TOKEN}}
routes:
  - {operation: payments, mode: live, currency: "*", connections: [aikdata-live]}
`, pvEnv)
	ctx := withKey(context.Background(), s.liveKey)
	var ids []string
	for i, key := range []string{"rc-1", "rc-2"} {
		p, err := s.payments.CreatePayment(withIdem(ctx, key), &pb.CreatePaymentRequest{Amount: int64(1500 + i), Currency: "EUR", PaymentMethod: "pm_x"})
		if err != nil || p.Payment.Status != "succeeded" {
			t.Fatalf("CreatePayment: %v, %v", p, err)
		}
		ids = append(ids, p.Payment.Id)
	}
	amt := int64(500)
	if _, err := s.payments.CreateRefund(withIdem(ctx, "rc-r"), &pb.CreateRefundRequest{PaymentId: ids[0], Amount: &amt}); err != nil {
		t.Fatal(err)
	}
	out, err := reconcileRun(t, s)
	if err != nil || !strings.Contains(out, "2 object(s) compared with their provider: 2 agree, 0 differ") ||
		!strings.Contains(out, "skipped  1 refunds at aikdata-live") {
		t.Fatalf("reconcile of agreeing books: %v\n%s", err, out)
	}

	book, ok := fake.BookFor(ids[1])
	if !ok || book.Captured != 1501 {
		t.Fatalf("the fake's book for %s: %+v, %v; want 1501 captured", ids[1], book, ok)
	}
	fake.Plant(book.ID, "failed", 0, "", "")
	fake.Plant("ch_planted0000000", "succeeded", 777, "EUR", "")
	out, err = reconcileRun(t, s)
	if err == nil {
		t.Errorf("reconcile with planted differences succeeded; want an error\n%s", out)
	}
	for _, want := range []string{
		"DIFF     payment " + ids[1] + " at aikdata-live (" + book.ID + "): paymentd captured 1501 EUR; the provider says failed",
		"DIFF     payment ch_planted0000000 at aikdata-live (captured 777, paymentd id \"\"): paymentd has no record of it",
		"2 object(s) compared with their provider: 1 agree, 2 differ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reconcile output lacks %q:\n%s", want, out)
		}
	}
}

// reconcile reads aspayds' invoices and payouts in batches and reports
// money the provider took or paid out while paymentd was not told.
func TestReconcileAspaydsBatches(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	s := pvStart(t, pwConfig(fake, ""), pvEnv)
	pvSetLiveMethods(t, s.db, `{"payout_methods":[{"id":"1","name":"bKash","type":"mobile_banking","currency":"BDT",
		"min_amount":10000,"max_amount":5000000,"fee":{"fixed_amount":0,"basis_points":0},"account_format":"01XXXXXXXXX"}]}`)
	for _, ref := range []string{"RC-COLLECT", "RC-LATER"} {
		code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, ref, `{"amount":200000,"currency":"BDT","customer":{"name":"A"},"transaction_reference":"`+ref+`","callback_url":"https://shop.example/cb"}`)
		if code != 200 {
			t.Fatalf("invoice %s: %d %v", ref, code, inv)
		}
	}
	_ = fake.PayInvoice("RC-COLLECT", 200000)
	if code, got, _ := s.restDo(t, "GET", "/v1/invoices/RC-COLLECT", s.liveKey, "", ""); code != 200 || got["status"] != "paid" {
		t.Fatalf("invoice after payment: %d %v", code, got)
	}
	code, po, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "rc-po", `{"payout_method_id":"1","amount":50000,"recipient_name":"John Doe","recipient_account":"01712345678","transaction_reference":"RC-WD1"}`)
	if code != 200 || po["status"] != "pending" {
		t.Fatalf("payout: %d %v", code, po)
	}
	s.stop()
	if out, err := reconcileRun(t, s); err != nil || !strings.Contains(out, "3 object(s) compared with their provider: 3 agree, 0 differ") {
		t.Fatalf("reconcile of agreeing books: %v\n%s", err, out)
	}
	// While paymentd is down, a customer pays and aspayds completes the payout.
	_ = fake.PayInvoice("RC-LATER", 150000)
	_ = fake.SettlePayout(po["id"].(string), "completed")
	out, err := reconcileRun(t, s)
	if err == nil {
		t.Errorf("reconcile succeeded; want the differences reported\n%s", out)
	}
	for _, want := range []string{
		"paymentd says open with 0 BDT paid; the provider says partially_paid with 150000 BDT paid (minor units)",
		"DIFF     payout " + po["id"].(string) + " at aspayds-live (",
		"paymentd says pending; the provider completed the payout",
		"3 object(s) compared with their provider: 1 agree, 2 differ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reconcile output lacks %q:\n%s", want, out)
		}
	}
	var batches int
	for _, r := range fake.Requests() {
		if strings.HasSuffix(r.Path, "/batch/status") {
			batches++
		}
	}
	if batches < 4 {
		t.Errorf("%d batch status calls for two reconcile runs; want the invoices and the payouts read in batches", batches)
	}
}
