package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
	"github.com/paymentd/paymentd/providers/alppay/alppayfake"
	"github.com/paymentd/paymentd/providers/aslan/aslanfake"
	"github.com/paymentd/paymentd/providers/aspayds/aspaydsfake"
	"github.com/paymentd/paymentd/providers/asyncpay"
	"github.com/paymentd/paymentd/providers/asyncpay/asyncpayfake"
)

// The end-to-end provider tests run paymentd with a paymentd.yaml written
// in t.TempDir() whose connections point at the in-repo fake providers,
// with credentials in environment variables, and drive it through its API
// with a live key.

// Secrets the tests configure: every one must stay out of logs and answers.
const (
	pvAslanKey      = "ak_live_pvSECRETaslan000000000000000"
	pvAikdataToken  = "pvSECRETaikdataToken"
	pvAspaydsKey    = "pvSECRETaspaydsKey"
	pvAspaydsSecret = "pvSECRETaspaydsSecret"
	pvAsyncpayKey   = "pvSECRETasyncpayKey"
	pvAlppayKey     = "pvSECRETalppayKey"
	pvAlppaySecret  = "pvSECRETalppayHmac"
)

var pvEnv = map[string]string{
	"ASLAN_LIVE_KEY": pvAslanKey, "AIKDATA_TOKEN": pvAikdataToken, "ASPAYDS_KEY": pvAspaydsKey,
	"ASPAYDS_SECRET": pvAspaydsSecret, "ASYNCPAY_SECRET_KEY": pvAsyncpayKey, "ALPPAY_API_KEY": pvAlppayKey,
	"ALPPAY_HMAC_SECRET": pvAlppaySecret,
}

// pvServer is a paymentd started with a provider configuration.
type pvServer struct {
	*testServer
	log     *syncBuffer // everything serve wrote to stderr
	liveKey string
	config  string // the path of its paymentd.yaml
}

// pvStart writes config into a fresh directory and runs `paymentd serve
// --config …` with env as its whole environment; it creates a live key.
func pvStart(t *testing.T, config string, env map[string]string, extraArgs ...string) *pvServer {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "paymentd.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	db := testDB(t)
	args := append([]string{"serve", "--db", db, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--rate-limit", "-1", "--log-level", "debug", "--config", cfgPath}, extraArgs...)
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, getenv, stdoutW, stderr)
		stdoutW.Close()
		done <- err
	}()
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				ready <- [2]string{m[1], m[2]}
			}
		}
		_, _ = io.Copy(io.Discard, stdoutR)
	}()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve returned before serving: %v\nstderr:\n%s", err, stderr)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("serve did not start within 15s\nstderr:\n%s", stderr)
	}
	conn, err := grpc.NewClient(addrs[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &testServer{db: db, conn: conn, baseURL: "http://" + addrs[1],
		payments: pb.NewPaymentsServiceClient(conn), status: pb.NewStatusServiceClient(conn)}
	s.stopFn = func() {
		conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v after its context was canceled", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not return within 20s of its context being canceled")
		}
		checkLogAttribution(t, stderr.String())
		if t.Failed() {
			lines := strings.SplitAfter(stderr.String(), "\n")
			t.Logf("server log, last lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], ""))
		}
	}
	t.Cleanup(s.stop)
	waitServing(t, conn)
	live, _ := createKey(t, db, "live", "read,write,payouts", "")
	return &pvServer{testServer: s, log: stderr, liveKey: live, config: cfgPath}
}

// pvClosedAddr returns a loopback address nobody listens on.
func pvClosedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func pvJSON(t *testing.T, v map[string]any, path ...string) any {
	t.Helper()
	var cur any = v
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%v has no %s", cur, strings.Join(path, "."))
		}
		cur = m[p]
	}
	return cur
}

