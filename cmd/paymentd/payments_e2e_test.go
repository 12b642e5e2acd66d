package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// newServer starts a paymentd on a fresh database (testDB: SQLite, or
// PostgreSQL under PAYMENTD_TEST_STORE=postgres).
func newServer(t *testing.T, extraArgs ...string) *testServer {
	t.Helper()
	return startServer(t, testDB(t), extraArgs...)
}

func visa(amount int64) *pb.CreatePaymentRequest {
	return &pb.CreatePaymentRequest{Amount: amount, Currency: "USD", PaymentMethod: "pm_card_visa"}
}

func manual(amount int64) *pb.CreatePaymentRequest {
	r := visa(amount)
	r.CaptureMethod = "manual"
	return r
}

func mustCreate(t *testing.T, ctx context.Context, c pb.PaymentsServiceClient, req *pb.CreatePaymentRequest) *pb.Payment {
	t.Helper()
	resp, err := c.CreatePayment(ctx, req)
	if err != nil {
		t.Fatalf("CreatePayment(%v): %v", req, err)
	}
	return resp.Payment
}

func mustGet(t *testing.T, ctx context.Context, c pb.PaymentsServiceClient, id string) *pb.Payment {
	t.Helper()
	resp, err := c.GetPayment(ctx, &pb.GetPaymentRequest{Id: id})
	if err != nil {
		t.Fatalf("GetPayment(%s): %v", id, err)
	}
	return resp.Payment
}

func mustList(t *testing.T, ctx context.Context, c pb.PaymentsServiceClient, req *pb.ListPaymentsRequest) *pb.ListPaymentsResponse {
	t.Helper()
	resp, err := c.ListPayments(ctx, req)
	if err != nil {
		t.Fatalf("ListPayments(%v): %v", req, err)
	}
	return resp
}

// paymentIDs returns the ids of a page, in order.
func paymentIDs(ps []*pb.Payment) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.Id
	}
	return ids
}

func refundIDs(rs []*pb.Refund) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.Id
	}
	return ids
}

func equalIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(want) == 0 {
		want = []string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %v; want %v (newest first)", what, got, want)
	}
}

