package alppay_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/alppay"
	"github.com/paymentd/paymentd/providers/alppay/alppayfake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/providers/providertest"
)

const key, secret = "ak_live_1234567890abcdef", "alppay-hmac-secret"

func newClient(t *testing.T, baseURL string, o providers.HTTPOptions) *alppay.Client {
	t.Helper()
	c, err := alppay.New(alppay.Options{BaseURL: baseURL, APIKey: key, Secret: secret, HTTP: o})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		NewFake: func(t *testing.T) providertest.Fake {
			f := alppayfake.New(key, secret)
			t.Cleanup(f.Close)
			return f
		},
		NewAdapter: func(t *testing.T, baseURL string, o providers.HTTPOptions) any { return newClient(t, baseURL, o) },
		// alppay has no idempotency key; "invoice" carries paymentd's id.
		IdempotencyKey: func(r fakekit.Request) string {
			var b struct {
				Invoice string `json:"invoice"`
			}
			_ = json.Unmarshal(r.Body, &b)
			return b.Invoice
		},
		Invoice: providers.InvoiceRequest{Amount: 1000_000000, Currency: "USDT", Network: "tron", CustomerID: "12312312",
			CustomerName: "John", CustomerEmail: "john@example.com", CallbackURL: "https://your-shop.com/orders/40113049"},
	})
}

func TestSignatureAndExactAmounts(t *testing.T) {
	f := alppayfake.New(key, secret)
	defer f.Close()
	c := newClient(t, f.URL(), providers.HTTPOptions{})
	ctx := context.Background()
	st, err := c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_1", Amount: 20_500001, Currency: "USDT",
		Network: "tron", CustomerID: "cus_abc", CallbackURL: "https://shop.example/o/1"})
	if err != nil {
		t.Fatal(err)
	}
	req := f.Requests()[0]
	if got, want := req.Header.Get("X-HMAC"), alppay.Sign([]byte(secret), req.Body); got != want || len(got) != 64 {
		t.Errorf("X-HMAC %q; want the hex HMAC-SHA256 of the raw body %q", got, want)
	}
	var sent struct {
		Amount   string         `json:"amount"`
		ClientID string         `json:"clientId"`
		Invoice  string         `json:"invoice"`
		Customer map[string]any `json:"customer"`
	}
	_ = json.Unmarshal(req.Body, &sent)
	if sent.Amount != "20.500001" || sent.ClientID != "cus_abc" || sent.Invoice != "inv_1" {
		t.Errorf("sent %+v; want amount \"20.500001\", clientId cus_abc, invoice inv_1", sent)
	}
	if _, ok := sent.Customer["id"].(float64); !ok {
		t.Errorf("customer.id %v is not an integer", sent.Customer["id"])
	}
	if st.ConfirmationsRequired != alppayfake.ConfirmsNeeded || st.DepositAddress == "" || st.Currency != "USDT" ||
		st.ExpiresAt.IsZero() || st.Amount != 20_500001 {
		t.Errorf("state %+v", st)
	}
	// The same customer keeps the same deposit address (clientId).
	st2, err := c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_2", Amount: 5_000000, Currency: "USDT",
		Network: "tron", CustomerID: "cus_abc"})
	if err != nil || st2.DepositAddress != st.DepositAddress {
		t.Errorf("second invoice of the customer: %+v, %v; want deposit address %s", st2, err, st.DepositAddress)
	}
	// Receipts convert exactly and the invoice is paid once they cover the amount.
	_ = f.PayInvoice(st.Reference, 10_000000)
	_ = f.PayInvoice(st.Reference, 10_500001)
	got, err := c.GetInvoice(ctx, st.Reference)
	if err != nil || got.Status != "paid" || got.AmountPaid != 20_500001 || len(got.Receipts) != 2 ||
		got.Receipts[1].Amount != 10_500001 || got.Receipts[0].TxnID == "" || got.Receipts[0].Confirmations != alppayfake.ConfirmsNeeded {
		t.Errorf("after two receipts: %+v, %v", got, err)
	}
	f.Expire(st2.Reference)
	if got, _ := c.GetInvoice(ctx, st2.Reference); got.Status != "expired" {
		t.Errorf("expired payment: status %q", got.Status)
	}
	// A wrong secret is refused by alppay.
	bad, _ := alppay.New(alppay.Options{BaseURL: f.URL(), APIKey: key, Secret: "wrong"})
	if _, err := bad.GetInvoice(ctx, st.Reference); providers.KindOf(err) != providers.Unavailable {
		t.Errorf("wrong HMAC secret: %v; want Unavailable (credentials refused)", err)
	}
	if _, err := c.CreateInvoice(ctx, providers.InvoiceRequest{Amount: 100, Currency: "USD"}); providers.KindOf(err) != providers.InvalidRequest {
		t.Errorf("a USD invoice: %v; want InvalidRequest", err)
	}
	if _, err := c.CreateInvoice(ctx, providers.InvoiceRequest{Amount: 1_000000, Currency: "USDT"}); providers.KindOf(err) != providers.InvalidRequest {
		t.Errorf("no network: %v; want InvalidRequest", err)
	}
}