// pvNumber reads a JSON integer that protojson may write as a string (int64).
func pvNumber(t *testing.T, v any) int64 {
	t.Helper()
	switch n := v.(type) {
	case float64:
		return int64(n)
	case string:
		var x int64
		if _, err := fmt.Sscan(n, &x); err != nil {
			t.Fatalf("%q is not a number", n)
		}
		return x
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}

// pvCheckStatusComponent waits for /v1/status to list the connection with a
// state and a response time.
func pvCheckStatusComponent(t *testing.T, s *pvServer, name, wantState string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := s.restDo(t, "GET", "/v1/status", "", "", "")
		comps, _ := body["components"].(map[string]any)
		c, _ := comps["provider:"+name].(map[string]any)
		if code == 200 && c != nil && c["status"] == wantState && pvNumber(t, c["response_time_ms"]) >= 0 &&
			!strings.Contains(fmt.Sprint(c["message"]), "not called yet") {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/status: %d %v; want component provider:%s %s with a response time", code, comps, name, wantState)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestProviderAslanEndToEnd(t *testing.T) {
	fake := aslanfake.New(pvAslanKey)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - name: aslan-live
    provider: aslan
    mode: live
    base_url: `+fake.URL()+`
    credentials: {api_key: ASLAN_LIVE_KEY}
routes:
  - {operation: payments, mode: live, currency: USD, connections: [aslan-live]}
`, pvEnv)
	// Automatic capture: authorize + confirm.
	code, p, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "aslan-1", `{"amount":2500,"currency":"USD","payment_method":"pm_agent","description":"AWS credits"}`)
	if code != 200 || p["status"] != "succeeded" || p["provider"] != "aslan-live" || p["livemode"] != true || pvNumber(t, p["amount_captured"]) != 2500 {
		t.Fatalf("live payment through Aslan: %d %v", code, p)
	}
	// Manual capture, then a partial refund, which must name Aslan's payment id.
	code, m, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "aslan-2", `{"amount":4000,"currency":"USD","payment_method":"pm_agent","capture_method":"manual"}`)
	if code != 200 || m["status"] != "requires_capture" {
		t.Fatalf("manual payment: %d %v", code, m)
	}
	code, m, _ = s.restDo(t, "POST", "/v1/payments/"+m["id"].(string)+"/capture", s.liveKey, "aslan-3", `{}`)
	if code != 200 || m["status"] != "succeeded" {
		t.Fatalf("capture: %d %v", code, m)
	}
	code, r, _ := s.restDo(t, "POST", "/v1/refunds", s.liveKey, "aslan-4", `{"payment_id":"`+m["id"].(string)+`","amount":1500}`)
	if code != 200 || r["status"] != "succeeded" || pvNumber(t, r["amount"]) != 1500 {
		t.Fatalf("partial refund: %d %v", code, r)
	}
	var refundedPayment string
	for _, req := range fake.Requests() {
		if req.Path == "/api/v1/refund" {
			var b struct {
				PaymentID string `json:"paymentId"`
			}
			_ = json.Unmarshal(req.Body, &b)
			refundedPayment = b.PaymentID
		}
	}
	if !strings.HasPrefix(refundedPayment, "pay_") || fake.Refunded(refundedPayment) != 1500 {
		t.Errorf("the refund named %q (refunded %d); want the pay_ id Aslan's confirm answered", refundedPayment, fake.Refunded(refundedPayment))
	}
	// A decline is a failed payment with Aslan's code, answered 402.
	fake.DeclineNext(1)
	code, body, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "aslan-5", `{"amount":2500,"currency":"USD","payment_method":"pm_agent"}`)
	if e := restError(t, code, body); code != 402 || e.code != "card_declined" {
		t.Errorf("declined: %d %+v; want 402 card_declined", code, e)
	}
	// EUR has no route in live mode.
	code, body, _ = s.restDo(t, "POST", "/v1/payments", s.liveKey, "aslan-6", `{"amount":2500,"currency":"EUR","payment_method":"pm_agent"}`)
	if e := restError(t, code, body); code != 400 || e.code != "live_mode_not_configured" {
		t.Errorf("EUR: %d %+v; want 400 live_mode_not_configured", code, e)
	}
	// The sandbox still serves test keys.
	code, body, _ = s.restDo(t, "POST", "/v1/payments", createKeySecret(t, s.db, "test"), "aslan-7", `{"amount":2500,"currency":"USD","payment_method":"pm_card_visa"}`)
	if code != 200 || body["provider"] != "sandbox" {
		t.Errorf("test key: %d %v; want the sandbox", code, body)
	}
	pvCheckStatusComponent(t, s, "aslan-live", "operational")
}

func createKeySecret(t *testing.T, db, mode string) string {
	t.Helper()
	secret, _ := createKey(t, db, mode, "read,write", "")
	return secret
}

func TestProviderAikdataEndToEnd(t *testing.T) {
	fake := aikdatafake.New(pvAikdataToken)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '`+fake.URL()+`', credentials: {token: AIKDATA_TOKEN}}
routes:
  - {operation: payments, mode: live, currency: "*", connections: [aikdata-live]}
`, pvEnv)
	ctx := withKey(context.Background(), s.liveKey)
	p, err := s.payments.CreatePayment(withIdem(ctx, "aik-1"), &pb.CreatePaymentRequest{Amount: 1500, Currency: "EUR", PaymentMethod: "pm_x"})
	if err != nil || p.Payment.Status != "succeeded" || p.Payment.Provider != "aikdata-live" || p.Payment.AmountCaptured != 1500 {
		t.Fatalf("CreatePayment through aikdata: %v, %v", p, err)
	}
	if md := fake.Requests()[len(fake.Requests())-1]; md.Header.Get("Authorization") != "Bearer "+pvAikdataToken {
		t.Errorf("aikdata got Authorization %q", md.Header.Get("Authorization"))
	}
	for i, amt := range []int64{500, 1000} {
		r, err := s.payments.CreateRefund(withIdem(ctx, fmt.Sprint("aik-r", i)), &pb.CreateRefundRequest{PaymentId: p.Payment.Id, Amount: &amt})
		if err != nil || r.Refund.Status != "succeeded" {
			t.Fatalf("refund %d: %v, %v", amt, r, err)
		}
	}
	got, _ := s.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: p.Payment.Id})
	if got.Payment.AmountRefunded != 1500 {
		t.Errorf("refunded %d; want 1500", got.Payment.AmountRefunded)
	}
	// aikdata charges capture at once: a manual capture is refused before any charge.
	before := len(fake.Requests())
	_, err = s.payments.CreatePayment(withIdem(ctx, "aik-2"), &pb.CreatePaymentRequest{Amount: 1500, Currency: "EUR", PaymentMethod: "pm_x", CaptureMethod: "manual"})
	if e := grpcError(t, err); e.code != "capture_method_not_supported" || e.param != "capture_method" {
		t.Errorf("manual capture: %+v", e)
	}
	if len(fake.Requests()) != before {
		t.Error("a refused manual capture reached aikdata")
	}
	fake.DeclineNext(1)
	_, err = s.payments.CreatePayment(withIdem(ctx, "aik-3"), &pb.CreatePaymentRequest{Amount: 1500, Currency: "EUR", PaymentMethod: "pm_x"})
	if e := grpcError(t, err); e.code != "card_declined" {
		t.Errorf("decline: %+v; want card_declined", e)
	}
	pvCheckStatusComponent(t, s, "aikdata-live", "operational")
}