// sameObject compares objects without their timestamps, which have their
// own test (TestCreatedAtIsStable).
func sameObject(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	g, w := proto.Clone(got), proto.Clone(want)
	for _, m := range []proto.Message{g, w} {
		switch m := m.(type) {
		case *pb.Payment:
			m.CreatedAt, m.UpdatedAt = nil, nil
		case *pb.Refund:
			m.CreatedAt = nil
		}
	}
	if !proto.Equal(g, w) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// checkPayment checks a payment's status and amounts.
func checkPayment(t *testing.T, p *pb.Payment, wantStatus string, amount, capturable, captured, refunded int64) {
	t.Helper()
	if !strings.HasPrefix(p.Id, "pay_") || p.Status != wantStatus || p.Amount != amount || p.AmountCapturable != capturable ||
		p.AmountCaptured != captured || p.AmountRefunded != refunded {
		t.Errorf("payment %s: status %q amount %d capturable %d captured %d refunded %d; want a pay_ id, %q %d %d %d %d",
			p.Id, p.Status, p.Amount, p.AmountCapturable, p.AmountCaptured, p.AmountRefunded,
			wantStatus, amount, capturable, captured, refunded)
	}
}

// pause separates creations by a few milliseconds, so that a time taken
// between them lies strictly between their creation times.
func pause() time.Time {
	time.Sleep(3 * time.Millisecond)
	now := time.Now()
	time.Sleep(3 * time.Millisecond)
	return now
}

func TestPaymentsOverGRPC(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	c := srv.payments

	st, err := srv.status.GetStatus(t.Context(), &pb.GetStatusRequest{}) // needs no key
	if err != nil {
		t.Fatalf("GetStatus: %v", err)
	}
	if st.Service != "paymentd" || st.Status != "operational" || st.Environment != "development" || st.Version != build().String() ||
		time.Since(st.Timestamp.AsTime()).Abs() > time.Minute {
		t.Errorf("GetStatus = %v; want paymentd, operational, development, dev, now", st)
	}
	for _, name := range []string{"database", "api", "authentication", "provider:sandbox"} {
		if got := st.Components[name].GetStatus(); got != "operational" {
			t.Errorf("component %s is %q; want operational", name, got)
		}
	}

	// Automatic capture: the payment is captured at once.
	req := visa(1000)
	req.Description = "order 1"
	req.Metadata = map[string]string{"order_id": "1"}
	req.Customer = &pb.Customer{Name: "Jane Doe", Email: "jane@example.com", Id: "cus_1"}
	req.AgentId = "agent-7"
	p1 := mustCreate(t, ctx, c, req)
	checkPayment(t, p1, "succeeded", 1000, 0, 1000, 0)
	want := &pb.Payment{Id: p1.Id, Amount: 1000, Currency: "USD", Status: "succeeded", CaptureMethod: "automatic",
		PaymentMethod: "pm_card_visa", AmountCaptured: 1000, Description: "order 1", Metadata: req.Metadata,
		Customer: req.Customer, AgentId: "agent-7", Provider: "sandbox"}
	sameObject(t, "created payment", p1, want)
	if p1.CreatedAt == nil || time.Since(p1.CreatedAt.AsTime()).Abs() > time.Minute {
		t.Errorf("created_at %v; want about now", p1.CreatedAt)
	}
	mark1 := pause()

	// Manual capture, then a partial capture: the rest is released.
	p2 := mustCreate(t, ctx, c, manual(2000))
	checkPayment(t, p2, "requires_capture", 2000, 2000, 0, 0)
	if p2.CaptureMethod != "manual" {
		t.Errorf("capture_method %q; want manual", p2.CaptureMethod)
	}
	capResp, err := c.CapturePayment(ctx, &pb.CapturePaymentRequest{Id: p2.Id, Amount: proto.Int64(1500)})
	if err != nil {
		t.Fatalf("CapturePayment: %v", err)
	}
	p2 = capResp.Payment
	checkPayment(t, p2, "succeeded", 2000, 0, 1500, 0)
	mark2 := pause()

	// Manual capture, then cancel.
	p3 := mustCreate(t, ctx, c, manual(3000))
	cancelResp, err := c.CancelPayment(ctx, &pb.CancelPaymentRequest{Id: p3.Id, CancellationReason: "requested_by_customer"})
	if err != nil {
		t.Fatalf("CancelPayment: %v", err)
	}
	p3 = cancelResp.Payment
	checkPayment(t, p3, "canceled", 3000, 0, 0, 0)

	for _, p := range []*pb.Payment{p1, p2, p3} {
		sameObject(t, "GetPayment "+p.Id, mustGet(t, ctx, c, p.Id), p)
	}

	// Refunds: a partial one, the rest, and one on another payment.
	r1resp, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: p1.Id, Amount: proto.Int64(300),
		Reason: "requested_by_customer", Metadata: map[string]string{"ticket": "T-1"}})
	if err != nil {
		t.Fatalf("CreateRefund: %v", err)
	}
	r1 := r1resp.Refund
	sameObject(t, "refund", r1, &pb.Refund{Id: r1.Id, PaymentId: p1.Id, Amount: 300, Currency: "USD", Status: "succeeded",
		Reason: "requested_by_customer", Metadata: map[string]string{"ticket": "T-1"}})
	if !strings.HasPrefix(r1.Id, "re_") {
		t.Errorf("refund id %q; want re_…", r1.Id)
	}
	r2resp, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: p1.Id}) // the rest
	if err != nil {
		t.Fatalf("CreateRefund (rest): %v", err)
	}
	r2 := r2resp.Refund
	if r2.Amount != 700 || r2.Status != "succeeded" {
		t.Errorf("refund of the rest: amount %d status %q; want 700 succeeded", r2.Amount, r2.Status)
	}
	r3resp, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: p2.Id, Amount: proto.Int64(500)})
	if err != nil {
		t.Fatalf("CreateRefund on %s: %v", p2.Id, err)
	}
	r3 := r3resp.Refund
	p1 = mustGet(t, ctx, c, p1.Id)
	checkPayment(t, p1, "succeeded", 1000, 0, 1000, 1000)
	checkPayment(t, mustGet(t, ctx, c, p2.Id), "succeeded", 2000, 0, 1500, 500)

	got, err := c.GetRefund(ctx, &pb.GetRefundRequest{Id: r1.Id})
	if err != nil {
		t.Fatalf("GetRefund: %v", err)
	}
	sameObject(t, "GetRefund", got.Refund, r1)

	lr, err := c.ListRefunds(ctx, &pb.ListRefundsRequest{PaymentId: p1.Id})
	if err != nil {
		t.Fatalf("ListRefunds: %v", err)
	}
	equalIDs(t, "ListRefunds payment_id="+p1.Id, refundIDs(lr.Refunds), r2.Id, r1.Id)
	if lr.NextPageToken != "" {
		t.Errorf("ListRefunds: next_page_token %q on the only page", lr.NextPageToken)
	}
	lr, err = c.ListRefunds(ctx, &pb.ListRefundsRequest{PageSize: 2})
	if err != nil {
		t.Fatalf("ListRefunds: %v", err)
	}
	equalIDs(t, "ListRefunds page 1", refundIDs(lr.Refunds), r3.Id, r2.Id)
	lr, err = c.ListRefunds(ctx, &pb.ListRefundsRequest{PageSize: 2, PageToken: lr.NextPageToken})
	if err != nil {
		t.Fatalf("ListRefunds page 2: %v", err)
	}
	equalIDs(t, "ListRefunds page 2", refundIDs(lr.Refunds), r1.Id)
	if lr.NextPageToken != "" {
		t.Errorf("ListRefunds: next_page_token %q on the last page", lr.NextPageToken)
	}

	// Lists: pages, status filter, created range.
	page := mustList(t, ctx, c, &pb.ListPaymentsRequest{PageSize: 2})
	equalIDs(t, "ListPayments page 1", paymentIDs(page.Payments), p3.Id, p2.Id)
	if page.NextPageToken == "" {
		t.Fatal("ListPayments page 1 has no next_page_token")
	}
	sameObject(t, "listed payment", page.Payments[0], p3)
	page = mustList(t, ctx, c, &pb.ListPaymentsRequest{PageSize: 2, PageToken: page.NextPageToken})
	equalIDs(t, "ListPayments page 2", paymentIDs(page.Payments), p1.Id)
	if page.NextPageToken != "" {
		t.Errorf("ListPayments page 2: next_page_token %q on the last page", page.NextPageToken)
	}
	equalIDs(t, "status=succeeded", paymentIDs(mustList(t, ctx, c, &pb.ListPaymentsRequest{Status: "succeeded"}).Payments), p2.Id, p1.Id)
	equalIDs(t, "status=canceled", paymentIDs(mustList(t, ctx, c, &pb.ListPaymentsRequest{Status: "canceled"}).Payments), p3.Id)
	equalIDs(t, "status=requires_capture", paymentIDs(mustList(t, ctx, c, &pb.ListPaymentsRequest{Status: "requires_capture"}).Payments))
	after, before := timestamppb.New(mark1), timestamppb.New(mark2)
	equalIDs(t, "created_after", paymentIDs(mustList(t, ctx, c, &pb.ListPaymentsRequest{CreatedAfter: after}).Payments), p3.Id, p2.Id)
	equalIDs(t, "created_before", paymentIDs(mustList(t, ctx, c, &pb.ListPaymentsRequest{CreatedBefore: before}).Payments), p2.Id, p1.Id)
	equalIDs(t, "created_after+created_before", paymentIDs(mustList(t, ctx, c,
		&pb.ListPaymentsRequest{CreatedAfter: after, CreatedBefore: before}).Payments), p2.Id)
	equalIDs(t, "created_after+status=canceled", paymentIDs(mustList(t, ctx, c,
		&pb.ListPaymentsRequest{CreatedAfter: after, Status: "canceled"}).Payments), p3.Id)
	// A page token combined with a time range continues inside the range.
	page = mustList(t, ctx, c, &pb.ListPaymentsRequest{CreatedAfter: after, PageSize: 1})
	page = mustList(t, ctx, c, &pb.ListPaymentsRequest{CreatedAfter: after, PageSize: 1, PageToken: page.NextPageToken})
	equalIDs(t, "created_after page 2", paymentIDs(page.Payments), p2.Id)
	if page.NextPageToken != "" {
		t.Errorf("created_after page 2: next_page_token %q on the last page", page.NextPageToken)
	}
}

// Helpers for REST bodies: protojson writes int64 as a JSON string.
func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func items(t *testing.T, m map[string]any, k string) []map[string]any {
	t.Helper()
	list, ok := m[k].([]any)
	if !ok {
		t.Fatalf("%q is %T in %v; want a list", k, m[k], m)
	}
	out := make([]map[string]any, len(list))
	for i, v := range list {
		out[i], _ = v.(map[string]any)
	}
	return out
}

func jsonIDs(objs []map[string]any) []string {
	ids := make([]string, len(objs))
	for i, o := range objs {
		ids[i] = str(o, "id")
	}
	return ids
}

func checkJSONPayment(t *testing.T, p map[string]any, status, amount, capturable, captured, refunded string) {
	t.Helper()
	if !strings.HasPrefix(str(p, "id"), "pay_") || str(p, "status") != status || str(p, "amount") != amount ||
		str(p, "amount_capturable") != capturable || str(p, "amount_captured") != captured || str(p, "amount_refunded") != refunded {
		t.Errorf("payment %v; want a pay_ id, status %s, amount %s, amount_capturable %s, amount_captured %s, amount_refunded %s",
			p, status, amount, capturable, captured, refunded)
	}
}

// withoutTimes drops the timestamps of a JSON object, which have their own test.
func withoutTimes(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k != "created_at" && k != "updated_at" {
			out[k] = v
		}
	}
	return out
}

