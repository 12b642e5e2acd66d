package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

func testInvoice(id, account, ref string, expires time.Time) *store.Invoice {
	now := time.UnixMicro(time.Now().UnixMicro()).UTC()
	return &store.Invoice{ID: id, AccountID: account, Status: "open", Amount: 2500, Currency: "USD",
		TransactionReference: ref, CallbackURL: "https://shop.example/cb", PaymentURL: "http://localhost/pay/" + id,
		Provider: "sandbox", Metadata: map[string]string{"k": "v"}, ExpiresAt: expires, Created: now, Updated: now}
}

// testInvoices covers what the service relies on: references unique per
// account and mode, receipts unique per invoice and transfer, lookups by id,
// reference and batch, and the due-invoice query of the expiry sweep.
func testInvoices(t *testing.T, s *store.Store) {
	ctx := context.Background()
	past, future := time.UnixMicro(time.Now().Add(-time.Minute).UnixMicro()).UTC(), time.UnixMicro(time.Now().Add(time.Hour).UnixMicro()).UTC()
	a := testInvoice("inv_a", "acct_1", "ref-1", future)
	b := testInvoice("inv_b", "acct_1", "ref-2", past)
	c := testInvoice("inv_c", "acct_2", "ref-1", past) // the same reference in another account
	d := testInvoice("inv_d", "acct_1", "ref-1", past)
	d.Livemode = true // …and in the other mode
	write := func(fn func(*store.Tx) error) error { return s.Write(ctx, fn) }
	for _, inv := range []*store.Invoice{a, b, c, d} {
		if err := write(func(tx *store.Tx) error { return tx.InsertInvoice(inv) }); err != nil {
			t.Fatalf("insert %s: %v", inv.ID, err)
		}
	}
	dup := testInvoice("inv_e", "acct_1", "ref-1", future)
	if err := write(func(tx *store.Tx) error { return tx.InsertInvoice(dup) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second ref-1 in acct_1 test mode: %v; want ErrConflict", err)
	}

	r := &store.InvoiceReceipt{AccountID: "acct_1", InvoiceID: "inv_a", TxnID: "0x1", Amount: 100, Confirmations: 1, Created: a.Created, Updated: a.Created}
	if err := write(func(tx *store.Tx) error { return tx.InsertInvoiceReceipt(r) }); err != nil {
		t.Fatal(err)
	}
	if err := write(func(tx *store.Tx) error { return tx.InsertInvoiceReceipt(r) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("the same receipt twice: %v; want ErrConflict", err)
	}
	r.Confirmations, r.Counted = 30, true
	a.Status, a.AmountPaid, a.PaidAt = "paid", 100, a.Created
	if err := write(func(tx *store.Tx) error {
		if err := tx.UpdateInvoiceReceipt(r); err != nil {
			return err
		}
		return tx.UpdateInvoice(a)
	}); err != nil {
		t.Fatal(err)
	}

	got, err := s.GetInvoiceByReference(ctx, "acct_1", false, "ref-1")
	if err != nil {
		t.Fatal(err)
	}
	a.Receipts = []*store.InvoiceReceipt{r}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("GetInvoiceByReference:\n got  %+v\n want %+v", got, a)
	}
	if got, err := s.GetInvoiceByID(ctx, "inv_c"); err != nil || got.AccountID != "acct_2" {
		t.Errorf("GetInvoiceByID(inv_c) = %+v, %v; want acct_2's invoice", got, err)
	}
	if _, err := s.GetInvoice(ctx, "acct_2", false, "inv_a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another account's invoice: %v; want ErrNotFound", err)
	}
	found, err := s.FindInvoices(ctx, "acct_1", false, []string{"inv_b", "inv_c", "inv_zz"}, []string{"ref-1", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, inv := range found {
		ids = append(ids, inv.ID)
	}
	if !reflect.DeepEqual(ids, []string{"inv_b", "inv_a"}) || len(found[1].Receipts) != 1 {
		t.Errorf("FindInvoices = %v (receipts of inv_a: %d); want inv_b then inv_a with its receipt", ids, len(found[1].Receipts))
	}

	// Due: past expiry and still payable; paid inv_a never is.
	due, err := s.DueInvoices(ctx, time.Now(), "", false, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 3 {
		t.Errorf("DueInvoices (all accounts) = %v; want inv_b, inv_c, inv_d", due)
	}
	due, err = s.DueInvoices(ctx, time.Now(), "acct_1", false, 10)
	if err != nil || !reflect.DeepEqual(due, []store.InvoiceKey{{AccountID: "acct_1", Livemode: false, ID: "inv_b"}}) {
		t.Errorf("DueInvoices(acct_1, test) = %v, %v; want [inv_b]", due, err)
	}

	list, err := s.ListInvoices(ctx, store.PageFilter{AccountID: "acct_1", Limit: 10})
	if err != nil || len(list) != 2 || list[0].ID != "inv_b" || list[1].ID != "inv_a" {
		t.Errorf("ListInvoices = %v, %v; want inv_b, inv_a", list, err)
	}
}