func TestProviderAsyncpayEndToEnd(t *testing.T) {
	paths := asyncpay.Paths{CreatePayment: "/v1/charges", GetPayment: "/v1/charges/{id}"}
	fake := asyncpayfake.New(pvAsyncpayKey, paths)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - name: asyncpay-live
    provider: asyncpay
    mode: live
    base_url: `+fake.URL()+`
    credentials: {secret_key: ASYNCPAY_SECRET_KEY}
    options: {path_create_payment: /v1/charges, path_get_payment: "/v1/charges/{id}"}
routes:
  - {operation: payments, mode: live, currency: NGN, connections: [asyncpay-live]}
`, pvEnv)
	code, p, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "ap-1", `{"amount":500000,"currency":"NGN","payment_method":"card"}`)
	if code != 200 || p["status"] != "succeeded" || p["provider"] != "asyncpay-live" {
		t.Fatalf("payment through Asyncpay: %d %v", code, p)
	}
	if reqs := fake.Requests(); reqs[len(reqs)-1].Path != "/v1/charges" {
		t.Errorf("Asyncpay was called at %s; want the configured /v1/charges", reqs[len(reqs)-1].Path)
	}
	code, r, _ := s.restDo(t, "POST", "/v1/refunds", s.liveKey, "ap-2", `{"payment_id":"`+p["id"].(string)+`","amount":200000}`)
	if code != 200 || r["status"] != "succeeded" {
		t.Fatalf("partial refund: %d %v", code, r)
	}
	fake.DeclineNext(1)
	code, body, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "ap-3", `{"amount":500000,"currency":"NGN","payment_method":"card"}`)
	if e := restError(t, code, body); code != 402 {
		t.Errorf("decline: %d %+v; want 402", code, e)
	}
	pvCheckStatusComponent(t, s, "asyncpay-live", "operational")
}

func TestProviderAspaydsEndToEnd(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - name: aspayds-live
    provider: aspayds
    mode: live
    base_url: `+fake.URL()+`
    credentials: {api_key: ASPAYDS_KEY, api_secret: ASPAYDS_SECRET}
    options: {currency: BDT}
routes:
  - {operation: invoices, mode: live, currency: BDT, connections: [aspayds-live]}
`, pvEnv)
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "as-1",
		`{"amount":10000,"currency":"BDT","customer":{"name":"John Doe"},"transaction_reference":"TRX123456","callback_url":"https://shop.example/callback"}`)
	if code != 200 || inv["provider"] != "aspayds-live" || inv["status"] != "open" ||
		!strings.HasPrefix(inv["payment_url"].(string), fake.URL()+"/methods/ATINV") {
		t.Fatalf("live invoice through aspayds: %d %v; want aspayds' payment_url", code, inv)
	}
	var sent map[string]any
	_ = json.Unmarshal(fake.Requests()[len(fake.Requests())-1].Body, &sent)
	if sent["transaction_reference"] != "TRX123456" || fmt.Sprint(sent["amount"]) != "100" || sent["customer_name"] != "John Doe" {
		t.Errorf("aspayds got %v; want reference TRX123456, amount 100 (taka), customer_name", sent)
	}
	// The customer pays at aspayds in two parts; paymentd reads aspayds' state.
	if err := fake.PayInvoice("TRX123456", 4000); err != nil {
		t.Fatal(err)
	}
	code, got, _ := s.restDo(t, "GET", "/v1/invoices/TRX123456", s.liveKey, "", "")
	if code != 200 || got["status"] != "partially_paid" || pvNumber(t, got["amount_paid"]) != 4000 {
		t.Fatalf("after 40 of 100 taka: %d %v", code, got)
	}
	_ = fake.PayInvoice("TRX123456", 6000)
	code, got, _ = s.restDo(t, "GET", "/v1/invoices/"+inv["id"].(string), s.liveKey, "", "")
	if code != 200 || got["status"] != "paid" || pvNumber(t, got["amount_paid"]) != 10000 {
		t.Fatalf("after 100 of 100 taka: %d %v", code, got)
	}
	// aspayds' limit on references is checked before any call.
	before := len(fake.Requests())
	code, body, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "as-2",
		`{"amount":10000,"currency":"BDT","customer":{"name":"John Doe"},"transaction_reference":"REF-LONGER-THAN-20-CHARS","callback_url":"https://shop.example/callback"}`)
	if e := restError(t, code, body); code != 400 || e.param != "transaction_reference" || e.code != "string_too_long" {
		t.Errorf("a 24-character reference: %d %+v; want 400 naming transaction_reference", code, e)
	}
	if len(fake.Requests()) != before {
		t.Error("an invoice aspayds would refuse was sent to it")
	}
	pvCheckStatusComponent(t, s, "aspayds-live", "operational")
}

// pvStartAlppay starts a server whose live USDT invoices go to an alppay
// fake.
func pvStartAlppay(t *testing.T) (*alppayfake.Server, *pvServer) {
	fake := alppayfake.New(pvAlppayKey, pvAlppaySecret)
	t.Cleanup(fake.Close)
	s := pvStart(t, `
connections:
  - {name: alppay-live, provider: alppay, mode: live, base_url: '`+fake.URL()+`', credentials: {api_key: ALPPAY_API_KEY, hmac_secret: ALPPAY_HMAC_SECRET}}
routes:
  - {operation: invoices, mode: live, currency: USDT, connections: [alppay-live]}
`, pvEnv)
	return fake, s
}