func TestPaymentsOverREST(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	key := srv.key
	do := func(method, path, body string) map[string]any {
		t.Helper()
		code, m, _ := srv.restDo(t, method, path, key, "", body)
		if code != http.StatusOK {
			t.Fatalf("%s %s %s: status %d %v; want 200", method, path, body, code, m)
		}
		return m
	}

	code, st, _ := srv.restDo(t, "GET", "/v1/status", "", "", "")
	if code != http.StatusOK || str(st, "service") != "paymentd" || str(st, "status") != "operational" ||
		str(st, "environment") != "development" || str(st, "version") != build().String() {
		t.Errorf("GET /v1/status: %d %v; want 200 paymentd operational development dev", code, st)
	}
	db, _ := st["components"].(map[string]any)["database"].(map[string]any)
	if str(db, "status") != "operational" || db["response_time_ms"] == nil {
		t.Errorf("database component %v; want operational with response_time_ms", db)
	}

	code, doc, hdr := srv.restDo(t, "GET", "/openapi.json", "", "", "")
	if code != http.StatusOK || str(doc, "swagger") != "2.0" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Errorf("GET /openapi.json: %d %s swagger=%q; want 200 application/json swagger 2.0", code, hdr.Get("Content-Type"), str(doc, "swagger"))
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, p := range []string{"/v1/payments", "/v1/payments/{id}", "/v1/payments/{id}/capture", "/v1/payments/{id}/cancel",
		"/v1/refunds", "/v1/refunds/{id}", "/v1/status"} {
		if paths[p] == nil {
			t.Errorf("/openapi.json has no path %s", p)
		}
	}

	p1 := do("POST", "/v1/payments", `{"amount": 1000, "currency": "USD", "payment_method": "pm_card_visa",
		"description": "order 1", "metadata": {"order_id": "1"},
		"customer": {"name": "Jane Doe", "email": "jane@example.com", "id": "cus_1"}, "agent_id": "agent-7"}`)
	checkJSONPayment(t, p1, "succeeded", "1000", "0", "1000", "0")
	for k, v := range map[string]any{"currency": "USD", "capture_method": "automatic", "payment_method": "pm_card_visa",
		"description": "order 1", "agent_id": "agent-7", "provider": "sandbox", "livemode": false, "failure_code": ""} {
		if p1[k] != v {
			t.Errorf("payment %s = %#v; want %#v", k, p1[k], v)
		}
	}
	if cus, _ := p1["customer"].(map[string]any); str(cus, "email") != "jane@example.com" || str(cus, "name") != "Jane Doe" {
		t.Errorf("customer %v; want Jane Doe <jane@example.com>", p1["customer"])
	}
	if md, _ := p1["metadata"].(map[string]any); str(md, "order_id") != "1" {
		t.Errorf("metadata %v; want order_id 1", p1["metadata"])
	}
	for _, camel := range []string{"amountCaptured", "captureMethod", "createdAt"} {
		if _, ok := p1[camel]; ok {
			t.Errorf("REST payment has camelCase field %s; want the proto (snake_case) names", camel)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, str(p1, "created_at")); err != nil {
		t.Errorf("created_at %q is not RFC 3339: %v", str(p1, "created_at"), err)
	}
	mark1 := pause()

	p2 := do("POST", "/v1/payments", `{"amount": "2000", "currency": "usd", "payment_method": "pm_card_mastercard", "capture_method": "manual"}`)
	checkJSONPayment(t, p2, "requires_capture", "2000", "2000", "0", "0")
	if str(p2, "currency") != "USD" {
		t.Errorf("currency %q; want USD (upper case)", str(p2, "currency"))
	}
	p2 = do("POST", "/v1/payments/"+str(p2, "id")+"/capture", `{"amount": 1500}`)
	checkJSONPayment(t, p2, "succeeded", "2000", "0", "1500", "0")
	mark2 := pause()

	p3 := do("POST", "/v1/payments", `{"amount": 3000, "currency": "USD", "payment_method": "pm_card_visa", "capture_method": "manual"}`)
	p3 = do("POST", "/v1/payments/"+str(p3, "id")+"/cancel", `{"cancellation_reason": "abandoned"}`)
	checkJSONPayment(t, p3, "canceled", "3000", "0", "0", "0")
	// A capture with an empty body captures everything authorized.
	p4 := do("POST", "/v1/payments", `{"amount": 700, "currency": "EUR", "payment_method": "pm_card_visa", "capture_method": "manual"}`)
	p4 = do("POST", "/v1/payments/"+str(p4, "id")+"/capture", `{}`)
	checkJSONPayment(t, p4, "succeeded", "700", "0", "700", "0")

	for _, p := range []map[string]any{p1, p2, p3, p4} {
		got := do("GET", "/v1/payments/"+str(p, "id"), "")
		if !reflect.DeepEqual(withoutTimes(got), withoutTimes(p)) {
			t.Errorf("GET /v1/payments/%s:\n got  %v\n want %v", str(p, "id"), got, p)
		}
	}

	r1 := do("POST", "/v1/refunds", `{"payment_id": "`+str(p1, "id")+`", "amount": 250, "reason": "duplicate"}`)
	if !strings.HasPrefix(str(r1, "id"), "re_") || str(r1, "payment_id") != str(p1, "id") || str(r1, "amount") != "250" ||
		str(r1, "status") != "succeeded" || str(r1, "currency") != "USD" || str(r1, "reason") != "duplicate" || r1["livemode"] != false {
		t.Errorf("refund %v; want re_…, payment_id %s, amount \"250\", succeeded, USD, duplicate", r1, str(p1, "id"))
	}
	r2 := do("POST", "/v1/refunds", `{"payment_id": "`+str(p1, "id")+`"}`)
	if str(r2, "amount") != "750" {
		t.Errorf("refund of the rest: amount %v; want \"750\"", r2["amount"])
	}
	r3 := do("POST", "/v1/refunds", `{"payment_id": "`+str(p2, "id")+`", "amount": "100"}`)
	checkJSONPayment(t, do("GET", "/v1/payments/"+str(p1, "id"), ""), "succeeded", "1000", "0", "1000", "1000")
	checkJSONPayment(t, do("GET", "/v1/payments/"+str(p2, "id"), ""), "succeeded", "2000", "0", "1500", "100")

	if got := do("GET", "/v1/refunds/"+str(r1, "id"), ""); !reflect.DeepEqual(withoutTimes(got), withoutTimes(r1)) {
		t.Errorf("GET /v1/refunds/%s:\n got  %v\n want %v", str(r1, "id"), got, r1)
	}
	lr := do("GET", "/v1/refunds?payment_id="+str(p1, "id"), "")
	equalIDs(t, "GET /v1/refunds?payment_id=", jsonIDs(items(t, lr, "refunds")), str(r2, "id"), str(r1, "id"))
	if str(lr, "next_page_token") != "" {
		t.Errorf("refunds: next_page_token %q on the only page", str(lr, "next_page_token"))
	}
	equalIDs(t, "GET /v1/refunds", jsonIDs(items(t, do("GET", "/v1/refunds", ""), "refunds")), str(r3, "id"), str(r2, "id"), str(r1, "id"))

	lp := do("GET", "/v1/payments?page_size=3", "")
	equalIDs(t, "GET /v1/payments page 1", jsonIDs(items(t, lp, "payments")), str(p4, "id"), str(p3, "id"), str(p2, "id"))
	token := str(lp, "next_page_token")
	if token == "" {
		t.Fatalf("GET /v1/payments?page_size=3 has no next_page_token: %v", lp)
	}
	lp = do("GET", "/v1/payments?page_size=3&page_token="+url.QueryEscape(token), "")
	equalIDs(t, "GET /v1/payments page 2", jsonIDs(items(t, lp, "payments")), str(p1, "id"))
	if str(lp, "next_page_token") != "" {
		t.Errorf("payments: next_page_token %q on the last page", str(lp, "next_page_token"))
	}
	equalIDs(t, "status=canceled", jsonIDs(items(t, do("GET", "/v1/payments?status=canceled", ""), "payments")), str(p3, "id"))
	q := url.Values{"created_after": {mark1.Format(time.RFC3339Nano)}, "created_before": {mark2.Format(time.RFC3339Nano)}}
	equalIDs(t, "created_after+created_before", jsonIDs(items(t, do("GET", "/v1/payments?"+q.Encode(), ""), "payments")), str(p2, "id"))
	q = url.Values{"created_after": {mark2.Format(time.RFC3339Nano)}, "status": {"succeeded"}}
	equalIDs(t, "created_after+status", jsonIDs(items(t, do("GET", "/v1/payments?"+q.Encode(), ""), "payments")), str(p4, "id"))
}

// badInput is one refused request, sent over gRPC and over REST (either may
// be missing), with the error the caller must get.
type badInput struct {
	name string
	key  string // the API key; "" sends none
	idem string // the idempotency key, if any
	// grpc makes the call; ctx carries key and idem.
	grpc func(ctx context.Context, c pb.PaymentsServiceClient) error
	// The REST request.
	method, path, body string

	wantGRPC  codes.Code
	wantHTTP  int
	wantType  string
	wantCode  string
	wantParam string
}

func create(req *pb.CreatePaymentRequest) func(context.Context, pb.PaymentsServiceClient) error {
	return func(ctx context.Context, c pb.PaymentsServiceClient) error {
		_, err := c.CreatePayment(ctx, req)
		return err
	}
}

func get(id string) func(context.Context, pb.PaymentsServiceClient) error {
	return func(ctx context.Context, c pb.PaymentsServiceClient) error {
		_, err := c.GetPayment(ctx, &pb.GetPaymentRequest{Id: id})
		return err
	}
}

func TestBadInputs(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	c := srv.payments

	liveKey, _ := createKey(t, srv.db, "live", "read,write", "")
	readKey, _ := createKey(t, srv.db, "test", "read", "")
	// Revoked before its first use: the server caches key lookups.
	revokedKey, revokedID := createKey(t, srv.db, "test", "read,write", "")
	if out, _ := cli(t, "keys", "revoke", "--db", srv.db, revokedID); !strings.Contains(out, "Revoked "+revokedID) {
		t.Fatalf("keys revoke printed %q", out)
	}
	acct2 := createAccount(t, srv.db, "other")
	otherKey, _ := createKey(t, srv.db, "test", "read,write", acct2)

	captured := mustCreate(t, ctx, c, visa(1000))
	refund, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: captured.Id, Amount: proto.Int64(100)})
	if err != nil {
		t.Fatal(err)
	}
	authorized := mustCreate(t, ctx, c, manual(1000))
	canceled := mustCreate(t, ctx, c, manual(1000))
	if _, err := c.CancelPayment(ctx, &pb.CancelPaymentRequest{Id: canceled.Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePayment(withIdem(ctx, "reused-key"), visa(1000)); err != nil {
		t.Fatal(err)
	}

	const invalid, auth = "invalid_request_error", "authentication_error"
	withDesc := visa(1000)
	withDesc.Description = "customer card 4242424242424242"
	withMeta := visa(1000)
	withMeta.Metadata = map[string]string{"note": "4242-4242-4242-4242"}
	declined := visa(1000)
	declined.PaymentMethod = "pm_card_declined"
	poor := visa(1000)
	poor.PaymentMethod = "pm_card_insufficient_funds"
	xyz := visa(1000)
	xyz.Currency = "XYZ"
	payPath := "/v1/payments/" + captured.Id
	rows := []badInput{
		{name: "amount missing", key: srv.key, grpc: create(&pb.CreatePaymentRequest{Currency: "USD", PaymentMethod: "pm_card_visa"}),
			method: "POST", path: "/v1/payments", body: `{"currency":"USD","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "amount_invalid", wantParam: "amount"},
		{name: "amount zero", key: srv.key, grpc: create(visa(0)),
			method: "POST", path: "/v1/payments", body: `{"amount":0,"currency":"USD","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "amount_invalid", wantParam: "amount"},
		{name: "amount negative", key: srv.key, grpc: create(visa(-100)),
			method: "POST", path: "/v1/payments", body: `{"amount":-100,"currency":"USD","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "amount_invalid", wantParam: "amount"},
		{name: "amount below the USD minimum", key: srv.key, grpc: create(visa(49)),
			method: "POST", path: "/v1/payments", body: `{"amount":49,"currency":"USD","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "amount_too_small", wantParam: "amount"},
		{name: "amount huge", key: srv.key, grpc: create(visa(1_000_000_000_000)),
			method: "POST", path: "/v1/payments", body: `{"amount":"1000000000000","currency":"USD","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "amount_too_large", wantParam: "amount"},
		{name: "unknown currency", key: srv.key, grpc: create(xyz),
			method: "POST", path: "/v1/payments", body: `{"amount":1000,"currency":"XYZ","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "currency_invalid", wantParam: "currency"},
		{name: "card number in description", key: srv.key, grpc: create(withDesc),
			method: "POST", path: "/v1/payments", body: `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","description":"customer card 4242424242424242"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "card_number_refused", wantParam: "description"},
		{name: "card number in metadata", key: srv.key, grpc: create(withMeta),
			method: "POST", path: "/v1/payments", body: `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","metadata":{"note":"4242-4242-4242-4242"}}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "card_number_refused", wantParam: "metadata[note]"},
		{name: "card number in refund metadata", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: captured.Id, Metadata: map[string]string{"card": "4242424242424242"}})
				return err
			},
			method: "POST", path: "/v1/refunds", body: `{"payment_id":"` + captured.Id + `","metadata":{"card":"4242424242424242"}}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "card_number_refused", wantParam: "metadata[card]"},
		{name: "malformed JSON", key: srv.key, method: "POST", path: "/v1/payments", body: `{"amount": 1000, "currency": `,
			wantHTTP: 400, wantType: invalid, wantCode: "invalid_request_body"},
		{name: "unknown JSON field", key: srv.key, method: "POST", path: "/v1/payments", body: `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","amountt":1}`,
			wantHTTP: 400, wantType: invalid, wantCode: "invalid_request_body", wantParam: "amountt"},
		{name: "body over 1 MiB", key: srv.key, method: "POST", path: "/v1/payments",
			body:     `{"currency":"USD","description":"` + strings.Repeat("a", 1<<20) + `"}`,
			wantHTTP: 413, wantType: invalid, wantCode: "body_too_large"},
		{name: "no API key", grpc: get(captured.Id), method: "GET", path: payPath,
			wantGRPC: codes.Unauthenticated, wantHTTP: 401, wantType: auth, wantCode: "api_key_missing"},
		{name: "unknown API key", key: "ak_test_0123456789abcdefghijABCDEFGHIJ01", grpc: get(captured.Id), method: "GET", path: payPath,
			wantGRPC: codes.Unauthenticated, wantHTTP: 401, wantType: auth, wantCode: "api_key_invalid"},
		{name: "revoked API key", key: revokedKey, grpc: get(captured.Id), method: "GET", path: payPath,
			wantGRPC: codes.Unauthenticated, wantHTTP: 401, wantType: auth, wantCode: "api_key_invalid"},
		{name: "live key reads a test payment", key: liveKey, grpc: get(captured.Id), method: "GET", path: payPath,
			wantGRPC: codes.NotFound, wantHTTP: 404, wantType: invalid, wantCode: "resource_missing", wantParam: "id"},
		{name: "another account's payment", key: otherKey, grpc: get(captured.Id), method: "GET", path: payPath,
			wantGRPC: codes.NotFound, wantHTTP: 404, wantType: invalid, wantCode: "resource_missing", wantParam: "id"},
		{name: "another account's refund", key: otherKey,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.GetRefund(ctx, &pb.GetRefundRequest{Id: refund.Refund.Id})
				return err
			},
			method: "GET", path: "/v1/refunds/" + refund.Refund.Id,
			wantGRPC: codes.NotFound, wantHTTP: 404, wantType: invalid, wantCode: "resource_missing", wantParam: "id"},
		{name: "refund of another account's payment", key: otherKey,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: captured.Id, Amount: proto.Int64(100)})
				return err
			},
			method: "POST", path: "/v1/refunds", body: `{"payment_id":"` + captured.Id + `","amount":100}`,
			wantGRPC: codes.NotFound, wantHTTP: 404, wantType: invalid, wantCode: "resource_missing", wantParam: "payment_id"},
		{name: "malformed payment id", key: srv.key, grpc: get("pay_nope"), method: "GET", path: "/v1/payments/pay_nope",
			wantGRPC: codes.NotFound, wantHTTP: 404, wantType: invalid, wantCode: "resource_missing", wantParam: "id"},
		{name: "read-only key creates a payment", key: readKey, grpc: create(visa(1000)),
			method: "POST", path: "/v1/payments", body: `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.PermissionDenied, wantHTTP: 403, wantType: "permission_error", wantCode: "scope_missing"},
		{name: "capture after cancel", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.CapturePayment(ctx, &pb.CapturePaymentRequest{Id: canceled.Id})
				return err
			},
			method: "POST", path: "/v1/payments/" + canceled.Id + "/capture", body: `{}`,
			wantGRPC: codes.FailedPrecondition, wantHTTP: 409, wantType: invalid, wantCode: "payment_unexpected_state", wantParam: "id"},
		{name: "cancel after capture", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.CancelPayment(ctx, &pb.CancelPaymentRequest{Id: captured.Id})
				return err
			},
			method: "POST", path: "/v1/payments/" + captured.Id + "/cancel", body: `{}`,
			wantGRPC: codes.FailedPrecondition, wantHTTP: 409, wantType: invalid, wantCode: "payment_unexpected_state", wantParam: "id"},
		{name: "capture above the authorized amount", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.CapturePayment(ctx, &pb.CapturePaymentRequest{Id: authorized.Id, Amount: proto.Int64(1001)})
				return err
			},
			method: "POST", path: "/v1/payments/" + authorized.Id + "/capture", body: `{"amount":1001}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "amount_too_large", wantParam: "amount"},
		{name: "capture below the currency's minimum", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.CapturePayment(ctx, &pb.CapturePaymentRequest{Id: authorized.Id, Amount: proto.Int64(49)})
				return err
			},
			method: "POST", path: "/v1/payments/" + authorized.Id + "/capture", body: `{"amount":49}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "amount_too_small", wantParam: "amount"},
		{name: "refund above the captured amount", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: captured.Id, Amount: proto.Int64(901)})
				return err
			},
			method: "POST", path: "/v1/refunds", body: `{"payment_id":"` + captured.Id + `","amount":901}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "amount_too_large", wantParam: "amount"},
		{name: "refund of an uncaptured payment", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: authorized.Id})
				return err
			},
			method: "POST", path: "/v1/refunds", body: `{"payment_id":"` + authorized.Id + `"}`,
			wantGRPC: codes.FailedPrecondition, wantHTTP: 409, wantType: invalid, wantCode: "payment_unexpected_state", wantParam: "payment_id"},
		{name: "card declined", key: srv.key, grpc: create(declined),
			method: "POST", path: "/v1/payments", body: `{"amount":1000,"currency":"USD","payment_method":"pm_card_declined"}`,
			wantGRPC: codes.FailedPrecondition, wantHTTP: 402, wantType: "card_error", wantCode: "card_declined", wantParam: "payment_method"},
		{name: "insufficient funds", key: srv.key, grpc: create(poor),
			method: "POST", path: "/v1/payments", body: `{"amount":1000,"currency":"USD","payment_method":"pm_card_insufficient_funds"}`,
			wantGRPC: codes.FailedPrecondition, wantHTTP: 402, wantType: "card_error", wantCode: "insufficient_funds", wantParam: "payment_method"},
		{name: "idempotency key reused with another request", key: srv.key, idem: "reused-key", grpc: create(visa(2000)),
			method: "POST", path: "/v1/payments", body: `{"amount":2000,"currency":"USD","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 422, wantType: "idempotency_error", wantCode: "idempotency_key_reused"},
		{name: "live key without a live provider", key: liveKey, grpc: create(visa(1000)),
			method: "POST", path: "/v1/payments", body: `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}`,
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "live_mode_not_configured"},
		{name: "page token not from a page", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.ListPayments(ctx, &pb.ListPaymentsRequest{PageToken: "bm90LWEtdG9rZW4"})
				return err
			},
			method: "GET", path: "/v1/payments?page_token=bm90LWEtdG9rZW4",
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "page_token_invalid", wantParam: "page_token"},
		{name: "page size above 100", key: srv.key,
			grpc: func(ctx context.Context, c pb.PaymentsServiceClient) error {
				_, err := c.ListPayments(ctx, &pb.ListPaymentsRequest{PageSize: 101})
				return err
			},
			method: "GET", path: "/v1/payments?page_size=101",
			wantGRPC: codes.InvalidArgument, wantHTTP: 400, wantType: invalid, wantCode: "page_size_invalid", wantParam: "page_size"},
	}
	t.Run("rows", func(t *testing.T) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				t.Parallel()
				want := apiError{errType: row.wantType, code: row.wantCode, param: row.wantParam}
				if row.grpc != nil {
					ctx := t.Context()
					if row.key != "" {
						ctx = withKey(ctx, row.key)
					}
					if row.idem != "" {
						ctx = withIdem(ctx, row.idem)
					}
					want.grpcCode = row.wantGRPC
					if got := grpcError(t, row.grpc(ctx, c)); got != want {
						t.Errorf("gRPC: got %+v; want %+v", got, want)
					}
				}
				if row.method != "" {
					code, body, _ := srv.restDo(t, row.method, row.path, row.key, row.idem, row.body)
					want.grpcCode, want.httpStatus = 0, row.wantHTTP
					if got := restError(t, code, body); got != want {
						t.Errorf("REST %s %s: got %+v; want %+v", row.method, row.path, got, want)
					}
				}
			})
		}
	})

	// The refusals changed nothing, and declined payments are recorded as failed.
	failed := mustList(t, ctx, c, &pb.ListPaymentsRequest{Status: "failed"}).Payments
	codesSeen := map[string]int{}
	for _, p := range failed {
		codesSeen[p.FailureCode]++
		if p.AmountCaptured != 0 || p.FailureMessage == "" {
			t.Errorf("failed payment %v: want nothing captured and a failure_message", p)
		}
	}
	if len(failed) != 4 || codesSeen["card_declined"] != 2 || codesSeen["insufficient_funds"] != 2 {
		t.Errorf("failed payments by failure_code: %v; want card_declined 2 and insufficient_funds 2", codesSeen)
	}
	all := mustList(t, ctx, c, &pb.ListPaymentsRequest{PageSize: 100}).Payments
	if len(all) != 4+4 { // captured, authorized, canceled, reused-key, and the four declined
		t.Errorf("ListPayments has %d payments; want 8: %v", len(all), paymentIDs(all))
	}
	checkPayment(t, mustGet(t, ctx, c, captured.Id), "succeeded", 1000, 0, 1000, 100)
	checkPayment(t, mustGet(t, ctx, c, authorized.Id), "requires_capture", 1000, 1000, 0, 0)

	// The keys that were refused above work where they should.
	if _, err := c.GetPayment(withKey(t.Context(), readKey), &pb.GetPaymentRequest{Id: captured.Id}); err != nil {
		t.Errorf("read-only key cannot read: %v", err)
	}
	if page := mustList(t, withKey(t.Context(), liveKey), c, &pb.ListPaymentsRequest{}); len(page.Payments) != 0 {
		t.Errorf("live key lists %d test payments; want none", len(page.Payments))
	}
	if page := mustList(t, withKey(t.Context(), otherKey), c, &pb.ListPaymentsRequest{}); len(page.Payments) != 0 {
		t.Errorf("another account's key lists %d payments; want none", len(page.Payments))
	}
	other := mustCreate(t, withKey(t.Context(), otherKey), c, visa(5000))
	if _, err := c.GetPayment(ctx, &pb.GetPaymentRequest{Id: other.Id}); status.Code(err) != codes.NotFound {
		t.Errorf("the first account reads the second's payment: %v; want NotFound", err)
	}
}

func TestBodyTooLargeWithoutContentLength(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	body := `{"currency":"USD","description":"` + strings.Repeat("a", 2<<20) + `"}`
	// A reader of unknown length makes the client send the body chunked.
	req, err := http.NewRequest("POST", srv.baseURL+"/v1/payments", struct{ *strings.Reader }{strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 2 MiB body: status %d; want 413", resp.StatusCode)
	}
}

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	c := srv.payments

	first, err := c.CreatePayment(withIdem(ctx, "order-1"), visa(1000))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreatePayment(withIdem(ctx, "order-1"), visa(1000))
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !proto.Equal(first, again) {
		t.Errorf("replay answered\n %v\nwant the first response\n %v", again, first)
	}

	// Over REST: the same key and body give the same JSON, and one payment.
	body := `{"amount":1500,"currency":"USD","payment_method":"pm_card_visa","capture_method":"manual"}`
	code1, rest1, _ := srv.restDo(t, "POST", "/v1/payments", srv.key, "order-2", body)
	code2, rest2, _ := srv.restDo(t, "POST", "/v1/payments", srv.key, "order-2", body)
	if code1 != 200 || code2 != 200 || !reflect.DeepEqual(rest1, rest2) {
		t.Errorf("REST replay: %d %v then %d %v; want the same 200 response twice", code1, rest1, code2, rest2)
	}

	// A replayed capture and refund return their first outcome and move no more money.
	capReq := &pb.CapturePaymentRequest{Id: str(rest1, "id"), Amount: proto.Int64(1200)}
	cap1, err := c.CapturePayment(withIdem(ctx, "capture-1"), capReq)
	if err != nil {
		t.Fatal(err)
	}
	cap2, err := c.CapturePayment(withIdem(ctx, "capture-1"), capReq)
	if err != nil || !proto.Equal(cap1, cap2) {
		t.Errorf("capture replay: %v, %v; want %v", cap2, err, cap1)
	}
	refReq := &pb.CreateRefundRequest{PaymentId: first.Payment.Id, Amount: proto.Int64(400)}
	ref1, err := c.CreateRefund(withIdem(ctx, "refund-1"), refReq)
	if err != nil {
		t.Fatal(err)
	}
	ref2, err := c.CreateRefund(withIdem(ctx, "refund-1"), refReq)
	if err != nil || !proto.Equal(ref1, ref2) {
		t.Errorf("refund replay: %v, %v; want %v", ref2, err, ref1)
	}
	checkPayment(t, mustGet(t, ctx, c, first.Payment.Id), "succeeded", 1000, 0, 1000, 400)

	// A declined payment's refusal is replayed too, without a second attempt.
	declined := visa(1000)
	declined.PaymentMethod = "pm_card_declined"
	for range 2 {
		_, err := c.CreatePayment(withIdem(ctx, "order-3"), declined)
		if got := grpcError(t, err); got.grpcCode != codes.FailedPrecondition || got.code != "card_declined" {
			t.Errorf("declined (replayed) payment: %+v; want FailedPrecondition card_declined", got)
		}
	}

	// The same key on another method is another key.
	if _, err := c.CancelPayment(withIdem(ctx, "order-1"), &pb.CancelPaymentRequest{Id: first.Payment.Id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("CancelPayment with a CreatePayment key: %v; want FailedPrecondition (the payment is captured)", err)
	}

	all := mustList(t, ctx, c, &pb.ListPaymentsRequest{})
	if len(all.Payments) != 3 {
		t.Errorf("ListPayments has %d payments; want 3 (one per idempotency key): %v", len(all.Payments), paymentIDs(all.Payments))
	}
	if refunds, err := c.ListRefunds(ctx, &pb.ListRefundsRequest{}); err != nil || len(refunds.Refunds) != 1 {
		t.Errorf("ListRefunds: %v, %v; want exactly one refund", refunds, err)
	}
}

func TestConcurrentRefundsNeverExceedCaptured(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	c := srv.payments
	p := mustCreate(t, ctx, c, visa(1000))

	const n = 20
	var wg sync.WaitGroup
	results := make([]apiError, n) // zero value: success
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				_, err := c.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: p.Id, Amount: proto.Int64(100)})
				if err != nil {
					st := status.Convert(err)
					results[i] = apiError{grpcCode: st.Code(), code: st.Message()}
					for _, d := range st.Details() {
						if info, ok := d.(*errdetails.ErrorInfo); ok {
							results[i].code = info.Metadata["code"]
						}
					}
				}
				return
			}
			code, body, _ := srv.restDo(t, "POST", "/v1/refunds", srv.key, "", `{"payment_id":"`+p.Id+`","amount":100}`)
			if code != 200 {
				e, _ := body["error"].(map[string]any)
				results[i] = apiError{httpStatus: code, code: str(e, "code")}
			}
		})
	}
	wg.Wait()

	ok := 0
	for i, r := range results {
		switch {
		case r == (apiError{}):
			ok++
		case (r.grpcCode == codes.InvalidArgument || r.httpStatus == 400) &&
			(r.code == "amount_too_large" || r.code == "charge_already_refunded"):
		default:
			t.Errorf("refund %d: %+v; want success or amount_too_large/charge_already_refunded", i, r)
		}
	}
	if ok != 10 {
		t.Errorf("%d of %d refunds of 100 on a captured 1000 succeeded; want exactly 10", ok, n)
	}
	checkPayment(t, mustGet(t, ctx, c, p.Id), "succeeded", 1000, 0, 1000, 1000)
	refunds, err := c.ListRefunds(ctx, &pb.ListRefundsRequest{PaymentId: p.Id, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, r := range refunds.Refunds {
		if r.Status != "succeeded" {
			t.Errorf("refund %s is %s; want succeeded", r.Id, r.Status)
		}
		sum += r.Amount
	}
	if len(refunds.Refunds) != 10 || sum != 1000 {
		t.Errorf("%d refunds summing to %d; want 10 summing to 1000", len(refunds.Refunds), sum)
	}
}

func TestConcurrentCreatesWithOneIdempotencyKey(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx := withIdem(withKey(t.Context(), srv.key), "one-key")
	c := srv.payments

	const n = 10
	var wg sync.WaitGroup
	resps := make([]*pb.CreatePaymentResponse, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { resps[i], errs[i] = c.CreatePayment(ctx, visa(1000)) })
	}
	wg.Wait()

	var first *pb.CreatePaymentResponse
	for i := range n {
		if errs[i] != nil {
			if got := grpcError(t, errs[i]); got.grpcCode != codes.Aborted || got.code != "idempotency_key_in_use" || got.errType != "idempotency_error" {
				t.Errorf("call %d: %+v; want success or Aborted idempotency_key_in_use", i, got)
			}
			continue
		}
		if first == nil {
			first = resps[i]
		} else if !proto.Equal(resps[i], first) {
			t.Errorf("call %d answered %v; want the same response as the others, %v", i, resps[i], first)
		}
	}
	if first == nil {
		t.Fatal("no call succeeded")
	}
	list := mustList(t, withKey(t.Context(), srv.key), c, &pb.ListPaymentsRequest{})
	equalIDs(t, "ListPayments after 10 concurrent creates with one key", paymentIDs(list.Payments), first.Payment.Id)

	// Once the first call has finished, every retry replays it.
	again, err := c.CreatePayment(ctx, visa(1000))
	if err != nil || !proto.Equal(again, first) {
		t.Errorf("retry after the race: %v, %v; want %v", again, err, first)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	srv := startServer(t, db)
	key := srv.key
	if key == "" {
		t.Fatal("serve printed no test key on an empty database")
	}
	ctx := withKey(t.Context(), key)
	c := srv.payments

	create1, err := c.CreatePayment(withIdem(ctx, "restart-pay-1"), visa(1000))
	if err != nil {
		t.Fatal(err)
	}
	p2 := mustCreate(t, withIdem(ctx, "restart-pay-2"), c, manual(2500))
	if _, err := c.CapturePayment(withIdem(ctx, "restart-capture-2"), &pb.CapturePaymentRequest{Id: p2.Id}); err != nil {
		t.Fatal(err)
	}
	refReq := &pb.CreateRefundRequest{PaymentId: create1.Payment.Id, Amount: proto.Int64(250)}
	refund1, err := c.CreateRefund(withIdem(ctx, "restart-refund-1"), refReq)
	if err != nil {
		t.Fatal(err)
	}
	restBody := `{"amount":777,"currency":"USD","payment_method":"pm_card_visa"}`
	code, rest1, _ := srv.restDo(t, "POST", "/v1/payments", key, "restart-rest-1", restBody)
	if code != 200 {
		t.Fatalf("REST create: %d %v", code, rest1)
	}
	before := mustList(t, ctx, c, &pb.ListPaymentsRequest{})
	srv.stop()

	srv = startServer(t, db)
	if srv.key != "" {
		t.Errorf("serve printed a new key on a database that has an account")
	}
	c = srv.payments
	after := mustList(t, ctx, c, &pb.ListPaymentsRequest{})
	if !proto.Equal(before, after) {
		t.Errorf("ListPayments after restart:\n %v\nwant\n %v", after, before)
	}
	checkPayment(t, mustGet(t, ctx, c, create1.Payment.Id), "succeeded", 1000, 0, 1000, 250)
	checkPayment(t, mustGet(t, ctx, c, p2.Id), "succeeded", 2500, 0, 2500, 0)
	got, err := c.GetRefund(ctx, &pb.GetRefundRequest{Id: refund1.Refund.Id})
	if err != nil {
		t.Fatalf("GetRefund after restart: %v", err)
	}
	sameObject(t, "refund after restart", got.Refund, refund1.Refund)
	if lr, err := c.ListRefunds(ctx, &pb.ListRefundsRequest{PaymentId: create1.Payment.Id}); err != nil || len(lr.Refunds) != 1 {
		t.Errorf("ListRefunds after restart: %v, %v; want one refund", lr, err)
	}

	// Replays after the restart return the stored responses and create nothing.
	replay1, err := c.CreatePayment(withIdem(ctx, "restart-pay-1"), visa(1000))
	if err != nil || !proto.Equal(replay1, create1) {
		t.Errorf("CreatePayment replay after restart: %v, %v; want the stored %v", replay1, err, create1)
	}
	replayRefund, err := c.CreateRefund(withIdem(ctx, "restart-refund-1"), refReq)
	if err != nil || !proto.Equal(replayRefund, refund1) {
		t.Errorf("CreateRefund replay after restart: %v, %v; want the stored %v", replayRefund, err, refund1)
	}
	code, rest2, _ := srv.restDo(t, "POST", "/v1/payments", key, "restart-rest-1", restBody)
	if code != 200 || !reflect.DeepEqual(rest1, rest2) {
		t.Errorf("REST replay after restart: %d %v; want %v", code, rest2, rest1)
	}
	if _, err := c.CreatePayment(withIdem(ctx, "restart-pay-1"), visa(1001)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("reused key with another body after restart: %v; want InvalidArgument (idempotency_key_reused)", err)
	}
	final := mustList(t, ctx, c, &pb.ListPaymentsRequest{})
	if len(final.Payments) != 3 {
		t.Errorf("ListPayments after replays has %d payments; want 3: %v", len(final.Payments), paymentIDs(final.Payments))
	}
	checkPayment(t, mustGet(t, ctx, c, create1.Payment.Id), "succeeded", 1000, 0, 1000, 250)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "--rate-limit", "1") // one call per second, a burst of two
	ctx := withKey(t.Context(), srv.key)

	var limited error
	for range 10 {
		if _, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{}); err != nil {
			limited = err
			break
		}
	}
	got := grpcError(t, limited)
	if want := (apiError{grpcCode: codes.ResourceExhausted, errType: "rate_limit_error", code: "rate_limited"}); got != want {
		t.Errorf("gRPC: %+v; want %+v", got, want)
	}
	hasRetry := false
	for _, d := range status.Convert(limited).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay.AsDuration() > 0 {
			hasRetry = true
		}
	}
	if !hasRetry {
		t.Errorf("rate-limited gRPC error has no RetryInfo with a delay")
	}

	code, body, hdr := srv.restDo(t, "GET", "/v1/payments", srv.key, "", "")
	if got := restError(t, code, body); got != (apiError{httpStatus: 429, errType: "rate_limit_error", code: "rate_limited"}) {
		t.Errorf("REST: %+v; want 429 rate_limit_error rate_limited", got)
	}
	if ra := hdr.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("429 has Retry-After %q; want a number of seconds ≥ 1", ra)
	}

	// The limit is per key, and status needs no key.
	otherKey, _ := createKey(t, srv.db, "test", "read", "")
	if _, err := srv.payments.ListPayments(withKey(t.Context(), otherKey), &pb.ListPaymentsRequest{}); err != nil {
		t.Errorf("another key is limited too: %v", err)
	}
	for range 5 {
		if _, err := srv.status.GetStatus(t.Context(), &pb.GetStatusRequest{}); err != nil {
			t.Fatalf("GetStatus is rate limited: %v", err)
		}
	}
}

// TestCreatedAtIsStable checks that a payment's timestamps are the same in
// the response of the call that created it and when it is read back.
func TestCreatedAtIsStable(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	c := srv.payments

	p := mustCreate(t, ctx, c, manual(1000))
	got := mustGet(t, ctx, c, p.Id)
	for _, ts := range []struct {
		name          string
		created, read *timestamppb.Timestamp
	}{{"created_at", p.CreatedAt, got.CreatedAt}, {"updated_at", p.UpdatedAt, got.UpdatedAt}} {
		if !proto.Equal(ts.created, ts.read) {
			t.Errorf("payment %s: CreatePayment said %s %s, GetPayment says %s; want the same",
				p.Id, ts.name, ts.created.AsTime().Format(time.RFC3339Nano), ts.read.AsTime().Format(time.RFC3339Nano))
		}
	}
	capResp, err := c.CapturePayment(ctx, &pb.CapturePaymentRequest{Id: p.Id})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, ctx, c, p.Id); !proto.Equal(capResp.Payment.UpdatedAt, got.UpdatedAt) {
		t.Errorf("payment %s: CapturePayment said updated_at %s, GetPayment says %s; want the same", p.Id,
			capResp.Payment.UpdatedAt.AsTime().Format(time.RFC3339Nano), got.UpdatedAt.AsTime().Format(time.RFC3339Nano))
	}
}

// TestCreatedFiltersMatchCreatedAt checks ListPayments' created_after ("at
// or after") and created_before ("before") against the created_at of every
// payment, as the API reports it, taking each payment's created_at in turn
// as the bound. Payments are created concurrently, as in production.
func TestCreatedFiltersMatchCreatedAt(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	c := srv.payments

	for range 4 {
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				if _, err := c.CreatePayment(ctx, visa(1000+int64(i))); err != nil {
					t.Errorf("CreatePayment: %v", err)
				}
			})
		}
		wg.Wait()
	}
	all := mustList(t, ctx, c, &pb.ListPaymentsRequest{PageSize: 100}).Payments
	if len(all) != 80 {
		t.Fatalf("ListPayments has %d payments; want 80", len(all))
	}
	created := map[string]time.Time{}
	for _, p := range all {
		created[p.Id] = p.CreatedAt.AsTime()
	}
	// check reports the payments a filter lists wrongly, with their created_at.
	check := func(filter string, bound time.Time, got []*pb.Payment, want func(time.Time) bool) {
		t.Helper()
		listed := map[string]bool{}
		for _, p := range got {
			listed[p.Id] = true
		}
		var wrong []string
		for _, p := range all {
			if listed[p.Id] != want(created[p.Id]) {
				wrong = append(wrong, fmt.Sprintf("%s created_at %s listed=%v", p.Id, created[p.Id].Format(time.RFC3339Nano), listed[p.Id]))
			}
		}
		if len(wrong) > 0 {
			t.Errorf("%s=%s lists %d payments wrongly, e.g.\n  %s", filter, bound.Format(time.RFC3339Nano), len(wrong),
				strings.Join(wrong[:min(len(wrong), 3)], "\n  "))
		}
	}
	for _, p := range all {
		bound := created[p.Id]
		check("created_after", bound, mustList(t, ctx, c, &pb.ListPaymentsRequest{PageSize: 100, CreatedAfter: p.CreatedAt}).Payments,
			func(at time.Time) bool { return !at.Before(bound) })
		check("created_before", bound, mustList(t, ctx, c, &pb.ListPaymentsRequest{PageSize: 100, CreatedBefore: p.CreatedAt}).Payments,
			func(at time.Time) bool { return at.Before(bound) })
		if t.Failed() {
			return // one payment shows it; the rest would repeat it
		}
	}
}

// TestListPagesFitTheMessageLimit: payments whose fields are all near their
// limits (50 metadata entries of 500 four-byte characters each: over 100 KB
// a payment) are listed 100 to a page without passing the gRPC message
// limit (nor the 4 MiB a gRPC client receives by default): the page is cut
// short and its next_page_token continues, over gRPC and REST, for payments
// and their events, and every payment is listed exactly once.
func TestListPagesFitTheMessageLimit(t *testing.T) {
	srv := newServer(t, "--rate-limit", "-1")
	ctx := withKey(t.Context(), srv.key)
	const n = 80
	md := map[string]string{}
	for i := range 50 {
		md[fmt.Sprintf("k%02d%s", i, strings.Repeat("😀", 37))] = strings.Repeat("😀", 500)
	}
	for i := range n {
		req := visa(1000)
		req.Metadata, req.Description = md, strings.Repeat("😀", 1000)
		if _, err := srv.payments.CreatePayment(withIdem(ctx, fmt.Sprint("fat-", i)), req); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	seen := map[string]int{}
	token, pages := "", 0
	for {
		resp, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{PageSize: 100, PageToken: token},
			grpc.MaxCallRecvMsgSize(4<<20)) // grpc-go's default
		if err != nil {
			t.Fatalf("ListPayments page %d: %v", pages+1, err)
		}
		pages++
		for _, p := range resp.Payments {
			seen[p.Id]++
		}
		if token = resp.NextPageToken; token == "" || pages > n {
			break
		}
	}
	if len(seen) != n || pages < 2 {
		t.Errorf("listed %d payments in %d pages; want all %d, in more than one page", len(seen), pages, n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("payment %s listed %d times", id, c)
		}
	}
	for _, path := range []string{"/v1/payments?page_size=100", "/v1/events?page_size=100"} {
		code, body, _ := srv.restDo(t, "GET", path, srv.key, "", "")
		if code != http.StatusOK || body["next_page_token"] == "" {
			t.Errorf("GET %s: %d %.300v; want 200 with a next_page_token", path, code, body)
		}
	}
}
