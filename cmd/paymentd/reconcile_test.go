package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
)

func reconcileRun(t *testing.T, db string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"reconcile", "--db", db, "--config", filepath.Join(filepath.Dir(db), "paymentd.yaml")},
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
	out, err := reconcileRun(t, s.db)
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
	out, err = reconcileRun(t, s.db)
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