func TestProviderAlppayEndToEnd(t *testing.T) {
	fake, s := pvStartAlppay(t)
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "alp-1",
		`{"amount":1000000000,"currency":"USDT","network":"tron","customer":{"id":"12312312","name":"John","email":"john@example.com"},"transaction_reference":"INV-001","callback_url":"https://your-shop.com/orders/40113049"}`)
	if code != 200 || inv["provider"] != "alppay-live" || inv["deposit_address"] == "" ||
		pvNumber(t, inv["confirmations_required"]) != alppayfake.ConfirmsNeeded || !strings.Contains(inv["payment_url"].(string), "/en/invoice?id=") {
		t.Fatalf("live crypto invoice through alppay: %d %v", code, inv)
	}
	req := fake.Requests()[len(fake.Requests())-1]
	var sent map[string]any
	_ = json.Unmarshal(req.Body, &sent)
	if sent["amount"] != "1000.00" || sent["invoice"] != inv["id"] || sent["clientId"] != "12312312" {
		t.Errorf("alppay got %v; want amount \"1000.00\", our invoice id and clientId", sent)
	}
	ref := strings.TrimPrefix(inv["payment_url"].(string)[strings.Index(inv["payment_url"].(string), "id=")+3:], "")
	if err := fake.PayInvoice(ref, 20_000000); err != nil {
		t.Fatal(err)
	}
	code, got, _ := s.restDo(t, "GET", "/v1/invoices/INV-001", s.liveKey, "", "")
	if code != 200 || got["status"] != "partially_paid" || pvNumber(t, got["amount_paid"]) != 20_000000 || len(got["receipts"].([]any)) != 1 {
		t.Fatalf("after a 20 USDT receipt: %d %v", code, got)
	}
	_ = fake.PayInvoice(ref, 980_000000)
	code, got, _ = s.restDo(t, "GET", "/v1/invoices/INV-001", s.liveKey, "", "")
	if code != 200 || got["status"] != "paid" || pvNumber(t, got["amount_paid"]) != 1000_000000 || len(got["receipts"].([]any)) != 2 {
		t.Fatalf("after receipts covering 1000 USDT: %d %v", code, got)
	}
	// Reading again records nothing twice.
	_, again, _ := s.restDo(t, "GET", "/v1/invoices/INV-001", s.liveKey, "", "")
	if pvNumber(t, again["amount_paid"]) != 1000_000000 {
		t.Errorf("a second read changed amount_paid to %v", again["amount_paid"])
	}
}

// TestProviderAlppayExpiredWithUnconfirmedTransfer: alppay lists a transfer
// it has not confirmed (status OPEN, as in its document's example), then
// expires the payment. paymentd shows the transfer, does not count it, and
// opens an operator item: the money may be at alppay, and nobody asks about
// an invoice that is no longer payable.
func TestProviderAlppayExpiredWithUnconfirmedTransfer(t *testing.T) {
	fake, s := pvStartAlppay(t)
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "alp-u1",
		`{"amount":50000000,"currency":"USDT","network":"tron","customer":{"id":"7","name":"Ann"},"transaction_reference":"INV-U1","callback_url":"https://shop.example/o/1"}`)
	if code != 200 {
		t.Fatalf("create: %d %v", code, inv)
	}
	url := inv["payment_url"].(string)
	ref := url[strings.Index(url, "id=")+3:]
	if err := fake.ReceiveUnconfirmed(ref, 50_000000); err != nil {
		t.Fatal(err)
	}
	code, got, _ := s.restDo(t, "GET", "/v1/invoices/INV-U1", s.liveKey, "", "")
	rs, _ := got["receipts"].([]any)
	if code != 200 || got["status"] == "paid" || pvNumber(t, got["amount_paid"]) != 0 || len(rs) != 1 {
		t.Fatalf("after an unconfirmed transfer of the whole amount: %d %v; want it listed, not counted", code, got)
	}
	fake.Expire(ref)
	code, got, _ = s.restDo(t, "GET", "/v1/invoices/INV-U1", s.liveKey, "", "")
	if code != 200 || got["status"] != "expired" || pvNumber(t, got["amount_paid"]) != 0 {
		t.Fatalf("after alppay expired it: %d %v; want expired with nothing counted", code, got)
	}
	var out strings.Builder
	err := run(context.Background(), []string{"operator-items", "--db", s.db}, noEnv, &out, &out)
	if err == nil || !strings.Contains(out.String(), "invoice_ended_with_unconfirmed_transfers") || !strings.Contains(out.String(), inv["id"].(string)) {
		t.Fatalf("paymentd operator-items: %v\n%s\nwant invoice_ended_with_unconfirmed_transfers for %s", err, out.String(), inv["id"])
	}
	// alppay confirms the transfer after all: paymentd counts it (the
	// invoice stays expired, for the merchant to honour or refund) and the
	// item resolves itself.
	if err := fake.ConfirmReceived(ref); err != nil {
		t.Fatal(err)
	}
	code, got, _ = s.restDo(t, "GET", "/v1/invoices/INV-U1", s.liveKey, "", "")
	if code != 200 || got["status"] != "expired" || pvNumber(t, got["amount_paid"]) != 50_000000 {
		t.Fatalf("after alppay confirmed the transfer: %d %v; want expired with 50 USDT counted", code, got)
	}
	out.Reset()
	if err := run(context.Background(), []string{"operator-items", "--db", s.db}, noEnv, &out, &out); err != nil {
		t.Errorf("paymentd operator-items after the transfer was confirmed: %v\n%s\nwant none open", err, out.String())
	}
	pvCheckLedger(t, s.db)
}

