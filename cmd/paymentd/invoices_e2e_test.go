package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// invServer starts a paymentd on a fresh database and returns it with an
// invoices client.
func invServer(t *testing.T, extraArgs ...string) (*testServer, pb.InvoicesServiceClient) {
	t.Helper()
	srv := startServer(t, testDB(t), extraArgs...)
	return srv, pb.NewInvoicesServiceClient(srv.conn)
}

// cardInvoice is a valid card invoice request.
func cardInvoice(ref string) *pb.CreateInvoiceRequest {
	return &pb.CreateInvoiceRequest{Amount: 2500, Currency: "USD", TransactionReference: ref,
		CallbackUrl: "https://shop.example/return?cart=9"}
}

// usdtInvoice is a valid crypto invoice request for 25 USDT on tron.
func usdtInvoice(ref, customerID string) *pb.CreateInvoiceRequest {
	return &pb.CreateInvoiceRequest{Amount: 25_000_000, Currency: "USDT", Network: "tron", TransactionReference: ref,
		CallbackUrl: "https://shop.example/return", Customer: &pb.Customer{Id: customerID}}
}

func mustCreateInvoice(t *testing.T, ctx context.Context, c pb.InvoicesServiceClient, req *pb.CreateInvoiceRequest) *pb.Invoice {
	t.Helper()
	resp, err := c.CreateInvoice(ctx, req)
	if err != nil {
		t.Fatalf("CreateInvoice(%v): %v", req, err)
	}
	return resp.Invoice
}

func mustGetInvoice(t *testing.T, ctx context.Context, c pb.InvoicesServiceClient, idOrRef string) *pb.Invoice {
	t.Helper()
	resp, err := c.GetInvoice(ctx, &pb.GetInvoiceRequest{Id: idOrRef})
	if err != nil {
		t.Fatalf("GetInvoice(%s): %v", idOrRef, err)
	}
	return resp.Invoice
}

func mustReceipt(t *testing.T, ctx context.Context, c pb.InvoicesServiceClient, id, txn string, amount int64, confirmations int32) *pb.Invoice {
	t.Helper()
	resp, err := c.RecordTestReceipt(ctx, &pb.RecordTestReceiptRequest{Id: id, TxnId: txn, Amount: amount, Confirmations: confirmations})
	if err != nil {
		t.Fatalf("RecordTestReceipt(%s, %s, %d, %d): %v", id, txn, amount, confirmations, err)
	}
	return resp.Invoice
}

func invoiceIDs(invs []*pb.Invoice) []string {
	ids := make([]string, len(invs))
	for i, inv := range invs {
		ids[i] = inv.Id
	}
	return ids
}

// checkInvoice checks an invoice's status and money.
func checkInvoice(t *testing.T, inv *pb.Invoice, status string, amount, paid int64) {
	t.Helper()
	if !strings.HasPrefix(inv.Id, "inv_") || inv.Status != status || inv.Amount != amount || inv.AmountPaid != paid ||
		inv.AmountDue != max(amount-paid, 0) {
		t.Errorf("invoice %s: status %q amount %d paid %d due %d; want an inv_ id, %q, %d, %d, %d",
			inv.Id, inv.Status, inv.Amount, inv.AmountPaid, inv.AmountDue, status, amount, paid, max(amount-paid, 0))
	}
	if (status == "paid") != (inv.PaidAt != nil) {
		t.Errorf("invoice %s (%s): paid_at %v; want it set exactly when paid", inv.Id, inv.Status, inv.PaidAt)
	}
}

// sameInvoice compares invoices in full, timestamps included: what a call
// returns must be what a later read returns.
func sameInvoice(t *testing.T, what string, got, want *pb.Invoice) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// invStore opens the server's database beside it, for what the API does not
// show: ledger entries, events, and rows as stored (before lazy expiry).
func invStore(t *testing.T, srv *testServer) (*store.Store, string) {
	t.Helper()
	st, err := store.Open(t.Context(), srv.db, store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", srv.db, err)
	}
	t.Cleanup(func() { st.Close() })
	accts, err := st.Accounts(t.Context())
	if err != nil || len(accts) == 0 {
		t.Fatalf("accounts: %v %v", accts, err)
	}
	return st, accts[0].ID
}