func TestParseDecimalIsExact(t *testing.T) {
	for _, tc := range []struct {
		in   string
		exp  int
		want int64
		ok   bool
	}{
		{"1000.00", 6, 1000_000000, true}, {"20", 2, 2000, true}, {"0.1", 8, 10000000, true},
		{"20.5000010", 6, 20_500001, true}, {"1.0000001", 6, 0, false}, {"1e3", 2, 0, false},
		{"", 2, 0, false}, {"12.3.4", 2, 0, false}, {"99999999999999999999", 2, 0, false}, {"-1.5", 2, -150, true},
	} {
		got, err := providers.ParseDecimal(tc.in, tc.exp)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDecimal(%q, %d) = %d, %v; want %d ok=%v", tc.in, tc.exp, got, err, tc.want, tc.ok)
		}
	}
	if s := providers.FormatDecimalTrim(1000_000000, 6, 2); s != "1000.00" {
		t.Errorf("FormatDecimalTrim = %q", s)
	}
}

// TestPaidOnlyWhenAlppaySaysSo: the document's example answers status OPEN
// beside a received transaction and confirmsNeeded 30. Money alppay lists
// as received but has not confirmed never makes the invoice paid, nor
// counts as confirmed, however much of the amount it covers; once alppay
// confirms it (its status word says so), it does. Throughout, what the
// adapter reports as confirmed equals what alppay's books count as received.
func TestPaidOnlyWhenAlppaySaysSo(t *testing.T) {
	f := alppayfake.New(key, secret)
	defer f.Close()
	c := newClient(t, f.URL(), providers.HTTPOptions{})
	ctx := context.Background()
	st, err := c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_u1", Amount: 100_000000, Currency: "USDT", Network: "tron"})
	if err != nil {
		t.Fatal(err)
	}
	confirmed := func(s providers.InvoiceState) (sum int64) {
		for _, r := range s.Receipts {
			if r.Confirmations >= s.ConfirmationsRequired {
				sum += r.Amount
			}
		}
		return sum
	}
	check := func(what, wantStatus string, wantConfirmed int64) {
		t.Helper()
		got, err := c.GetInvoice(ctx, st.Reference)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		book, _ := f.BookFor(st.Reference)
		if got.Status != wantStatus || confirmed(got) != wantConfirmed || book.Received != wantConfirmed {
			t.Errorf("%s: status %q, %d confirmed (alppay's books: %d received, %s); want %q with %d confirmed",
				what, got.Status, confirmed(got), book.Received, book.Status, wantStatus, wantConfirmed)
		}
	}
	// The whole amount arrives but is not confirmed: not paid.
	if err := f.ReceiveUnconfirmed(st.Reference, 100_000000); err != nil {
		t.Fatal(err)
	}
	check("whole amount seen, unconfirmed (status OPEN)", "partially_paid", 0)
	if got, _ := c.GetInvoice(ctx, st.Reference); got.AmountPaid != 100_000000 || len(got.Receipts) != 1 || got.Receipts[0].Confirmations != 0 {
		t.Errorf("unconfirmed transfer: %+v; want it listed with 0 confirmations and the received total", got)
	}
	if err := f.ConfirmReceived(st.Reference); err != nil {
		t.Fatal(err)
	}
	check("confirmed by alppay (status PAID)", "paid", 100_000000)

	// A partial payment alppay confirmed counts, and stays on the invoice
	// when it expires.
	st, err = c.CreateInvoice(ctx, providers.InvoiceRequest{IdempotencyKey: "inv_u2", Amount: 100_000000, Currency: "USDT", Network: "tron"})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.PayInvoice(st.Reference, 40_000000)
	check("40 confirmed (status PARTIALLY_PAID)", "partially_paid", 40_000000)
	f.Expire(st.Reference)
	if got, _ := c.GetInvoice(ctx, st.Reference); got.Status != "expired" {
		t.Errorf("expired: status %q", got.Status)
	}
}