// TestProviderAlppayUnconfirmedTransferAfterPartialPayment: alppay has
// counted a first transfer (status PARTIALLY_PAID) and then lists a second
// one it has not confirmed; its status stays PARTIALLY_PAID and its books
// hold only the first. paymentd must not call the invoice paid (nor credit
// the second transfer) while alppay says it is not paid; once alppay
// confirms the transfer and says PAID, the invoice is paid.
func TestProviderAlppayUnconfirmedTransferAfterPartialPayment(t *testing.T) {
	fake, s := pvStartAlppay(t)
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "alp-p1",
		`{"amount":25000000,"currency":"USDT","network":"tron","customer":{"id":"8","name":"Ann"},"transaction_reference":"INV-P1","callback_url":"https://shop.example/o/2"}`)
	if code != 200 {
		t.Fatalf("create: %d %v", code, inv)
	}
	url := inv["payment_url"].(string)
	ref := url[strings.Index(url, "id=")+3:]
	if err := fake.PayInvoice(ref, 10_000000); err != nil {
		t.Fatal(err)
	}
	code, got, _ := s.restDo(t, "GET", "/v1/invoices/INV-P1", s.liveKey, "", "")
	if code != 200 || got["status"] != "partially_paid" || pvNumber(t, got["amount_paid"]) != 10_000000 {
		t.Fatalf("after a confirmed 10 USDT transfer: %d %v", code, got)
	}
	if err := fake.ReceiveUnconfirmed(ref, 15_000000); err != nil {
		t.Fatal(err)
	}
	book, _ := fake.BookFor(ref)
	code, got, _ = s.restDo(t, "GET", "/v1/invoices/INV-P1", s.liveKey, "", "")
	if code != 200 || got["status"] != "partially_paid" || pvNumber(t, got["amount_paid"]) != book.Received {
		t.Fatalf("after an unconfirmed 15 USDT transfer alppay does not count (its status %s, received %d): %d status %v amount_paid %v; want partially_paid with amount_paid %d",
			book.Status, book.Received, code, got["status"], got["amount_paid"], book.Received)
	}
	if err := fake.ConfirmReceived(ref); err != nil {
		t.Fatal(err)
	}
	code, got, _ = s.restDo(t, "GET", "/v1/invoices/INV-P1", s.liveKey, "", "")
	if code != 200 || got["status"] != "paid" || pvNumber(t, got["amount_paid"]) != 25_000000 {
		t.Fatalf("after alppay confirmed the second transfer: %d %v; want paid with 25 USDT", code, got)
	}

	// The other order: the unconfirmed transfer is listed first, then a
	// confirmed one makes alppay say PARTIALLY_PAID. paymentd may count less
	// than alppay, never more, and never calls it paid.
	code, inv, _ = s.restDo(t, "POST", "/v1/invoices", s.liveKey, "alp-p2",
		`{"amount":25000000,"currency":"USDT","network":"tron","customer":{"id":"9","name":"Bo"},"transaction_reference":"INV-P2","callback_url":"https://shop.example/o/3"}`)
	if code != 200 {
		t.Fatalf("create: %d %v", code, inv)
	}
	url = inv["payment_url"].(string)
	ref = url[strings.Index(url, "id=")+3:]
	if err := fake.ReceiveUnconfirmed(ref, 10_000000); err != nil {
		t.Fatal(err)
	}
	s.restDo(t, "GET", "/v1/invoices/INV-P2", s.liveKey, "", "")
	if err := fake.PayInvoice(ref, 15_000000); err != nil {
		t.Fatal(err)
	}
	book, _ = fake.BookFor(ref)
	code, got, _ = s.restDo(t, "GET", "/v1/invoices/INV-P2", s.liveKey, "", "")
	if code != 200 || got["status"] == "paid" || pvNumber(t, got["amount_paid"]) > book.Received {
		t.Fatalf("unconfirmed 10 then confirmed 15 USDT (alppay %s, received %d): %d status %v amount_paid %v; want not paid, at most %d counted",
			book.Status, book.Received, code, got["status"], got["amount_paid"], book.Received)
	}
	if err := fake.ConfirmReceived(ref); err != nil {
		t.Fatal(err)
	}
	code, got, _ = s.restDo(t, "GET", "/v1/invoices/INV-P2", s.liveKey, "", "")
	if code != 200 || got["status"] != "paid" || pvNumber(t, got["amount_paid"]) != 25_000000 {
		t.Fatalf("after alppay confirmed both transfers: %d %v; want paid with 25 USDT", code, got)
	}
	pvCheckLedger(t, s.db)
}