// invEventTypes lists the types of an object's events, oldest first.
func invEventTypes(t *testing.T, st *store.Store, account, objectID string) []string {
	t.Helper()
	evs, err := st.EventsFor(context.Background(), account, false, objectID)
	if err != nil {
		t.Fatalf("events of %s: %v", objectID, err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return types
}

// invBookSums adds up an object's ledger entries per book, checking that they
// balance.
func invBookSums(t *testing.T, st *store.Store, sourceID string) (map[string]int64, int) {
	t.Helper()
	entries, err := st.LedgerEntriesFor(context.Background(), sourceID)
	if err != nil {
		t.Fatalf("ledger of %s: %v", sourceID, err)
	}
	sums, total := map[string]int64{}, int64(0)
	for _, e := range entries {
		sums[e.Book] += e.Amount
		total += e.Amount
	}
	if total != 0 {
		t.Errorf("ledger entries of %s sum to %d; want 0: %v", sourceID, total, entries)
	}
	return sums, len(entries)
}

// invNoRedirects is an HTTP client that reports redirects instead of following them.
var invNoRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// postPayPage submits the payment page's form and returns the status, the
// Location header and the body.
func postPayPage(t *testing.T, srv *testServer, id string, form url.Values, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.baseURL+"/pay/"+id, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := invNoRedirects.Do(req)
	if err != nil {
		t.Fatalf("POST /pay/%s: %v", id, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func getPayPage(t *testing.T, srv *testServer, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(srv.baseURL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func TestInvoicesOverGRPC(t *testing.T) {
	t.Parallel()
	srv, c := invServer(t)
	ctx := withKey(t.Context(), srv.key)
	st, account := invStore(t, srv)

	req := cardInvoice("order-1001")
	req.Description = "2 × coffee beans"
	req.Customer = &pb.Customer{Name: "Jane Doe", Email: "jane@example.com", Id: "cus_1"}
	req.Metadata = map[string]string{"order_id": "1001"}
	before := time.Now()
	inv1 := mustCreateInvoice(t, ctx, c, req)
	checkInvoice(t, inv1, "open", 2500, 0)
	want := &pb.Invoice{Id: inv1.Id, TransactionReference: "order-1001", Status: "open", Amount: 2500, Currency: "USD",
		AmountDue: 2500, Customer: req.Customer, Description: req.Description, Metadata: req.Metadata,
		CallbackUrl: "https://shop.example/return?cart=9", PaymentUrl: srv.baseURL + "/pay/" + inv1.Id, Provider: "sandbox",
		ExpiresAt: inv1.ExpiresAt, CreatedAt: inv1.CreatedAt, UpdatedAt: inv1.UpdatedAt}
	sameInvoice(t, "created invoice", inv1, want)
	created := inv1.CreatedAt.AsTime()
	if created.Before(before.Add(-time.Second)) || created.After(time.Now().Add(time.Second)) {
		t.Errorf("created_at %v; want about now", created)
	}
	if got := inv1.ExpiresAt.AsTime().Sub(created); got != 24*time.Hour {
		t.Errorf("expires_at is %v after created_at; want the default 24h", got)
	}

	// Reads by id and by reference give the same invoice.
	sameInvoice(t, "GetInvoice by id", mustGetInvoice(t, ctx, c, inv1.Id), inv1)
	sameInvoice(t, "GetInvoice by reference", mustGetInvoice(t, ctx, c, "order-1001"), inv1)

	// The same idempotency key replays the invoice; without it the
	// reference is a duplicate.
	ictx := withIdem(ctx, "create-order-1002")
	req2 := cardInvoice("order-1002")
	req2.Expiry = durationpb.New(30 * time.Minute)
	inv2 := mustCreateInvoice(t, ictx, c, req2)
	sameInvoice(t, "replayed CreateInvoice", mustCreateInvoice(t, ictx, c, req2), inv2)
	if got := inv2.ExpiresAt.AsTime().Sub(inv2.CreatedAt.AsTime()); got != 30*time.Minute {
		t.Errorf("expiry 30m: expires_at is %v after created_at", got)
	}
	_, err := c.CreateInvoice(ctx, req2)
	if e := grpcError(t, err); e.grpcCode != codes.AlreadyExists || e.code != "duplicate_transaction_reference" || e.param != "transaction_reference" {
		t.Errorf("duplicate reference: %+v; want AlreadyExists duplicate_transaction_reference on transaction_reference", e)
	}

	inv3 := mustCreateInvoice(t, ctx, c, usdtInvoice("order-1003", "cus_1"))
	inv4 := mustCreateInvoice(t, ctx, c, cardInvoice("order-1004"))

	// Cancel: only while open.
	cresp, err := c.CancelInvoice(ctx, &pb.CancelInvoiceRequest{Id: "order-1004"})
	if err != nil {
		t.Fatalf("CancelInvoice: %v", err)
	}
	inv4 = cresp.Invoice
	checkInvoice(t, inv4, "canceled", 2500, 0)
	sameInvoice(t, "GetInvoice after cancel", mustGetInvoice(t, ctx, c, inv4.Id), inv4)
	_, err = c.CancelInvoice(ctx, &pb.CancelInvoiceRequest{Id: inv4.Id})
	if e := grpcError(t, err); e.grpcCode != codes.FailedPrecondition || e.code != "invoice_unexpected_state" {
		t.Errorf("second cancel: %+v; want FailedPrecondition invoice_unexpected_state", e)
	}
	if got := invEventTypes(t, st, account, inv4.Id); !reflect.DeepEqual(got, []string{"invoice.created", "invoice.canceled"}) {
		t.Errorf("events of the canceled invoice: %v; want invoice.created, invoice.canceled", got)
	}

	// Batch: ids and references mixed, found and missing, in request order.
	unknownID := "inv_" + strings.Repeat("0", 26)
	bresp, err := c.BatchGetInvoices(ctx, &pb.BatchGetInvoicesRequest{
		Ids: []string{"order-1003", "no-such-order", inv1.Id, unknownID, "order-1002", "inv_bogus"}})
	if err != nil {
		t.Fatalf("BatchGetInvoices: %v", err)
	}
	equalIDs(t, "BatchGetInvoices invoices", invoiceIDs(bresp.Invoices), inv3.Id, inv1.Id, inv2.Id)
	if !reflect.DeepEqual(bresp.NotFoundIds, []string{"no-such-order", unknownID, "inv_bogus"}) ||
		bresp.TotalRequested != 6 || bresp.TotalFound != 3 {
		t.Errorf("BatchGetInvoices: not_found_ids %v, total_requested %d, total_found %d; want [no-such-order %s inv_bogus], 6, 3",
			bresp.NotFoundIds, bresp.TotalRequested, bresp.TotalFound, unknownID)
	}
	sameInvoice(t, "batch invoice", bresp.Invoices[1], inv1)
	tooMany := make([]string, 101)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("ref-%d", i)
	}
	_, err = c.BatchGetInvoices(ctx, &pb.BatchGetInvoicesRequest{Ids: tooMany})
	if e := grpcError(t, err); e.grpcCode != codes.InvalidArgument || e.code != "too_many_ids" || e.param != "ids" {
		t.Errorf("101 ids: %+v; want InvalidArgument too_many_ids on ids", e)
	}
	if _, err := c.BatchGetInvoices(ctx, &pb.BatchGetInvoicesRequest{Ids: tooMany[:100]}); err != nil {
		t.Errorf("100 ids: %v; want them accepted (all not found)", err)
	}

	// List: newest first, pages, status filter.
	list := func(req *pb.ListInvoicesRequest) *pb.ListInvoicesResponse {
		t.Helper()
		resp, err := c.ListInvoices(ctx, req)
		if err != nil {
			t.Fatalf("ListInvoices(%v): %v", req, err)
		}
		return resp
	}
	page := list(&pb.ListInvoicesRequest{PageSize: 3})
	equalIDs(t, "ListInvoices page 1", invoiceIDs(page.Invoices), inv4.Id, inv3.Id, inv2.Id)
	sameInvoice(t, "listed invoice", page.Invoices[0], inv4)
	page = list(&pb.ListInvoicesRequest{PageSize: 3, PageToken: page.NextPageToken})
	equalIDs(t, "ListInvoices page 2", invoiceIDs(page.Invoices), inv1.Id)
	if page.NextPageToken != "" {
		t.Errorf("ListInvoices page 2: next_page_token %q on the last page", page.NextPageToken)
	}
	equalIDs(t, "status=open", invoiceIDs(list(&pb.ListInvoicesRequest{Status: "open"}).Invoices), inv3.Id, inv2.Id, inv1.Id)
	equalIDs(t, "status=canceled", invoiceIDs(list(&pb.ListInvoicesRequest{Status: "canceled"}).Invoices), inv4.Id)
	equalIDs(t, "status=paid", invoiceIDs(list(&pb.ListInvoicesRequest{Status: "paid"}).Invoices))
	page = list(&pb.ListInvoicesRequest{Status: "open", PageSize: 2})
	page = list(&pb.ListInvoicesRequest{Status: "open", PageSize: 2, PageToken: page.NextPageToken})
	equalIDs(t, "status=open page 2", invoiceIDs(page.Invoices), inv1.Id)
	_, err = c.ListInvoices(ctx, &pb.ListInvoicesRequest{Status: "pending"})
	if e := grpcError(t, err); e.grpcCode != codes.InvalidArgument || e.param != "status" {
		t.Errorf("status=pending: %+v; want InvalidArgument on status", e)
	}

	// Another account's invoices are not found.
	other := createAccount(t, srv.db, "Other shop")
	otherKey, _ := createKey(t, srv.db, "test", "read,write", other)
	_, err = c.GetInvoice(withKey(t.Context(), otherKey), &pb.GetInvoiceRequest{Id: inv1.Id})
	if e := grpcError(t, err); e.grpcCode != codes.NotFound || e.code != "resource_missing" {
		t.Errorf("another account's invoice: %+v; want NotFound resource_missing", e)
	}
	// …and its references are its own.
	if got := mustCreateInvoice(t, withKey(t.Context(), otherKey), c, cardInvoice("order-1001")); got.Id == inv1.Id {
		t.Errorf("another account's order-1001 is %s, the first account's invoice", got.Id)
	}
	// A read-only key cannot create invoices.
	readKey, _ := createKey(t, srv.db, "test", "read", "")
	_, err = c.CreateInvoice(withKey(t.Context(), readKey), cardInvoice("order-ro"))
	if e := grpcError(t, err); e.grpcCode != codes.PermissionDenied {
		t.Errorf("CreateInvoice with a read-only key: %+v; want PermissionDenied", e)
	}
	if _, err := c.GetInvoice(withKey(t.Context(), readKey), &pb.GetInvoiceRequest{Id: "order-1001"}); err != nil {
		t.Errorf("GetInvoice with a read-only key: %v", err)
	}
}

func TestInvoicesOverREST(t *testing.T) {
	t.Parallel()
	srv, _ := invServer(t)
	key := srv.key
	do := func(method, path, body string, wantStatus int) map[string]any {
		t.Helper()
		code, m, _ := srv.restDo(t, method, path, key, "", body)
		if code != wantStatus {
			t.Fatalf("%s %s %s: status %d %v; want %d", method, path, body, code, m, wantStatus)
		}
		return m
	}
	s := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }

	inv := do("POST", "/v1/invoices", `{"amount": 1999, "currency": "usd", "transaction_reference": "web-1",
		"callback_url": "https://shop.example/cb", "description": "T-shirt", "expiry": "3600s",
		"customer": {"name": "Jane Doe", "email": "jane@example.com"}, "metadata": {"cart": "7"}}`, http.StatusOK)
	id := s(inv, "id")
	if !strings.HasPrefix(id, "inv_") || s(inv, "status") != "open" || s(inv, "amount") != "1999" || s(inv, "currency") != "USD" ||
		s(inv, "amount_paid") != "0" || s(inv, "amount_due") != "1999" || s(inv, "transaction_reference") != "web-1" ||
		s(inv, "payment_url") != srv.baseURL+"/pay/"+id || s(inv, "callback_url") != "https://shop.example/cb" ||
		inv["livemode"] != false || s(inv, "provider") != "sandbox" || inv["paid_at"] != nil {
		t.Errorf("created invoice %v; want inv_…, open, \"1999\" USD, paid 0, due 1999, web-1, payment_url %s/pay/…", inv, srv.baseURL)
	}
	created, err1 := time.Parse(time.RFC3339Nano, s(inv, "created_at"))
	expires, err2 := time.Parse(time.RFC3339Nano, s(inv, "expires_at"))
	if err1 != nil || err2 != nil || expires.Sub(created) != time.Hour {
		t.Errorf("created_at %q, expires_at %q; want RFC 3339 times one hour apart", s(inv, "created_at"), s(inv, "expires_at"))
	}
	for _, camel := range []string{"transactionReference", "paymentUrl", "amountPaid"} {
		if _, ok := inv[camel]; ok {
			t.Errorf("REST invoice has camelCase field %s; want snake_case", camel)
		}
	}
	for _, path := range []string{"/v1/invoices/" + id, "/v1/invoices/web-1"} {
		if got := do("GET", path, "", http.StatusOK); !reflect.DeepEqual(got, inv) {
			t.Errorf("GET %s:\n got  %v\n want %v", path, got, inv)
		}
	}

	do("POST", "/v1/invoices", `{"amount": 5000, "currency": "EUR", "transaction_reference": "web-2", "callback_url": "https://shop.example/cb"}`, http.StatusOK)
	inv3 := do("POST", "/v1/invoices", `{"amount": 5000000, "currency": "USDT", "network": "TRON", "transaction_reference": "web-3",
		"callback_url": "https://shop.example/cb", "customer": {"id": "cus_42"}}`, http.StatusOK)
	if s(inv3, "network") != "tron" || !strings.HasPrefix(s(inv3, "deposit_address"), "T") || inv3["confirmations_required"] != float64(30) {
		t.Errorf("crypto invoice %v; want network tron, a T… deposit address, confirmations_required 30", inv3)
	}

	// Duplicate reference: 409.
	code, body, _ := srv.restDo(t, "POST", "/v1/invoices", key, "", `{"amount": 1999, "currency": "USD", "transaction_reference": "web-1", "callback_url": "https://shop.example/cb"}`)
	if e := restError(t, code, body); e.httpStatus != http.StatusConflict || e.code != "duplicate_transaction_reference" || e.param != "transaction_reference" {
		t.Errorf("duplicate reference: %+v; want 409 duplicate_transaction_reference", e)
	}

	// Batch, in request order.
	b := do("POST", "/v1/invoices/batch", `{"ids": ["web-3", "missing-1", "`+id+`"]}`, http.StatusOK)
	if got := jsonIDs(items(t, b, "invoices")); !reflect.DeepEqual(got, []string{s(inv3, "id"), id}) {
		t.Errorf("batch invoices %v; want [%s %s]", got, s(inv3, "id"), id)
	}
	if !reflect.DeepEqual(b["not_found_ids"], []any{"missing-1"}) || b["total_requested"] != float64(3) || b["total_found"] != float64(2) {
		t.Errorf("batch %v; want not_found_ids [missing-1], total_requested 3, total_found 2", b)
	}
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprintf("r%d", i))
	}
	code, body, _ = srv.restDo(t, "POST", "/v1/invoices/batch", key, "", `{"ids": [`+strings.Join(ids, ",")+`]}`)
	if e := restError(t, code, body); e.httpStatus != http.StatusBadRequest || e.code != "too_many_ids" {
		t.Errorf("101 ids: %+v; want 400 too_many_ids", e)
	}

	// Cancel by reference, then list with a status filter and pages.
	canceled := do("POST", "/v1/invoices/web-2/cancel", `{}`, http.StatusOK)
	if s(canceled, "status") != "canceled" || s(canceled, "transaction_reference") != "web-2" {
		t.Errorf("canceled invoice %v; want web-2 canceled", canceled)
	}
	code, body, _ = srv.restDo(t, "POST", "/v1/invoices/web-2/cancel", key, "", `{}`)
	if e := restError(t, code, body); e.httpStatus != http.StatusConflict || e.code != "invoice_unexpected_state" {
		t.Errorf("second cancel: %+v; want 409 invoice_unexpected_state", e)
	}
	open := do("GET", "/v1/invoices?status=open&page_size=1", "", http.StatusOK)
	if got := jsonIDs(items(t, open, "invoices")); !reflect.DeepEqual(got, []string{s(inv3, "id")}) || s(open, "next_page_token") == "" {
		t.Fatalf("status=open page 1: %v (token %q); want [%s] and a next page", got, s(open, "next_page_token"), s(inv3, "id"))
	}
	open = do("GET", "/v1/invoices?status=open&page_size=1&page_token="+url.QueryEscape(s(open, "next_page_token")), "", http.StatusOK)
	if got := jsonIDs(items(t, open, "invoices")); !reflect.DeepEqual(got, []string{id}) || s(open, "next_page_token") != "" {
		t.Errorf("status=open page 2: %v (token %q); want [%s] and no next page", got, s(open, "next_page_token"), id)
	}
	if got := jsonIDs(items(t, do("GET", "/v1/invoices?status=canceled", "", http.StatusOK), "invoices")); !reflect.DeepEqual(got, []string{s(canceled, "id")}) {
		t.Errorf("status=canceled: %v; want [%s]", got, s(canceled, "id"))
	}

	// Test-helper receipts over REST.
	r := do("POST", "/v1/test-helpers/invoices/web-3/receipts", `{"amount": 5000000, "txn_id": "0xfeed01", "confirmations": 30}`, http.StatusOK)
	if s(r, "status") != "paid" || s(r, "amount_paid") != "5000000" || len(items(t, r, "receipts")) != 1 {
		t.Errorf("after a full receipt: %v; want paid, amount_paid 5000000, one receipt", r)
	}

	code, body, _ = srv.restDo(t, "GET", "/v1/invoices/no-such-ref", key, "", "")
	if e := restError(t, code, body); e.httpStatus != http.StatusNotFound || e.code != "resource_missing" {
		t.Errorf("unknown reference: %+v; want 404 resource_missing", e)
	}
	_, doc, _ := srv.restDo(t, "GET", "/openapi.json", "", "", "")
	paths, _ := doc["paths"].(map[string]any)
	for _, p := range []string{"/v1/invoices", "/v1/invoices/{id}", "/v1/invoices/batch", "/v1/invoices/{id}/cancel",
		"/v1/test-helpers/invoices/{id}/receipts"} {
		if paths[p] == nil {
			t.Errorf("/openapi.json has no path %s", p)
		}
	}
}

func TestInvoiceBadInputs(t *testing.T) {
	t.Parallel()
	srv, c := invServer(t)
	liveKey, _ := createKey(t, srv.db, "live", "read,write", "")
	ctx := withKey(t.Context(), srv.key)
	mustCreateInvoice(t, ctx, c, cardInvoice("card-1"))

	type tc struct {
		name     string
		live     bool
		mutate   func(*pb.CreateInvoiceRequest)
		param    string
		code     string
		grpcCode codes.Code
		status   int
	}
	invalid := func(name, param, code string, mutate func(*pb.CreateInvoiceRequest)) tc {
		return tc{name: name, mutate: mutate, param: param, code: code, grpcCode: codes.InvalidArgument, status: http.StatusBadRequest}
	}
	cases := []tc{
		invalid("missing reference", "transaction_reference", "parameter_missing", func(r *pb.CreateInvoiceRequest) { r.TransactionReference = "" }),
		invalid("reference too long", "transaction_reference", "parameter_too_long", func(r *pb.CreateInvoiceRequest) { r.TransactionReference = strings.Repeat("r", 65) }),
		invalid("reference with a slash", "transaction_reference", "transaction_reference_invalid", func(r *pb.CreateInvoiceRequest) { r.TransactionReference = "a/b" }),
		invalid("reference like an id", "transaction_reference", "transaction_reference_invalid", func(r *pb.CreateInvoiceRequest) { r.TransactionReference = "inv_123" }),
		invalid("reference of one dot", "transaction_reference", "transaction_reference_invalid", func(r *pb.CreateInvoiceRequest) { r.TransactionReference = "." }),
		invalid("reference of two dots", "transaction_reference", "transaction_reference_invalid", func(r *pb.CreateInvoiceRequest) { r.TransactionReference = ".." }),
		invalid("missing callback", "callback_url", "parameter_missing", func(r *pb.CreateInvoiceRequest) { r.CallbackUrl = "" }),
		invalid("relative callback", "callback_url", "url_invalid", func(r *pb.CreateInvoiceRequest) { r.CallbackUrl = "/return" }),
		invalid("ftp callback", "callback_url", "url_invalid", func(r *pb.CreateInvoiceRequest) { r.CallbackUrl = "ftp://shop.example/x" }),
		invalid("not a URL", "callback_url", "url_invalid", func(r *pb.CreateInvoiceRequest) { r.CallbackUrl = "shop dot example" }),
		invalid("callback with credentials", "callback_url", "url_invalid", func(r *pb.CreateInvoiceRequest) { r.CallbackUrl = "https://u:p@shop.example/" }),
		{name: "http callback with a live key", live: true, mutate: func(r *pb.CreateInvoiceRequest) { r.CallbackUrl = "http://shop.example/cb" },
			param: "callback_url", code: "url_insecure", grpcCode: codes.InvalidArgument, status: http.StatusBadRequest},
		{name: "live key", live: true, mutate: func(*pb.CreateInvoiceRequest) {},
			code: "live_mode_not_configured", grpcCode: codes.InvalidArgument, status: http.StatusBadRequest},
		invalid("unknown currency", "currency", "currency_invalid", func(r *pb.CreateInvoiceRequest) { r.Currency = "XYZ" }),
		invalid("missing currency", "currency", "parameter_missing", func(r *pb.CreateInvoiceRequest) { r.Currency = "" }),
		invalid("crypto without network", "network", "parameter_missing", func(r *pb.CreateInvoiceRequest) { r.Currency, r.Amount = "USDT", 5_000_000 }),
		invalid("crypto on an unknown network", "network", "network_invalid", func(r *pb.CreateInvoiceRequest) { r.Currency, r.Amount, r.Network = "USDT", 5_000_000, "dogechain" }),
		invalid("network on a card invoice", "network", "network_invalid", func(r *pb.CreateInvoiceRequest) { r.Network = "tron" }),
		invalid("amount below minimum", "amount", "amount_too_small", func(r *pb.CreateInvoiceRequest) { r.Amount = 10 }),
		invalid("crypto amount below minimum", "amount", "amount_too_small", func(r *pb.CreateInvoiceRequest) { r.Currency, r.Amount, r.Network = "USDT", 999_999, "tron" }),
		invalid("zero amount", "amount", "amount_invalid", func(r *pb.CreateInvoiceRequest) { r.Amount = 0 }),
		invalid("expiry too long", "expiry", "expiry_invalid", func(r *pb.CreateInvoiceRequest) { r.Expiry = durationpb.New(31 * 24 * time.Hour) }),
		invalid("negative expiry", "expiry", "expiry_invalid", func(r *pb.CreateInvoiceRequest) { r.Expiry = durationpb.New(-time.Minute) }),
		invalid("customer name too long", "customer.name", "parameter_too_long", func(r *pb.CreateInvoiceRequest) { r.Customer = &pb.Customer{Name: strings.Repeat("n", 256)} }),
		invalid("bad customer email", "customer.email", "email_invalid", func(r *pb.CreateInvoiceRequest) { r.Customer = &pb.Customer{Email: "jane"} }),
		invalid("description too long", "description", "parameter_too_long", func(r *pb.CreateInvoiceRequest) { r.Description = strings.Repeat("d", 1001) }),
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := srv.key
			if tc.live {
				key = liveKey
			}
			req := cardInvoice(fmt.Sprintf("bad-%d", i))
			tc.mutate(req)
			_, err := c.CreateInvoice(withKey(t.Context(), key), req)
			if e := grpcError(t, err); e.grpcCode != tc.grpcCode || e.code != tc.code || e.param != tc.param {
				t.Errorf("gRPC: %+v; want %v %s on %q", e, tc.grpcCode, tc.code, tc.param)
			}
			body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			code, m, _ := srv.restDo(t, "POST", "/v1/invoices", key, "", string(body))
			if e := restError(t, code, m); e.httpStatus != tc.status || e.code != tc.code || e.param != tc.param {
				t.Errorf("REST: %+v; want %d %s on %q", e, tc.status, tc.code, tc.param)
			}
		})
	}

	// Reads and the test helper.
	for _, tc := range []struct {
		name     string
		call     func() error
		grpcCode codes.Code
		code     string
	}{
		{"get unknown", func() error { _, err := c.GetInvoice(ctx, &pb.GetInvoiceRequest{Id: "nope"}); return err }, codes.NotFound, "resource_missing"},
		{"get empty", func() error { _, err := c.GetInvoice(ctx, &pb.GetInvoiceRequest{}); return err }, codes.InvalidArgument, "parameter_missing"},
		{"batch empty", func() error { _, err := c.BatchGetInvoices(ctx, &pb.BatchGetInvoicesRequest{}); return err }, codes.InvalidArgument, "parameter_missing"},
		{"batch with an empty id", func() error {
			_, err := c.BatchGetInvoices(ctx, &pb.BatchGetInvoicesRequest{Ids: []string{"card-1", ""}})
			return err
		}, codes.InvalidArgument, "parameter_invalid"},
		{"receipt on a card invoice", func() error {
			_, err := c.RecordTestReceipt(ctx, &pb.RecordTestReceiptRequest{Id: "card-1", TxnId: "0xaa", Amount: 100, Confirmations: 1})
			return err
		}, codes.InvalidArgument, "invoice_not_crypto"},
		{"receipt without txn_id", func() error {
			_, err := c.RecordTestReceipt(ctx, &pb.RecordTestReceiptRequest{Id: "card-1", Amount: 100})
			return err
		}, codes.InvalidArgument, "parameter_missing"},
		{"receipt with a live key", func() error {
			_, err := c.RecordTestReceipt(withKey(t.Context(), liveKey), &pb.RecordTestReceiptRequest{Id: "card-1", TxnId: "0xaa", Amount: 100})
			return err
		}, codes.NotFound, "route_not_found"},
	} {
		if e := grpcError(t, tc.call()); e.grpcCode != tc.grpcCode || e.code != tc.code {
			t.Errorf("%s: %+v; want %v %s", tc.name, e, tc.grpcCode, tc.code)
		}
	}
	code, m, _ := srv.restDo(t, "POST", "/v1/test-helpers/invoices/card-1/receipts", liveKey, "", `{"amount": 100, "txn_id": "0xaa"}`)
	if e := restError(t, code, m); e.httpStatus != http.StatusNotFound {
		t.Errorf("receipt with a live key over REST: %+v; want 404", e)
	}
	// An expiry too long for a Go duration is quoted as sent, not as the
	// saturated 2562047h47m16.854775807s.
	code, m, _ = srv.restDo(t, "POST", "/v1/invoices", srv.key, "",
		`{"amount":1000,"currency":"USD","transaction_reference":"bad-huge-expiry","callback_url":"https://shop.example/cb","expiry":"315576000000s"}`)
	msg, _ := m["error"].(map[string]any)["message"].(string)
	if e := restError(t, code, m); e.httpStatus != http.StatusBadRequest || e.code != "expiry_invalid" || !strings.Contains(msg, "got 315576000000s.") {
		t.Errorf("expiry of 10 000 years: %+v %q; want 400 expiry_invalid quoting 315576000000s", e, msg)
	}
}

func TestCryptoInvoiceReceipts(t *testing.T) {
	t.Parallel()
	srv, c := invServer(t)
	ctx := withKey(t.Context(), srv.key)
	st, account := invStore(t, srv)

	inv := mustCreateInvoice(t, ctx, c, usdtInvoice("crypto-1", "cus_9"))
	checkInvoice(t, inv, "open", 25_000_000, 0)
	if inv.Network != "tron" || inv.ConfirmationsRequired != 30 || len(inv.DepositAddress) != 34 || inv.DepositAddress[0] != 'T' {
		t.Errorf("USDT on tron: network %q confirmations_required %d deposit_address %q; want tron, 30, a 34-character T… address",
			inv.Network, inv.ConfirmationsRequired, inv.DepositAddress)
	}
	// The deposit address is stable per customer id (like alppay's clientId),
	// differs between customers, and is per invoice without a customer id.
	same := mustCreateInvoice(t, ctx, c, usdtInvoice("crypto-2", "cus_9"))
	other := mustCreateInvoice(t, ctx, c, usdtInvoice("crypto-3", "cus_10"))
	anon1 := mustCreateInvoice(t, ctx, c, usdtInvoice("crypto-4", ""))
	anon2 := mustCreateInvoice(t, ctx, c, usdtInvoice("crypto-5", ""))
	if same.DepositAddress != inv.DepositAddress || other.DepositAddress == inv.DepositAddress || anon1.DepositAddress == anon2.DepositAddress {
		t.Errorf("deposit addresses: cus_9 %s and %s (want equal), cus_10 %s (want different), no customer %s and %s (want different)",
			inv.DepositAddress, same.DepositAddress, other.DepositAddress, anon1.DepositAddress, anon2.DepositAddress)
	}
	btc := mustCreateInvoice(t, ctx, c, &pb.CreateInvoiceRequest{Amount: 100_000, Currency: "BTC", Network: "bitcoin",
		TransactionReference: "btc-1", CallbackUrl: "https://shop.example/cb"})
	if !strings.HasPrefix(btc.DepositAddress, "tb1q") || len(btc.DepositAddress) != 42 || btc.ConfirmationsRequired != 3 {
		t.Errorf("BTC invoice: deposit_address %q confirmations_required %d; want a 42-character tb1q… test address, 3", btc.DepositAddress, btc.ConfirmationsRequired)
	}

	// A confirmed partial receipt: partially paid.
	got := mustReceipt(t, ctx, c, inv.Id, "0xa1", 10_000_000, 30)
	checkInvoice(t, got, "partially_paid", 25_000_000, 10_000_000)
	if len(got.Receipts) != 1 || got.Receipts[0].TxnId != "0xa1" || got.Receipts[0].Amount != 10_000_000 ||
		got.Receipts[0].Confirmations != 30 || !got.Receipts[0].Confirmed || got.Receipts[0].ReceivedAt == nil {
		t.Errorf("receipts %v; want 0xa1 10000000 with 30 confirmations, confirmed", got.Receipts)
	}
	sameInvoice(t, "GetInvoice after a receipt", mustGetInvoice(t, ctx, c, "crypto-1"), got)

	// The same transfer reported again counts once, even with more confirmations.
	checkInvoice(t, mustReceipt(t, ctx, c, inv.Id, "0xa1", 10_000_000, 30), "partially_paid", 25_000_000, 10_000_000)
	checkInvoice(t, mustReceipt(t, ctx, c, "crypto-1", "0xa1", 10_000_000, 45), "partially_paid", 25_000_000, 10_000_000)
	_, err := c.RecordTestReceipt(ctx, &pb.RecordTestReceiptRequest{Id: inv.Id, TxnId: "0xa1", Amount: 9_000_000, Confirmations: 50})
	if e := grpcError(t, err); e.grpcCode != codes.FailedPrecondition || e.code != "receipt_mismatch" {
		t.Errorf("same txn_id, other amount: %+v; want FailedPrecondition receipt_mismatch", e)
	}

	// An unconfirmed transfer does not count until its confirmations reach 30.
	got = mustReceipt(t, ctx, c, inv.Id, "0xb2", 15_000_000, 3)
	checkInvoice(t, got, "partially_paid", 25_000_000, 10_000_000)
	if len(got.Receipts) != 2 || got.Receipts[1].TxnId != "0xb2" || got.Receipts[1].Confirmed {
		t.Errorf("receipts %v; want 0xb2 second and not confirmed", got.Receipts)
	}
	checkInvoice(t, mustReceipt(t, ctx, c, inv.Id, "0xb2", 15_000_000, 29), "partially_paid", 25_000_000, 10_000_000)
	got = mustReceipt(t, ctx, c, inv.Id, "0xb2", 15_000_000, 30)
	checkInvoice(t, got, "paid", 25_000_000, 25_000_000)
	if !got.Receipts[1].Confirmed || got.Receipts[1].Confirmations != 30 {
		t.Errorf("receipt 0xb2 %v; want confirmed with 30 confirmations", got.Receipts[1])
	}
	// Reported again after it counted: still counted once.
	checkInvoice(t, mustReceipt(t, ctx, c, inv.Id, "0xb2", 15_000_000, 60), "paid", 25_000_000, 25_000_000)

	// The ledger holds exactly the two confirmed transfers.
	sums, n := invBookSums(t, st, inv.Id)
	if n != 4 || sums["available"] != 25_000_000 || sums["provider:sandbox"] != -25_000_000 {
		t.Errorf("ledger of %s: %d entries, sums %v; want 4 entries, available +25000000, provider:sandbox -25000000", inv.Id, n, sums)
	}
	// 0xa1 reported again unchanged writes nothing; each new confirmation
	// count is an update.
	wantEvents := []string{"invoice.created", "invoice.partially_paid", "invoice.updated" /* 0xa1: 45 */, "invoice.updated", /* 0xb2: 3 */
		"invoice.updated" /* 0xb2: 29 */, "invoice.paid", "invoice.updated" /* 0xb2: 60 */}
	if got := invEventTypes(t, st, account, inv.Id); !reflect.DeepEqual(got, wantEvents) {
		t.Errorf("events of %s:\n got  %v\n want %v", inv.Id, got, wantEvents)
	}

	// A paid invoice cannot be canceled, and its page shows it paid.
	_, err = c.CancelInvoice(ctx, &pb.CancelInvoiceRequest{Id: inv.Id})
	if e := grpcError(t, err); e.grpcCode != codes.FailedPrecondition || e.code != "invoice_unexpected_state" {
		t.Errorf("cancel a paid invoice: %+v; want FailedPrecondition invoice_unexpected_state", e)
	}
	code, _, page := getPayPage(t, srv, "/pay/"+inv.Id)
	if code != http.StatusOK || !strings.Contains(page, inv.DepositAddress) || !strings.Contains(page, "0xb2") ||
		!strings.Contains(page, `<span id="amount">25.00</span>`) || strings.Contains(page, `id="pay"`) || strings.Contains(page, `id="cancel"`) {
		t.Errorf("page of the paid crypto invoice: status %d; want 200 with the address, the receipts, 25.00 USDT (display precision) and no buttons:\n%s", code, page)
	}

	// A crypto invoice's page has no Pay button; posting pay there moves nothing.
	code, _, page = getPayPage(t, srv, "/pay/"+same.Id)
	if code != http.StatusOK || strings.Contains(page, `id="pay"`) || !strings.Contains(page, `id="cancel"`) ||
		!strings.Contains(page, `id="deposit-address" class="address">`+same.DepositAddress) || !strings.Contains(page, `http-equiv="refresh"`) {
		t.Errorf("page of an open crypto invoice: status %d; want the deposit address, Cancel only, and a refresh:\n%s", code, page)
	}
	if code, _, _ := postPayPage(t, srv, same.Id, url.Values{"action": {"pay"}}); code != http.StatusConflict {
		t.Errorf("pay on a crypto invoice's page: status %d; want 409", code)
	}
	checkInvoice(t, mustGetInvoice(t, ctx, c, same.Id), "open", 25_000_000, 0)
}

func TestInvoiceExpiry(t *testing.T) {
	t.Parallel()
	srv, c := invServer(t, "--invoice-sweep-interval", "50ms")
	ctx := withKey(t.Context(), srv.key)
	st, account := invStore(t, srv)

	// A partially paid invoice expires with what was paid. The receipt must
	// land before the expiry, so on a slow machine try again with a longer one.
	var inv *pb.Invoice
	for expiry := 2 * time.Second; ; expiry *= 2 {
		req := usdtInvoice(fmt.Sprintf("exp-%d", expiry/time.Second), "cus_1")
		req.Expiry = durationpb.New(expiry)
		inv = mustCreateInvoice(t, ctx, c, req)
		if got := mustReceipt(t, ctx, c, inv.Id, "0xc3", 10_000_000, 30); got.Status == "partially_paid" {
			break
		}
		if expiry > time.Minute {
			t.Fatal("could not record a receipt before a 1-minute expiry")
		}
	}
	time.Sleep(time.Until(inv.ExpiresAt.AsTime()) + 10*time.Millisecond)
	got := mustGetInvoice(t, ctx, c, inv.Id)
	checkInvoice(t, got, "expired", 25_000_000, 10_000_000)
	if !strings.Contains(strings.Join(invEventTypes(t, st, account, inv.Id), ","), "invoice.partially_paid,invoice.expired") {
		t.Errorf("events of %s: %v; want invoice.partially_paid then invoice.expired", inv.Id, invEventTypes(t, st, account, inv.Id))
	}
	// Money that arrives after the expiry is still recorded (it has arrived),
	// but the invoice stays expired.
	got = mustReceipt(t, ctx, c, inv.Id, "0xd4", 15_000_000, 30)
	checkInvoice(t, got, "expired", 25_000_000, 25_000_000)
	if sums, _ := invBookSums(t, st, inv.Id); sums["available"] != 25_000_000 {
		t.Errorf("ledger of %s: %v; want available 25000000", inv.Id, sums)
	}
	_, err := c.CancelInvoice(ctx, &pb.CancelInvoiceRequest{Id: inv.Id})
	if e := grpcError(t, err); e.grpcCode != codes.FailedPrecondition || e.code != "invoice_unexpected_state" {
		t.Errorf("cancel an expired invoice: %+v; want FailedPrecondition invoice_unexpected_state", e)
	}

	// The background sweep expires invoices nobody reads: watch the stored
	// row, which reads through the API would expire lazily.
	req := cardInvoice("sweep-1")
	req.Expiry = durationpb.New(time.Second)
	swept := mustCreateInvoice(t, ctx, c, req)
	deadline := time.Now().Add(30 * time.Second)
	for {
		row, err := st.GetInvoice(t.Context(), account, false, swept.Id)
		if err != nil {
			t.Fatal(err)
		}
		if row.Status == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("invoice %s still %s 30s after its 1s expiry; want the sweep to expire it", swept.Id, row.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := invEventTypes(t, st, account, swept.Id); !reflect.DeepEqual(got, []string{"invoice.created", "invoice.expired"}) {
		t.Errorf("events of the swept invoice: %v; want invoice.created, invoice.expired", got)
	}

	// Paying an expired card invoice on its page moves no money.
	code, loc, page := postPayPage(t, srv, swept.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_visa"}})
	if code != http.StatusConflict || loc != "" || !strings.Contains(page, "expired") || strings.Contains(page, `id="pay"`) {
		t.Errorf("pay an expired invoice: status %d location %q; want 409, the page saying expired and no Pay button:\n%s", code, loc, page)
	}
	pays, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{})
	if err != nil || len(pays.Payments) != 0 {
		t.Errorf("payments after paying an expired invoice: %v %v; want none", pays.GetPayments(), err)
	}
	got = mustGetInvoice(t, ctx, c, swept.Id)
	checkInvoice(t, got, "expired", 2500, 0)

	resp, err := c.ListInvoices(ctx, &pb.ListInvoicesRequest{Status: "expired"})
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "status=expired", invoiceIDs(resp.Invoices), swept.Id, inv.Id)
}

func TestInvoicePagePaysOnce(t *testing.T) {
	t.Parallel()
	srv, c := invServer(t)
	ctx := withKey(t.Context(), srv.key)
	st, account := invStore(t, srv)

	inv := mustCreateInvoice(t, ctx, c, cardInvoice("page-1"))
	code, hdr, page := getPayPage(t, srv, "/pay/"+inv.Id)
	if code != http.StatusOK || !strings.Contains(page, `<span id="amount">25.00</span>`) || !strings.Contains(page, `id="pay"`) ||
		!strings.Contains(page, `id="cancel"`) || !strings.Contains(page, `id="merchant">default<`) {
		t.Errorf("GET /pay/%s: status %d; want 200 with the merchant, 25.00, Pay and Cancel:\n%s", inv.Id, code, page)
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if hdr.Get(h) != want {
			t.Errorf("%s: %q; want %q", h, hdr.Get(h), want)
		}
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self' https://shop.example") {
		t.Errorf("Content-Security-Policy %q; want default-src 'none' and form-action 'self' https://shop.example", csp)
	}

	// A declined card: a failed payment, the invoice stays open.
	code, loc, page := postPayPage(t, srv, inv.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_declined"}})
	if code != http.StatusPaymentRequired || loc != "" || !strings.Contains(page, "declined") || !strings.Contains(page, `id="pay"`) {
		t.Errorf("declined card: status %d location %q; want 402 with the decline message and the Pay button again:\n%s", code, loc, page)
	}
	checkInvoice(t, mustGetInvoice(t, ctx, c, inv.Id), "open", 2500, 0)

	// A cross-site form post is refused before it does anything.
	if code, _, _ := postPayPage(t, srv, inv.Id, url.Values{"action": {"pay"}}, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("cross-site POST: status %d; want 403", code)
	}

	// Pay, five times at once (a customer clicking repeatedly): every
	// answer sends the customer back with success, and money moves once.
	var wg sync.WaitGroup
	type answer struct {
		code int
		loc  string
	}
	answers := make([]answer, 5)
	for i := range answers {
		wg.Add(1)
		go func() { // no t.Fatal off the test's goroutine
			defer wg.Done()
			resp, err := invNoRedirects.PostForm(srv.baseURL+"/pay/"+inv.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_visa"}})
			if err != nil {
				t.Errorf("pay #%d: %v", i, err)
				return
			}
			resp.Body.Close()
			answers[i] = answer{resp.StatusCode, resp.Header.Get("Location")}
		}()
	}
	wg.Wait()
	wantLoc := "https://shop.example/return?cart=9&status=success&invoice_id=" + inv.Id + "&transaction_reference=page-1"
	for i, a := range answers {
		if a.code != http.StatusSeeOther || a.loc != wantLoc {
			t.Errorf("pay #%d: %d %q; want 303 to %s", i, a.code, a.loc, wantLoc)
		}
	}
	paid := mustGetInvoice(t, ctx, c, "page-1")
	checkInvoice(t, paid, "paid", 2500, 2500)
	if !strings.HasPrefix(paid.PaymentId, "pay_") {
		t.Fatalf("paid invoice has payment_id %q; want a pay_ id", paid.PaymentId)
	}
	// Once more, later: still one payment.
	if code, loc, _ := postPayPage(t, srv, inv.Id, url.Values{"action": {"pay"}}); code != http.StatusSeeOther || loc != wantLoc {
		t.Errorf("pay again: %d %q; want 303 to %s", code, loc, wantLoc)
	}
	pays, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var succeeded, failed []*pb.Payment
	for _, p := range pays.Payments {
		if p.Metadata["invoice_id"] != inv.Id || p.Metadata["transaction_reference"] != "page-1" {
			t.Errorf("payment %s has metadata %v; want invoice_id %s and transaction_reference page-1", p.Id, p.Metadata, inv.Id)
		}
		switch p.Status {
		case "succeeded":
			succeeded = append(succeeded, p)
		case "failed":
			failed = append(failed, p)
		}
	}
	if len(succeeded) != 1 || len(failed) != 1 || len(pays.Payments) != 2 {
		t.Fatalf("payments %v; want one failed (declined) and one succeeded", pays.Payments)
	}
	p := succeeded[0]
	if p.Id != paid.PaymentId || p.Amount != 2500 || p.AmountCaptured != 2500 || p.Currency != "USD" || p.Provider != "sandbox" {
		t.Errorf("payment %v; want %s, 2500 USD captured by the sandbox", p, paid.PaymentId)
	}
	if failed[0].FailureCode != "card_declined" {
		t.Errorf("declined payment failure_code %q; want card_declined", failed[0].FailureCode)
	}
	sums, n := invBookSums(t, st, p.Id)
	if n != 2 || sums["available"] != 2500 || sums["provider:sandbox"] != -2500 {
		t.Errorf("ledger of %s: %d entries, %v; want 2 entries, available +2500, provider:sandbox -2500", p.Id, n, sums)
	}
	if _, n := invBookSums(t, st, failed[0].Id); n != 0 {
		t.Errorf("the declined payment has %d ledger entries; want none", n)
	}
	if got := invEventTypes(t, st, account, inv.Id); !reflect.DeepEqual(got, []string{"invoice.created", "invoice.paid"}) {
		t.Errorf("events of %s: %v; want invoice.created, invoice.paid", inv.Id, got)
	}
	if got := invEventTypes(t, st, account, p.Id); !reflect.DeepEqual(got, []string{"payment.succeeded"}) {
		t.Errorf("events of %s: %v; want payment.succeeded", p.Id, got)
	}

	// The paid page shows the state, no buttons, and a way back.
	code, _, page = getPayPage(t, srv, "/pay/"+inv.Id)
	if code != http.StatusOK || strings.Contains(page, `id="pay"`) || strings.Contains(page, `id="cancel"`) || !strings.Contains(page, "Paid") {
		t.Errorf("paid page: status %d; want 200, Paid, no buttons:\n%s", code, page)
	}
	// Cancel on a paid invoice's page changes nothing.
	if code, loc, _ := postPayPage(t, srv, inv.Id, url.Values{"action": {"cancel"}}); code != http.StatusConflict || loc != "" {
		t.Errorf("cancel a paid invoice on its page: %d %q; want 409", code, loc)
	}

	// Cancel on the page: the callback gets status=cancel; a second click too.
	inv2 := mustCreateInvoice(t, ctx, c, cardInvoice("page-2"))
	wantCancel := "https://shop.example/return?cart=9&status=cancel&invoice_id=" + inv2.Id + "&transaction_reference=page-2"
	for range 2 {
		if code, loc, _ := postPayPage(t, srv, inv2.Id, url.Values{"action": {"cancel"}}); code != http.StatusSeeOther || loc != wantCancel {
			t.Errorf("cancel on the page: %d %q; want 303 to %s", code, loc, wantCancel)
		}
	}
	checkInvoice(t, mustGetInvoice(t, ctx, c, inv2.Id), "canceled", 2500, 0)
	if code, loc, _ := postPayPage(t, srv, inv2.Id, url.Values{"action": {"pay"}}); code != http.StatusConflict || loc != "" {
		t.Errorf("pay a canceled invoice: %d %q; want 409", code, loc)
	}

	// Unknown invoices and nonsense.
	for _, path := range []string{"/pay/inv_" + strings.Repeat("0", 26), "/pay/nope", "/pay/"} {
		if code, _, page := getPayPage(t, srv, path); code != http.StatusNotFound || !strings.Contains(page, "Invoice not found") {
			t.Errorf("GET %s: %d; want the 404 page:\n%s", path, code, page)
		}
	}
	if code, _, _ := postPayPage(t, srv, inv2.Id, url.Values{"action": {"refund"}}); code != http.StatusBadRequest {
		t.Errorf("unknown action: %d; want 400", code)
	}
	code, hdr, css := getPayPage(t, srv, "/pay/assets/style.css")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/css") || !strings.Contains(css, ".card") {
		t.Errorf("stylesheet: %d %s", code, hdr.Get("Content-Type"))
	}
}

// TestCallbackRedirectKeepsQuery checks that the callback's own query
// parameters survive and that ours replace any of the same names.
func TestCallbackRedirectKeepsQuery(t *testing.T) {
	t.Parallel()
	srv, c := invServer(t)
	ctx := withKey(t.Context(), srv.key)
	req := cardInvoice("q-1")
	req.CallbackUrl = "https://shop.example/cb?z=1&status=stale&a=%2F%20x#frag"
	inv := mustCreateInvoice(t, ctx, c, req)
	_, loc, _ := postPayPage(t, srv, inv.Id, url.Values{"action": {"pay"}})
	want := "https://shop.example/cb?z=1&a=%2F%20x&status=success&invoice_id=" + inv.Id + "&transaction_reference=q-1#frag"
	if loc != want {
		t.Errorf("redirect %q; want %q", loc, want)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("a") != "/ x" || len(q["status"]) != 1 {
		t.Errorf("redirect query %v; want a=\"/ x\" and one status", q)
	}
}

// TestBatchOfLargeInvoicesAnswers: a batch of 90 invoices whose fields are
// all near their limits (over 100 KB an invoice: 50 metadata entries of
// 500 four-byte characters) is answered over REST, with every invoice, not
// refused because the gRPC answer passed the server's message limit.
func TestBatchOfLargeInvoicesAnswers(t *testing.T) {
	srv, c := invServer(t, "--rate-limit", "-1")
	ctx := withKey(t.Context(), srv.key)
	md := map[string]string{}
	for i := range 50 {
		md[fmt.Sprintf("k%02d%s", i, strings.Repeat("😀", 37))] = strings.Repeat("😀", 500)
	}
	var ids []string
	for i := range 90 {
		req := cardInvoice(fmt.Sprint("big-", i))
		req.Metadata, req.Description = md, strings.Repeat("😀", 1000)
		ids = append(ids, mustCreateInvoice(t, ctx, c, req).Id)
	}
	body, err := json.Marshal(map[string]any{"ids": ids})
	if err != nil {
		t.Fatal(err)
	}
	code, resp, _ := srv.restDo(t, "POST", "/v1/invoices/batch", srv.key, "", string(body))
	if got, _ := resp["invoices"].([]any); code != http.StatusOK || len(got) != len(ids) {
		t.Errorf("batch of %d large invoices: %d, %d invoices %.300v; want 200 with all of them", len(ids), code, len(got), resp)
	}
}