// TestProviderRoutingFallback: the first connection refuses connections
// (nobody listens on its port), so the payment goes to the second; a
// connection that times out, by contrast, is never fallen back from.
func TestProviderRoutingFallback(t *testing.T) {
	aslanFake := aslanfake.New(pvAslanKey)
	defer aslanFake.Close()
	slow := aikdatafake.New(pvAikdataToken)
	defer slow.Close()
	s := pvStart(t, `
connections:
  - {name: aikdata-down, provider: aikdata, mode: live, base_url: 'http://`+pvClosedAddr(t)+`', credentials: {token: AIKDATA_TOKEN}, max_attempts: 2}
  - {name: aikdata-slow, provider: aikdata, mode: live, base_url: '`+slow.URL()+`', credentials: {token: AIKDATA_TOKEN}}
  - {name: aslan-live, provider: aslan, mode: live, base_url: '`+aslanFake.URL()+`', credentials: {api_key: ASLAN_LIVE_KEY}}
routes:
  - {operation: payments, mode: live, currency: USD, connections: [aikdata-down, aslan-live]}
  - {operation: payments, mode: live, currency: "*", connections: [aikdata-slow, aslan-live]}
`, pvEnv, "--provider-timeout", "2s")
	code, p, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "fb-1", `{"amount":2500,"currency":"USD","payment_method":"pm_x"}`)
	if code != 200 || p["status"] != "succeeded" || p["provider"] != "aslan-live" {
		t.Fatalf("with the first connection refusing: %d %v; want succeeded through aslan-live", code, p)
	}
	// The refusing connection shows as degraded on /v1/status.
	c := pvCheckStatusComponent(t, s, "aikdata-down", "degraded")
	if !strings.Contains(fmt.Sprint(c["message"]), "connect") {
		t.Errorf("aikdata-down component %v; want a message about connecting", c)
	}
	// A timeout is ambiguous: the payment is unknown, never retried elsewhere.
	slow.SetDelay(5 * time.Second)
	before := len(aslanFake.Requests())
	code, p, _ = s.restDo(t, "POST", "/v1/payments", s.liveKey, "fb-2", `{"amount":2500,"currency":"EUR","payment_method":"pm_x"}`)
	if code != 200 || p["status"] != "unknown" || p["provider"] != "aikdata-slow" {
		t.Fatalf("with the first connection timing out: %d %v; want unknown at aikdata-slow", code, p)
	}
	if n := len(aslanFake.Requests()); n != before {
		t.Errorf("the second connection got %d requests after an ambiguous timeout; want none", n-before)
	}
}

// TestProviderCredentialsNeverLogged runs all five providers, including
// refused credentials and failures, with debug logging, and searches the
// log, the status page and the answers for every secret.
func TestProviderCredentialsNeverLogged(t *testing.T) {
	aslanFake := aslanfake.New(pvAslanKey)
	defer aslanFake.Close()
	aikFake := aikdatafake.New("another-token") // refuses ours: 401
	defer aikFake.Close()
	aspFake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer aspFake.Close()
	apFake := asyncpayfake.New(pvAsyncpayKey, asyncpay.Paths{})
	defer apFake.Close()
	alpFake := alppayfake.New(pvAlppayKey, pvAlppaySecret)
	defer alpFake.Close()
	config := `
connections:
  - {name: aslan-live, provider: aslan, mode: live, base_url: '` + aslanFake.URL() + `', credentials: {api_key: ASLAN_LIVE_KEY}}
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '` + aikFake.URL() + `', credentials: {token: AIKDATA_TOKEN}}
  - {name: aspayds-live, provider: aspayds, mode: live, base_url: '` + aspFake.URL() + `', credentials: {api_key: ASPAYDS_KEY, api_secret: ASPAYDS_SECRET}}
  - {name: asyncpay-live, provider: asyncpay, mode: live, base_url: '` + apFake.URL() + `', credentials: {secret_key: ASYNCPAY_SECRET_KEY}}
  - {name: alppay-live, provider: alppay, mode: live, base_url: '` + alpFake.URL() + `', credentials: {api_key: ALPPAY_API_KEY, hmac_secret: ALPPAY_HMAC_SECRET}}
routes:
  - {operation: payments, mode: live, currency: USD, connections: [aikdata-live, aslan-live]}
  - {operation: payments, mode: live, currency: NGN, connections: [asyncpay-live]}
  - {operation: invoices, mode: live, currency: BDT, connections: [aspayds-live]}
  - {operation: invoices, mode: live, currency: USDT, connections: [alppay-live]}
`
	s := pvStart(t, config, pvEnv)
	var answers strings.Builder
	do := func(method, path, idem, body string) map[string]any {
		code, out, _ := s.restDo(t, method, path, s.liveKey, idem, body)
		raw, _ := json.Marshal(out)
		fmt.Fprintf(&answers, "%d %s\n", code, raw)
		return out
	}
	// aikdata refuses the token (401): paymentd falls back to Aslan.
	p := do("POST", "/v1/payments", "log-1", `{"amount":2500,"currency":"USD","payment_method":"pm_x"}`)
	if p["provider"] != "aslan-live" || p["status"] != "succeeded" {
		t.Errorf("after aikdata refused the credentials: %v; want aslan-live", p)
	}
	aslanFake.FailNext(1, 500, 0) // an ambiguous failure: unknown, logged
	do("POST", "/v1/payments", "log-2", `{"amount":2500,"currency":"USD","payment_method":"pm_x"}`)
	do("POST", "/v1/payments", "log-3", `{"amount":500000,"currency":"NGN","payment_method":"card"}`)
	do("POST", "/v1/invoices", "log-4", `{"amount":10000,"currency":"BDT","customer":{"name":"A"},"transaction_reference":"LOG4","callback_url":"https://shop.example/cb"}`)
	do("GET", "/v1/invoices/LOG4", "", "")
	alpFake.FailNext(1, 401, 0)
	do("POST", "/v1/invoices", "log-5", `{"amount":5000000,"currency":"USDT","network":"tron","transaction_reference":"LOG5","callback_url":"https://shop.example/cb"}`)
	do("POST", "/v1/invoices", "log-6", `{"amount":5000000,"currency":"USDT","network":"tron","transaction_reference":"LOG6","callback_url":"https://shop.example/cb"}`)
	pvCheckStatusComponent(t, s, "aikdata-live", "degraded")
	code, status, _ := s.restDo(t, "GET", "/v1/status", "", "", "")
	raw, _ := json.Marshal(status)
	fmt.Fprintf(&answers, "%d %s\n", code, raw)
	s.stop()

	logText := s.log.String()
	if !strings.Contains(logText, `"provider connection"`) || !strings.Contains(logText, "falling back") {
		t.Errorf("the log lacks the connection and fallback lines; the test would prove nothing:\n%s", logText)
	}
	secrets := []string{pvAslanKey, pvAikdataToken, pvAspaydsKey, pvAspaydsSecret, pvAsyncpayKey, pvAlppayKey, pvAlppaySecret}
	for _, secret := range secrets {
		if strings.Contains(logText, secret) {
			t.Errorf("the log contains the secret %q", secret)
		}
		if strings.Contains(answers.String(), secret) {
			t.Errorf("an API answer contains the secret %q", secret)
		}
	}
	if regexp.MustCompile(`pvSECRET`).MatchString(logText + answers.String()) {
		t.Error("a fragment of a secret appears in the log or the answers")
	}

	// A secret pasted into the file instead of a variable name is refused,
	// and the error does not repeat it. (The file is named by
	// PAYMENTD_CONFIG this time, the flag's environment variable.)
	bad := strings.Replace(config, "{api_key: ASLAN_LIVE_KEY}", "{api_key: "+pvAslanKey+"}", 1)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(path, []byte(bad), 0o600)
	var stderr syncBuffer
	getenv := func(k string) string {
		if k == "PAYMENTD_CONFIG" {
			return path
		}
		return pvEnv[k]
	}
	err := run(context.Background(), []string{"serve", "--db", filepath.Join(t.TempDir(), "x.db"),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, getenv, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "NAME of an environment variable") {
		t.Fatalf("serve with a secret in the file: %v; want a refusal", err)
	}
	if strings.Contains(err.Error()+stderr.String(), pvAslanKey) {
		t.Errorf("the refusal repeats the secret: %v", err)
	}
}

// pvSetLiveMethods configures the account's live payout methods, whose ids
// are the provider's own method (or channel) ids.
func pvSetLiveMethods(t *testing.T, db, methodsJSON string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "methods.json")
	if err := os.WriteFile(path, []byte(methodsJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, "payout-methods", "set", "--db", db, "--mode", "live", "--file", path)
}

// pvWaitPayout reads a payout until its status is want.
func pvWaitPayout(t *testing.T, s *pvServer, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, p, _ := s.restDo(t, "GET", "/v1/payouts/"+id, s.liveKey, "", "")
		if code == 200 && p["status"] == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/payouts/%s: %d %v; want status %s", id, code, p, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pvBalance(t *testing.T, s *pvServer, currency string) (available, reserved int64) {
	t.Helper()
	code, b, _ := s.restDo(t, "GET", "/v1/balance", s.liveKey, "", "")
	if code != 200 {
		t.Fatalf("GET /v1/balance: %d %v", code, b)
	}
	list, _ := b["balances"].([]any)
	for _, x := range list {
		m := x.(map[string]any)
		if m["currency"] == currency {
			return pvNumber(t, m["available"]), pvNumber(t, m["reserved"])
		}
	}
	return 0, 0
}

// TestProviderAspaydsPayoutsEndToEnd: money collected through an aspayds
// invoice is paid out through aspayds; the payout follows aspayds' status.
func TestProviderAspaydsPayoutsEndToEnd(t *testing.T) {
	fake := aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	defer fake.Close()
	s := pvStart(t, `
connections:
  - name: aspayds-live
    provider: aspayds
    mode: live
    base_url: `+fake.URL()+`
    credentials: {api_key: ASPAYDS_KEY, api_secret: ASPAYDS_SECRET}
routes:
  - {operation: invoices, mode: live, currency: BDT, connections: [aspayds-live]}
  - {operation: payouts, mode: live, currency: BDT, connections: [aspayds-live]}
`, pvEnv)
	pvSetLiveMethods(t, s.db, `{"payout_methods":[{"id":"1","name":"bKash","type":"mobile_banking","currency":"BDT",
		"min_amount":10000,"max_amount":5000000,"fee":{"fixed_amount":0,"basis_points":0},"account_format":"01XXXXXXXXX"}]}`)
	code, inv, _ := s.restDo(t, "POST", "/v1/invoices", s.liveKey, "po-inv", `{"amount":200000,"currency":"BDT","customer":{"name":"A"},"transaction_reference":"COLLECT1","callback_url":"https://shop.example/cb"}`)
	if code != 200 {
		t.Fatalf("invoice: %d %v", code, inv)
	}
	_ = fake.PayInvoice("COLLECT1", 200000)
	if code, got, _ := s.restDo(t, "GET", "/v1/invoices/COLLECT1", s.liveKey, "", ""); code != 200 || got["status"] != "paid" {
		t.Fatalf("invoice after payment: %d %v", code, got)
	}
	if avail, _ := pvBalance(t, s, "BDT"); avail != 200000 {
		t.Fatalf("available BDT %d after a paid 2000-taka invoice; want 200000", avail)
	}
	code, po, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "po-1", `{"payout_method_id":"1","amount":50000,"recipient_name":"John Doe","recipient_account":"01712345678","transaction_reference":"WD123456"}`)
	if code != 200 || po["status"] != "pending" || po["provider"] != "aspayds-live" {
		t.Fatalf("live payout through aspayds: %d %v", code, po)
	}
	var sent map[string]any
	_ = json.Unmarshal(fake.Requests()[len(fake.Requests())-1].Body, &sent)
	if fmt.Sprint(sent["payout_method_id"]) != "1" || fmt.Sprint(sent["amount"]) != "500" || sent["transaction_reference"] != po["id"] || sent["description"] != "WD123456" {
		t.Errorf("aspayds got %v; want method 1, amount 500 (taka), transaction_reference %v (paymentd's payout id) and the caller's reference WD123456 as the description", sent, po["id"])
	}
	if avail, reserved := pvBalance(t, s, "BDT"); avail != 150000 || reserved != 50000 {
		t.Errorf("balance after the payout request: available %d reserved %d; want 150000 and 50000", avail, reserved)
	}
	// A payout aspayds was asked to send cannot be cancelled by paymentd.
	code, body, _ := s.restDo(t, "POST", "/v1/payouts/WD123456/cancel", s.liveKey, "po-2", `{}`)
	if e := restError(t, code, body); code != 409 {
		t.Errorf("cancel of a provider-sent payout: %d %+v; want 409", code, e)
	}
	_ = fake.SettlePayout(po["id"].(string), "processing")
	pvWaitPayout(t, s, "WD123456", "processing")
	_ = fake.SettlePayout(po["id"].(string), "completed")
	pvWaitPayout(t, s, po["id"].(string), "completed")
	if avail, reserved := pvBalance(t, s, "BDT"); avail != 150000 || reserved != 0 {
		t.Errorf("balance after completion: available %d reserved %d; want 150000 and 0", avail, reserved)
	}
	// A payout aspayds rejects gives the reservation back.
	fake.DeclineNext(1)
	code, po2, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "po-3", `{"payout_method_id":"1","amount":20000,"recipient_name":"Jane","recipient_account":"01812345678","transaction_reference":"WD2"}`)
	if code != 200 {
		t.Fatalf("second payout: %d %v", code, po2)
	}
	pvWaitPayout(t, s, "WD2", "rejected")
	if avail, reserved := pvBalance(t, s, "BDT"); avail != 150000 || reserved != 0 {
		t.Errorf("balance after a rejection: available %d reserved %d; want 150000 and 0", avail, reserved)
	}
	pvCheckLedger(t, s.db)
}

// pvCheckLedger runs `paymentd check`, which fails when a ledger invariant
// does not hold.
func pvCheckLedger(t *testing.T, db string) {
	t.Helper()
	var out strings.Builder
	if err := run(context.Background(), []string{"check", "--db", db}, noEnv, &out, &out); err != nil {
		t.Fatalf("paymentd check: %v\n%s", err, out.String())
	}
}

// TestProviderAsyncpayPayoutsEndToEnd: money collected through Asyncpay
// payments is paid out through an Asyncpay channel.
func TestProviderAsyncpayPayoutsEndToEnd(t *testing.T) {
	fake := asyncpayfake.New(pvAsyncpayKey, asyncpay.Paths{})
	defer fake.Close()
	s := pvStart(t, `
connections:
  - {name: asyncpay-live, provider: asyncpay, mode: live, base_url: '`+fake.URL()+`', credentials: {secret_key: ASYNCPAY_SECRET_KEY}}
routes:
  - {operation: payments, mode: live, currency: NGN, connections: [asyncpay-live]}
  - {operation: payouts, mode: live, currency: NGN, connections: [asyncpay-live]}
`, pvEnv)
	pvSetLiveMethods(t, s.db, `{"payout_methods":[{"id":"ch_ngn_bank","name":"NGN bank transfer","type":"bank_transfer","currency":"NGN",
		"min_amount":100000,"max_amount":500000000,"fee":{"fixed_amount":5000,"basis_points":0},"account_format":"10-digit NUBAN"}]}`)
	code, p, _ := s.restDo(t, "POST", "/v1/payments", s.liveKey, "apo-1", `{"amount":1000000,"currency":"NGN","payment_method":"card"}`)
	if code != 200 || p["status"] != "succeeded" {
		t.Fatalf("collecting: %d %v", code, p)
	}
	code, po, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "apo-2", `{"payout_method_id":"ch_ngn_bank","amount":200000,"recipient_name":"Ada Obi","recipient_account":"0123456789","transaction_reference":"NGN-WD-1"}`)
	if code != 200 || po["status"] != "pending" || po["provider"] != "asyncpay-live" || pvNumber(t, po["total_amount"]) != 205000 {
		t.Fatalf("live payout through Asyncpay: %d %v", code, po)
	}
	if err := fake.SettlePayout(po["id"].(string), "completed"); err != nil { // sent under paymentd's id
		t.Fatal(err)
	}
	pvWaitPayout(t, s, "NGN-WD-1", "completed")
	if avail, reserved := pvBalance(t, s, "NGN"); avail != 1000000-205000 || reserved != 0 {
		t.Errorf("NGN balance: available %d reserved %d; want %d and 0", avail, reserved, 1000000-205000)
	}
	fake.DeclineNext(1) // Asyncpay refuses (402): rejected at once, reservation released
	code, po2, _ := s.restDo(t, "POST", "/v1/payouts", s.liveKey, "apo-3", `{"payout_method_id":"ch_ngn_bank","amount":200000,"recipient_name":"Ada Obi","recipient_account":"0123456789","transaction_reference":"NGN-WD-2"}`)
	if code != 200 || po2["status"] != "rejected" || po2["failure_code"] == "" {
		t.Fatalf("refused payout: %d %v; want rejected with a failure_code", code, po2)
	}
	if avail, _ := pvBalance(t, s, "NGN"); avail != 1000000-205000 {
		t.Errorf("NGN available %d after a refused payout; want %d", avail, 1000000-205000)
	}
	pvCheckLedger(t, s.db)
}
