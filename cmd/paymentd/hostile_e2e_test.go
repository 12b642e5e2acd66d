package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// restRaw sends one REST request with the headers given as they are (a
// value may hold any byte net/http lets through) and decodes the JSON
// object it answers.
func (s *testServer) restRaw(t *testing.T, method, path, body string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.baseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: status %d, body is not a JSON object (%v): %.300s", method, path, resp.StatusCode, err, raw)
	}
	return resp.StatusCode, out
}

// TestIdempotencyKeysHonouredExactlyOrRefused sends refunds three times
// with keys that cannot travel as gRPC metadata unchanged: each must be
// refused with idempotency_key_invalid, never run as three keyless refunds.
// (Issue 10, case 5.)
func TestIdempotencyKeysHonouredExactlyOrRefused(t *testing.T) {
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	p := mustCreate(t, ctx, srv.payments, visa(90000))

	bad := map[string]string{
		"u-umlaut":          "refund-ü-1",
		"emoji":             "refund-💸-1",
		"e-acute":           "refund-é-1",
		"tab":               "refund-\t-1",
		"rtl override":      "refund-\u202e-1",
		"invalid utf-8":     "refund-\xff\xfe-1",
		"whitespace only":   "   ",
		"inner space":       "refund 1",
		"too long":          strings.Repeat("k", 256),
		"card number":       "4111111111111111-x",
		"spaced card":       "4111-1111-1111-1111",
		"card in a hex key": "deadbeef4111111111111111deadbeef",
		"nbsp card number":  "4111\u00a01111\u00a01111\u00a01111",
		"latin-1 byte only": "refund-\xe9",
	}
	for name, key := range bad {
		wantCode := "idempotency_key_invalid"
		if strings.Contains(name, "card") {
			wantCode = "card_number_refused"
		}
		for i := range 3 {
			code, body := srv.restRaw(t, "POST", "/v1/refunds", `{"payment_id":"`+p.Id+`","amount":1000}`,
				http.Header{"Authorization": {"Bearer " + srv.key}, "Idempotency-Key": {key}})
			got := restError(t, code, body)
			if code != 400 || got.code != wantCode || got.param != "idempotency_key" {
				t.Errorf("%s, attempt %d: %d %s (param %q); want 400 %s (param idempotency_key)", name, i+1, code, got.code, got.param, wantCode)
			}
			if msg, _ := body["error"].(map[string]any)["message"].(string); key != "   " && strings.Contains(msg, key) {
				t.Errorf("%s: the error message quotes the key: %q", name, msg)
			}
		}
	}
	// Two Idempotency-Key headers are ambiguous: refused too.
	code, body := srv.restRaw(t, "POST", "/v1/refunds", `{"payment_id":"`+p.Id+`","amount":1000}`,
		http.Header{"Authorization": {"Bearer " + srv.key}, "Idempotency-Key": {"refund-a", "refund-b"}})
	if got := restError(t, code, body); code != 400 || got.code != "idempotency_key_invalid" {
		t.Errorf("two keys: %d %s; want 400 idempotency_key_invalid", code, got.code)
	}
	if got := mustGet(t, ctx, srv.payments, p.Id); got.AmountRefunded != 0 {
		t.Errorf("after refused keys, amount_refunded = %d; want 0 (nothing executed)", got.AmountRefunded)
	}

	// A good key still replays: three sends, one refund. So does a random
	// hex key (a UUID without its dashes).
	for _, c := range []struct {
		name, key string
		refunded  int64
	}{{"good key", "refund-ok:1/~!", 1000}, {"hex key", "deadbeef0123456789abcdef01234567", 2000}} {
		for range 3 {
			code, body := srv.restRaw(t, "POST", "/v1/refunds", `{"payment_id":"`+p.Id+`","amount":1000}`,
				http.Header{"Authorization": {"Bearer " + srv.key}, "Idempotency-Key": {c.key}})
			if code != 200 {
				t.Fatalf("%s: %d %v", c.name, code, body)
			}
		}
		if got := mustGet(t, ctx, srv.payments, p.Id); got.AmountRefunded != c.refunded {
			t.Errorf("three sends with the %s: refunded %d in all; want %d", c.name, got.AmountRefunded, c.refunded)
		}
	}

	// Over gRPC the same rule holds for the metadata.
	for name, md := range map[string]metadata.MD{
		"empty":       metadata.Pairs("idempotency-key", ""),
		"two values":  metadata.Pairs("idempotency-key", "a", "idempotency-key", "b"),
		"inner space": metadata.Pairs("idempotency-key", "refund 2"),
		"card number": metadata.Pairs("idempotency-key", "4111111111111111"),
	} {
		for range 3 {
			_, err := srv.payments.CreateRefund(metadata.NewOutgoingContext(ctx, metadata.Join(md, metadata.Pairs("authorization", "Bearer "+srv.key))),
				&pb.CreateRefundRequest{PaymentId: p.Id, Amount: proto.Int64(1000)})
			got := grpcError(t, err)
			want := "idempotency_key_invalid"
			if name == "card number" {
				want = "card_number_refused"
			}
			if got.grpcCode != codes.InvalidArgument || got.code != want || got.param != "idempotency_key" {
				t.Errorf("gRPC %s: %v %s (param %q); want INVALID_ARGUMENT %s (param idempotency_key)", name, got.grpcCode, got.code, got.param, want)
			}
		}
	}
	if got := mustGet(t, ctx, srv.payments, p.Id); got.AmountRefunded != 2000 {
		t.Errorf("after refused gRPC keys, amount_refunded = %d; want 2000", got.AmountRefunded)
	}
}

// TestCallbackURLsCheckedWhenGiven: invoice and payout callback_url and
// webhook endpoint urls naming loopback or private hosts, in any disguise,
// are refused at creation (unless --allow-private-webhooks), and a URL with
// credentials is never stored.
func TestCallbackURLsCheckedWhenGiven(t *testing.T) {
	srv := newServer(t)
	hosts := []string{
		"127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433", "[::127.0.0.1]", "[2002:7f00:1::1]",
		"[2001:0:4136:e378:8000:63bf:80ff:fffe]", "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ", "１２７.０.０.１", "10.0.0.7", "169.254.169.254",
	}
	for i, h := range hosts {
		u := "https://" + h + "/cb"
		for _, c := range []struct{ path, body, param string }{
			{"/v1/invoices", fmt.Sprintf(`{"amount":1000,"currency":"USD","transaction_reference":"ssrf-%d","callback_url":%q}`, i, u), "callback_url"},
			{"/v1/payouts", fmt.Sprintf(`{"payout_method_id":"us_bank","amount":1000,"recipient_name":"Jane Doe","recipient_account":"000123456789","transaction_reference":"ssrf-%d","callback_url":%q}`, i, u), "callback_url"},
			{"/v1/webhook-endpoints", fmt.Sprintf(`{"url":%q}`, u), "url"},
		} {
			code, body, _ := srv.restDo(t, "POST", c.path, srv.key, "", c.body)
			got := restError(t, code, body)
			if code != 400 || got.code != "url_not_allowed" || got.param != c.param {
				t.Errorf("%s with %s: %d %s (param %q); want 400 url_not_allowed (param %s)", c.path, u, code, got.code, got.param, c.param)
			}
		}
	}
	for _, c := range []struct{ path, body, param string }{
		{"/v1/invoices", `{"amount":1000,"currency":"USD","transaction_reference":"ssrf-user","callback_url":"https://user:pw@shop.example/cb"}`, "callback_url"},
		{"/v1/payouts", `{"payout_method_id":"us_bank","amount":1000,"recipient_name":"Jane Doe","recipient_account":"000123456789","transaction_reference":"ssrf-user","callback_url":"https://user:pw@shop.example/cb"}`, "callback_url"},
		{"/v1/webhook-endpoints", `{"url":"https://user:pw@shop.example/cb"}`, "url"},
	} {
		code, body, _ := srv.restDo(t, "POST", c.path, srv.key, "", c.body)
		if got := restError(t, code, body); code != 400 || got.code != "url_invalid" || got.param != c.param {
			t.Errorf("%s with credentials: %d %s (param %q); want 400 url_invalid", c.path, code, got.code, got.param)
		}
	}
	raw, err := os.ReadFile(srv.db + "-wal")
	if err == nil && bytes.Contains(raw, []byte("user:pw")) {
		t.Errorf("the WAL holds the URL credentials")
	}

	// With --allow-private-webhooks, local development keeps working.
	dev := newServer(t, "--allow-private-webhooks")
	code, body, _ := dev.restDo(t, "POST", "/v1/invoices", dev.key, "",
		`{"amount":1000,"currency":"USD","transaction_reference":"dev-1","callback_url":"http://127.0.0.1:9/cb"}`)
	if code != 200 {
		t.Errorf("with --allow-private-webhooks: %d %v; want 200", code, body)
	}
}

// TestParseErrorsNameTheParameter: loose numbers are refused, and decode and
// query-string errors name the parameter and the expected form, with no Go
// internals.
func TestParseErrorsNameTheParameter(t *testing.T) {
	srv := newServer(t)
	for _, c := range []struct {
		name, method, path, body string
		code, param, fragment    string
	}{
		{"decimal amount", "POST", "/v1/payments", `{"amount":100.00,"currency":"USD","payment_method":"pm_card_visa"}`,
			"amount_invalid", "amount", "amounts are integers in the currency's minor units"},
		{"exponent amount", "POST", "/v1/payments", `{"amount":1e3,"currency":"USD","payment_method":"pm_card_visa"}`,
			"amount_invalid", "amount", "amounts are integers in the currency's minor units"},
		{"decimal refund amount", "POST", "/v1/refunds", `{"payment_id":"pay_x","amount":10.5}`,
			"amount_invalid", "amount", "minor units"},
		{"decimal invoice amount", "POST", "/v1/invoices", `{"amount":19.99,"currency":"USD","transaction_reference":"p-1","callback_url":"https://shop.example/cb"}`,
			"amount_invalid", "amount", "minor units"},
		{"decimal amount in a string", "POST", "/v1/payments", `{"amount":"100.00","currency":"USD","payment_method":"pm_card_visa"}`,
			"amount_invalid", "amount", "amounts are integers in the currency's minor units"},
		{"exponent amount in a string", "POST", "/v1/payments", `{"amount":"1e3","currency":"USD","payment_method":"pm_card_visa","metadata":{"ratio":"1.5"}}`,
			"amount_invalid", "amount", "amounts are integers in the currency's minor units"},
		{"decimal invoice amount in a string", "POST", "/v1/invoices", `{"amount":"19.99","currency":"USD","transaction_reference":"p-1","callback_url":"https://shop.example/cb"}`,
			"amount_invalid", "amount", "minor units"},
		{"decimal capture amount in a string", "POST", "/v1/payments/pay_x/capture", `{"amount":"10.5"}`,
			"amount_invalid", "amount", "minor units"},
		{"string amount", "POST", "/v1/payments", `{"amount":"abc","currency":"USD","payment_method":"pm_card_visa"}`,
			"amount_invalid", "amount", "minor units"},
		{"unknown field", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","amountt":1}`,
			"invalid_request_body", "amountt", "amountt"},
		{"card number as field name", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","4111111111111111":1}`,
			"invalid_request_body", "••••1111", "••••1111"},
		{"nested wrong type", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","customer":{"name":5}}`,
			"invalid_request_body", "customer.name", "customer.name must be a string"},
		{"lone surrogate", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","description":"\ud800x"}`,
			"invalid_request_body", "", "lone UTF-16 surrogate"},
		{"invalid utf-8", "POST", "/v1/payments", "{\"amount\":1000,\"currency\":\"USD\",\"payment_method\":\"pm_card_visa\",\"description\":\"\xff\"}",
			"invalid_request_body", "", "not valid UTF-8"},
		{"metadata value not a string", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","metadata":{"order":"1","qty":5}}`,
			"invalid_request_body", "metadata[qty]", "metadata[qty] must be a string"},
		{"metadata value null", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","metadata":{"order":"1","qty":null}}`,
			"invalid_request_body", "metadata[qty]", "metadata[qty] must be a string"},
		{"metadata not an object", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","metadata":"x"}`,
			"invalid_request_body", "metadata", "metadata must be an object"},
		{"customer not an object", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","customer":"Jane"}`,
			"invalid_request_body", "customer", "customer must be an object"},
		{"expiry not a duration", "POST", "/v1/invoices", `{"amount":1000,"currency":"USD","transaction_reference":"p-2","callback_url":"https://shop.example/cb","expiry":"1 day"}`,
			"invalid_request_body", "expiry", `expiry must be a duration in seconds, as a string such as "3600s"`},
		{"expiry a number, after a line break and non-ASCII text", "POST", "/v1/invoices", "{\"amount\":1000,\"currency\":\"USD\",\n \"description\":\"2 × café\",\"transaction_reference\":\"p-2\",\"callback_url\":\"https://shop.example/cb\",\"expiry\":86400}",
			"invalid_request_body", "expiry", "expiry must be a duration"},
		{"batch ids not an array", "POST", "/v1/invoices/batch", `{"ids":"inv_1"}`,
			"invalid_request_body", "ids", "ids must be an array"},
		{"body not an object", "POST", "/v1/payments", `[{"amount":1000}]`,
			"invalid_request_body", "", "must be a JSON object"},
		{"second JSON object", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"} {"amount":5}`,
			"invalid_request_body", "", "more after its JSON object"},
		{"trailing garbage", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}]`,
			"invalid_request_body", "", "more after its JSON object"},
		{"bad timestamp", "GET", "/v1/payments?created_after=2026-01-01", "", "parameter_invalid", "created_after", "RFC 3339 timestamp"},
		{"bad page size", "GET", "/v1/payments?page_size=abc", "", "parameter_invalid", "page_size", "integer from 1 to 100"},
		{"int32 out of range", "POST", "/v1/test-helpers/invoices/inv_x/receipts", `{"txn_id":"t","amount":1,"confirmations":2147483648}`,
			"invalid_request_body", "confirmations", "from -2147483648 to 2147483647"},
		{"status given twice", "GET", "/v1/payments?status=succeeded&status=failed", "", "parameter_invalid", "status", "status is given 2 times; send it once"},
		{"unknown query parameter", "GET", "/v1/payments?limit=1", "", "parameter_unknown", "limit", "limit is not a query parameter"},
		{"unknown refund query parameter", "GET", "/v1/refunds?status=succeeded", "", "parameter_unknown", "status", "status is not a query parameter"},
		// Percent-escaped bytes that are not UTF-8, in a query value or a path id.
		{"invalid utf-8 query value", "GET", "/v1/events?object_id=%ff", "", "parameter_invalid", "object_id", "not UTF-8"},
		{"invalid utf-8 event type", "GET", "/v1/events?type=payment.%ff", "", "parameter_invalid", "type", "not UTF-8"},
		{"invalid utf-8 payout status", "GET", "/v1/payouts?status=%c3%28", "", "parameter_invalid", "status", "not UTF-8"},
		{"invalid utf-8 page token", "GET", "/v1/payments?page_token=%ff", "", "parameter_invalid", "page_token", "not UTF-8"},
		{"invalid utf-8 payment id", "GET", "/v1/payments/pay_%ff", "", "parameter_invalid", "id", "not UTF-8"},
		{"invalid utf-8 event id", "POST", "/v1/events/%ff/redeliver", "", "parameter_invalid", "id", "not UTF-8"},
		{"invalid utf-8 payout id", "POST", "/v1/payouts/%ff/cancel", "", "parameter_invalid", "id", "not UTF-8"},
		// U+0000 is valid UTF-8 but no PostgreSQL text column takes it (a 500 there).
		{"NUL in description", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","description":"a\u0000b"}`,
			"parameter_invalid", "description", "NUL"},
		{"NUL in customer name", "POST", "/v1/invoices", `{"amount":1000,"currency":"USD","transaction_reference":"nul-1","callback_url":"https://shop.example/cb","customer":{"name":"a\u0000"}}`,
			"parameter_invalid", "customer.name", "NUL"},
		{"NUL in metadata value", "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","metadata":{"k":"\u0000"}}`,
			"parameter_invalid", "metadata[k]", "NUL"},
		{"NUL in recipient name", "POST", "/v1/payouts", `{"payout_method_id":"us_bank","amount":1000,"recipient_name":"J\u0000x","recipient_account":"000123456789","transaction_reference":"nul-2"}`,
			"parameter_invalid", "recipient_name", "NUL"},
		{"NUL in webhook description", "POST", "/v1/webhook-endpoints", `{"url":"https://example.com/x","description":"\u0000"}`,
			"parameter_invalid", "description", "NUL"},
		{"NUL in event types", "POST", "/v1/webhook-endpoints", `{"url":"https://example.com/x","event_types":["payment.*","\u0000"]}`,
			"parameter_invalid", "event_types", "NUL"},
		{"invalid utf-8 receipt invoice id", "POST", "/v1/test-helpers/invoices/%ff/receipts", `{"txn_id":"t","amount":1,"confirmations":1}`, "parameter_invalid", "id", "not UTF-8"},
	} {
		code, body, _ := srv.restDo(t, c.method, c.path, srv.key, "", c.body)
		got := restError(t, code, body)
		msg, _ := body["error"].(map[string]any)["message"].(string)
		if code != 400 || got.code != c.code || got.param != c.param || !strings.Contains(msg, c.fragment) {
			t.Errorf("%s: %d %s (param %q) %q; want 400 %s (param %q) saying %q", c.name, code, got.code, got.param, msg, c.code, c.param, c.fragment)
		}
		for _, leak := range []string{"parsing time", "strconv", "proto:", "2006-01-02T15:04:05", "4111111111111111"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s: message %q leaks %q", c.name, msg, leak)
			}
		}
	}
	// Integers written plainly still work, as numbers or strings, beside
	// strings of other fields that read as decimals.
	if code, body, _ := srv.restDo(t, "POST", "/v1/payments", srv.key, "", `{"amount":"1000","currency":"USD","payment_method":"pm_card_visa"}`); code != 200 {
		t.Errorf("amount as a string of digits: %d %v; want 200", code, body)
	}
	if code, body, _ := srv.restDo(t, "POST", "/v1/payments", srv.key, "", `{"amount":"1000","currency":"USD","payment_method":"pm_card_visa","description":"2.5","metadata":{"ratio":"1.5e3"}}`); code != 200 || body["amount"] != "1000" || body["description"] != "2.5" {
		t.Errorf("decimal-looking description and metadata: %d %v; want 200 with them kept", code, body)
	}
	if code, body, _ := srv.restDo(t, "GET", "/v1/payments?page_size=5&created_after=2026-01-01T00:00:00Z&status=succeeded", srv.key, "", ""); code != 200 {
		t.Errorf("valid query: %d %v; want 200", code, body)
	}
}

// TestFullDiskAnswers503AndLosesNothing runs paymentd on a database capped
// with --db-max-pages (a full disk without root): creates past the cap are
// answered 503 store_unavailable with Retry-After, /v1/status shows the
// database degraded with the reason, every acknowledged payment is there and
// no refused one, and `paymentd check` and integrity_check pass afterwards.
func TestFullDiskAnswers503AndLosesNothing(t *testing.T) {
	db := filepath.Join(t.TempDir(), "paymentd.db")
	first := startServer(t, db)
	key := first.key
	first.stop()
	info, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, db, "--db-max-pages", fmt.Sprint(info.Size()/4096+40))
	acked := map[string]bool{}
	refused, refusedKey := 0, ""
	for i := 0; i < 3000 && refused < 20; i++ {
		idem := fmt.Sprint("full-", i)
		code, body, hdr := srv.restDo(t, "POST", "/v1/payments", key, idem,
			`{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","description":"`+strings.Repeat("x", 900)+`"}`)
		switch code {
		case 200:
			acked[str(body, "id")] = true
		case 503:
			got := restError(t, code, body)
			if got.code != "store_unavailable" || got.errType != "api_error" || hdr.Get("Retry-After") == "" {
				t.Errorf("full disk: %d %+v Retry-After %q; want 503 api_error store_unavailable with Retry-After", code, got, hdr.Get("Retry-After"))
			}
			refused++
			refusedKey = idem
		default:
			t.Fatalf("create %d: %d %v; want 200 or 503", i, code, body)
		}
	}
	if refused == 0 {
		t.Fatalf("%d creates all succeeded; the cap was never reached", len(acked))
	}
	code, st, _ := srv.restDo(t, "GET", "/v1/status", "", "", "")
	dbc, _ := st["components"].(map[string]any)["database"].(map[string]any)
	if code != 200 || dbc["status"] != "degraded" || !strings.Contains(fmt.Sprint(dbc["message"]), "full") {
		t.Errorf("/v1/status database = %v; want degraded saying the disk is full", dbc)
	}
	// Reads still work, and every acknowledged payment is there.
	ctx := withKey(t.Context(), key)
	for id := range acked {
		mustGet(t, ctx, srv.payments, id)
	}
	srv.stop()

	out, _ := cli(t, "check", "--db", db)
	if !strings.Contains(out, "checks passed") {
		t.Errorf("paymentd check after a full disk:\n%s", out)
	}
	sq, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	var integrity string
	var n int
	if err := sq.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check = %q, %v", integrity, err)
	}
	if err := sq.QueryRow(`SELECT count(*) FROM payments`).Scan(&n); err != nil || n != len(acked) {
		t.Errorf("%d payments stored, %v; %d were acknowledged", n, err, len(acked))
	}
	sq.Close()

	// With space back, the refused call runs under its key.
	again := startServer(t, db)
	if code, body, _ := again.restDo(t, "POST", "/v1/payments", key, refusedKey,
		`{"amount":1000,"currency":"USD","payment_method":"pm_card_visa","description":"`+strings.Repeat("x", 900)+`"}`); code != 200 {
		t.Errorf("retry of a refused create once space returned: %d %v; want 200", code, body)
	}
}

// TestPageTokensBoundToFilters: a next_page_token sent back with other
// filters is refused with page_token_invalid instead of paging through a
// different listing, and so is one sent with another account's key or a
// key of the other mode; with the same filters and key it pages on.
func TestPageTokensBoundToFilters(t *testing.T) {
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	for range 3 {
		mustCreate(t, ctx, srv.payments, visa(1000))
		mustCreate(t, ctx, srv.payments, manual(1000))
	}
	code, body, _ := srv.restDo(t, "GET", "/v1/payments?status=succeeded&page_size=1", srv.key, "", "")
	token := str(body, "next_page_token")
	if code != 200 || token == "" {
		t.Fatalf("first page: %d %v", code, body)
	}
	code, body, _ = srv.restDo(t, "GET", "/v1/payments?status=succeeded&page_size=2&page_token="+token, srv.key, "", "")
	if code != 200 || len(items(t, body, "payments")) != 2 {
		t.Errorf("same filters, other page size: %d %v; want the next 2 payments", code, body)
	}
	for _, q := range []string{"status=requires_capture", "", "created_after=2020-01-01T00:00:00Z&status=succeeded"} {
		code, body, _ := srv.restDo(t, "GET", "/v1/payments?"+q+"&page_token="+token, srv.key, "", "")
		if got := restError(t, code, body); code != 400 || got.code != "page_token_invalid" || got.param != "page_token" {
			t.Errorf("token reused with %q: %d %+v; want 400 page_token_invalid", q, code, got)
		}
	}
	// Another account's key, and the same account's key of the other mode.
	otherKey, _ := createKey(t, srv.db, "test", "read,write", createAccount(t, srv.db, "other"))
	liveKey, _ := createKey(t, srv.db, "live", "read,write", "")
	for name, key := range map[string]string{"another account": otherKey, "live mode": liveKey} {
		code, body, _ := srv.restDo(t, "GET", "/v1/payments?status=succeeded&page_token="+token, key, "", "")
		if got := restError(t, code, body); code != 400 || got.code != "page_token_invalid" {
			t.Errorf("token sent by %s: %d %+v; want 400 page_token_invalid", name, code, got)
		}
	}
	// Over gRPC too, and for refunds of another payment.
	p1 := mustCreate(t, ctx, srv.payments, visa(3000))
	p2 := mustCreate(t, ctx, srv.payments, visa(3000))
	for range 2 {
		if _, err := srv.payments.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: p1.Id, Amount: proto.Int64(100)}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := srv.payments.ListRefunds(ctx, &pb.ListRefundsRequest{PaymentId: p1.Id, PageSize: 1})
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("ListRefunds: %v, %v", page, err)
	}
	_, err = srv.payments.ListRefunds(ctx, &pb.ListRefundsRequest{PaymentId: p2.Id, PageToken: page.NextPageToken})
	if got := grpcError(t, err); got.grpcCode != codes.InvalidArgument || got.code != "page_token_invalid" {
		t.Errorf("refund token reused for another payment: %+v; want INVALID_ARGUMENT page_token_invalid", got)
	}
	if next, err := srv.payments.ListRefunds(ctx, &pb.ListRefundsRequest{PaymentId: p1.Id, PageToken: page.NextPageToken}); err != nil || len(next.Refunds) != 1 {
		t.Errorf("refund token with its own filters: %v, %v; want the second refund", next, err)
	}
}

// TestCLIHelpVersionAndMissingDatabase: --help exits 0, --version works like
// version, commands other than serve and migrate refuse a database that does
// not exist (creating none), keys revoke never echoes a secret, and keys
// list --mode filters.
func TestCLIHelpVersionAndMissingDatabase(t *testing.T) {
	runCLI := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(t.Context(), args, noEnv, &out, &errOut)
		return out.String(), errOut.String(), err
	}
	for _, args := range [][]string{{"keys", "list", "--help"}, {"serve", "--help"}, {"migrate", "-h"}, {"check", "--help"}, {"accounts", "create", "--help"}, {"bench", "--help"}} {
		_, errOut, err := runCLI(args...)
		if err != nil || !strings.Contains(errOut, "-db") {
			t.Errorf("paymentd %s: %v (usage %q); want exit 0 with the flags' usage", strings.Join(args, " "), err, errOut)
		}
		// A flag's value placeholder is one word (flag takes a
		// back-quoted phrase in the usage text for it).
		for _, line := range strings.Split(errOut, "\n") {
			if head, _, _ := strings.Cut(line, "\t"); strings.HasPrefix(line, "  -") && len(strings.Fields(head)) > 2 {
				t.Errorf("paymentd %s: flag line %q has a phrase as its value placeholder", strings.Join(args, " "), line)
			}
		}
	}
	v1, _, err1 := runCLI("version")
	v2, _, err2 := runCLI("--version")
	if err1 != nil || err2 != nil || v1 == "" || v1 != v2 {
		t.Errorf("version %q %v, --version %q %v; want the same output", v1, err1, v2, err2)
	}

	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.db")
	for _, args := range [][]string{
		{"keys", "list", "--db", typo}, {"keys", "create", "--db", typo}, {"keys", "revoke", "--db", typo, "key_x"},
		{"accounts", "list", "--db", typo}, {"check", "--db", typo}, {"operator-items", "--db", typo},
	} {
		_, _, err := runCLI(args...)
		if err == nil || !strings.Contains(err.Error(), "no database at") {
			t.Errorf("paymentd %s: %v; want an error saying there is no database", strings.Join(args, " "), err)
		}
		if _, statErr := os.Stat(typo); statErr == nil {
			t.Fatalf("paymentd %s created %s", strings.Join(args, " "), typo)
		}
	}

	db := filepath.Join(dir, "paymentd.db")
	cli(t, "migrate", "--db", db)
	cli(t, "accounts", "create", "--db", db, "--name", "shop")
	secret, _ := createKey(t, db, "test", "read", "")
	liveSecret, liveID := createKey(t, db, "live", "read", "")
	_, _, err := runCLI("keys", "revoke", "--db", db, secret)
	if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[8:]) {
		t.Errorf("keys revoke <secret>: %v; want an error that does not repeat the secret", err)
	}
	live, _ := cli(t, "keys", "list", "--db", db, "--mode", "live")
	if !strings.Contains(live, liveID) || strings.Contains(live, " test ") || strings.Contains(live, liveSecret) {
		t.Errorf("keys list --mode live:\n%s\nwant only the live key", live)
	}
	if _, _, err := runCLI("keys", "list", "--db", db, "--mode", "prod"); err == nil {
		t.Error("keys list --mode prod accepted")
	}
}

// rawCodec sends a request's bytes as they are (so a test can send what the
// Go protobuf library refuses to marshal) and decodes answers as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

// TestInvalidUTF8OverGRPCIsInvalidArgument: a string field holding invalid
// UTF-8 is the caller's error (INVALID_ARGUMENT naming the field), not an
// internal one, and nothing is created.
func TestInvalidUTF8OverGRPCIsInvalidArgument(t *testing.T) {
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	raw, err := proto.Marshal(visa(1000))
	if err != nil {
		t.Fatal(err)
	}
	raw = protowire.AppendTag(raw, 5, protowire.BytesType) // description
	raw = protowire.AppendBytes(raw, []byte("order \xff\xfe"))
	var resp pb.CreatePaymentResponse
	err = srv.conn.Invoke(ctx, pb.PaymentsService_CreatePayment_FullMethodName, raw, &resp, grpc.ForceCodecV2(rawCodec{}))
	got := grpcError(t, err)
	if got.grpcCode != codes.InvalidArgument || got.param != "description" {
		t.Errorf("invalid UTF-8 in description: %+v (%v); want INVALID_ARGUMENT about description", got, err)
	}
	list, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{})
	if err != nil || len(list.Payments) != 0 {
		t.Errorf("ListPayments = %v, %v; want no payment", list, err)
	}
}

// TestInvalidUTF8InURLIsRefused: a path or query parameter that
// percent-decodes to bytes that are not UTF-8 is the caller's error, 400
// parameter_invalid naming the parameter, not a 500 from marshaling the
// gateway's call.
func TestInvalidUTF8InURLIsRefused(t *testing.T) {
	srv := newServer(t)
	for _, c := range []struct{ method, path, param string }{
		{"GET", "/v1/payments/%ff", "id"},
		{"POST", "/v1/payments/pay_%ff%fe/capture", "id"},
		{"GET", "/v1/invoices/order-%c3", "id"},
		{"GET", "/v1/payments?status=%ff", "status"},
		{"GET", "/v1/payments?page_token=%00%ff", "page_token"},
		{"GET", "/v1/refunds?payment_id=pay_%ff", "payment_id"},
	} {
		code, body, _ := srv.restDo(t, c.method, c.path, srv.key, "", "")
		if got := restError(t, code, body); code != http.StatusBadRequest || got.code != "parameter_invalid" || got.param != c.param {
			t.Errorf("%s %s: %d %+v; want 400 parameter_invalid (param %s)", c.method, c.path, code, got, c.param)
		}
	}
}

// TestUnknownOrMistypedGRPCFieldsRefused: a CreatePayment with
// capture_method sent as a number (wire type varint, value 99), with a
// field number the API does not have, or that is no protobuf message at
// all, is refused naming what is wrong (not INTERNAL);
// protobuf would otherwise keep the field aside and the payment would be
// taken with automatic capture.
func TestUnknownOrMistypedGRPCFieldsRefused(t *testing.T) {
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	for _, c := range []struct {
		name  string
		num   protowire.Number
		param string
		code  string
	}{{"capture_method as a number", 4, "capture_method", "invalid_request_body"}, {"field 999", 999, "", "parameter_unknown"}} {
		raw, err := proto.Marshal(visa(1000))
		if err != nil {
			t.Fatal(err)
		}
		raw = protowire.AppendTag(raw, c.num, protowire.VarintType)
		raw = protowire.AppendVarint(raw, 99)
		var resp pb.CreatePaymentResponse
		err = srv.conn.Invoke(withIdem(ctx, "mistyped-"+c.param), pb.PaymentsService_CreatePayment_FullMethodName, raw, &resp, grpc.ForceCodecV2(rawCodec{}))
		got := grpcError(t, err)
		if got.grpcCode != codes.InvalidArgument || got.param != c.param || got.code != c.code {
			t.Errorf("%s: %+v (%v); want INVALID_ARGUMENT %s (param %q)", c.name, got, err, c.code, c.param)
		}
	}
	// Bytes that are no protobuf message: a truncated field.
	raw := []byte{0x0a, 0x05, 'U', 'S'}
	var resp pb.CreatePaymentResponse
	err := srv.conn.Invoke(withIdem(ctx, "malformed"), pb.PaymentsService_CreatePayment_FullMethodName, raw, &resp, grpc.ForceCodecV2(rawCodec{}))
	if got := grpcError(t, err); got.grpcCode != codes.InvalidArgument || got.code != "invalid_request_body" {
		t.Errorf("malformed protobuf: %+v (%v); want INVALID_ARGUMENT invalid_request_body", got, err)
	}
	list, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{})
	if err != nil || len(list.Payments) != 0 {
		t.Errorf("ListPayments = %v, %v; want no payment", list, err)
	}
}

// TestInputsNeverQuotedBack sends a card number and an API key wherever a
// caller's input could be quoted back — an amount, an unknown field or
// query parameter, an id in a path, a provider webhook's connection, the
// X-Forwarded-For header — over REST and gRPC: every call is refused, and
// neither an answer nor the server's log holds either of them.
func TestInputsNeverQuotedBack(t *testing.T) {
	srv := newServer(t)
	ctx := withKey(t.Context(), srv.key)
	const pan, secret = "4111111111111111", "ak_test_Qz9SeCrEtQz9SeCrEtQz9"
	const secretTail = "Qz9SeCrEt"
	check := func(what, text string) {
		t.Helper()
		if strings.Contains(text, pan) || strings.Contains(text, secretTail) {
			t.Errorf("%s quotes the input back: %.400s", what, text)
		}
	}
	rest := []struct{ method, path, body string }{
		{"POST", "/v1/payments", `{"amount":` + pan + `,"currency":"USD","payment_method":"pm_card_visa"}`},
		{"POST", "/v1/payments", `{"amount":100,"currency":"USD","payment_method":"pm_card_visa","` + secret + `":1}`},
		{"POST", "/v1/payments", `{"amount":100,"currency":"` + secret + `","payment_method":"pm_card_visa"}`},
		{"GET", "/v1/payments/" + secret, ""},
		{"GET", "/v1/payments?" + secret + "=1", ""},
		{"GET", "/v1/payments?status=" + secret, ""},
		{"POST", "/v1/provider-webhooks/" + pan, `{}`},
		{"POST", "/v1/provider-webhooks/" + secret, `{}`},
		{"GET", "/v1/no-such-route/" + secret, ""},
	}
	for i, c := range rest {
		code, body, _ := srv.restDo(t, c.method, c.path, srv.key, fmt.Sprintf("quoted-%d", i), c.body)
		if code < 400 {
			t.Errorf("%s %s: status %d; want it refused", c.method, c.path, code)
		}
		raw, _ := json.Marshal(body)
		check(c.method+" "+c.path, string(raw))
	}
	code, body := srv.restRaw(t, "GET", "/v1/payments/pay_missing", "", http.Header{
		"Authorization": {"Bearer " + srv.key}, "X-Forwarded-For": {pan + ", " + secret}})
	if code != http.StatusNotFound {
		t.Errorf("GET a missing payment: status %d %v; want 404", code, body)
	}
	for _, amount := range []int64{4111111111111111, -4111111111111111} {
		_, err := srv.payments.CreatePayment(withIdem(ctx, fmt.Sprintf("quoted-grpc-%d", amount)), &pb.CreatePaymentRequest{
			Amount: amount, Currency: "USD", PaymentMethod: "pm_card_visa"})
		if err == nil {
			t.Fatalf("gRPC CreatePayment amount %d succeeded; want it refused", amount)
		}
		st, _ := status.FromError(err)
		check("gRPC status", fmt.Sprint(st.Proto()))
	}
	srv.stop()
	check("server log", srv.log.String())
	if !strings.Contains(srv.log.String(), `"peer":"127.0.0.1:`) {
		t.Errorf("server log has no gRPC peer address; a forged X-Forwarded-For should leave the real one")
	}
}

// TestOddAuthorizationHeadersRefused: a request with two authorization
// values — a valid key and another — is refused over REST and gRPC, never
// run as whichever came first; a key with non-ASCII bytes is api_key_invalid,
// not answered as if no key had been sent.
func TestOddAuthorizationHeadersRefused(t *testing.T) {
	srv := newServer(t)
	code, body := srv.restRaw(t, "GET", "/v1/payments", "", http.Header{"Authorization": {"Bearer ak_test_été"}})
	if got := restError(t, code, body); code != http.StatusUnauthorized || got.code != "api_key_invalid" {
		t.Errorf("REST with a non-ASCII key: %d %+v; want 401 api_key_invalid", code, got)
	}
	code, body = srv.restRaw(t, "GET", "/v1/payments", "", http.Header{"Authorization": {"Bearer " + srv.key, "Bearer ak_test_other"}})
	if got := restError(t, code, body); code != http.StatusUnauthorized || got.code != "api_key_invalid" {
		t.Errorf("REST with two Authorization headers: %d %+v; want 401 api_key_invalid", code, got)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+srv.key, "authorization", "Bearer ak_test_other")
	_, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{})
	if got := grpcError(t, err); got.grpcCode != codes.Unauthenticated || got.code != "api_key_invalid" {
		t.Errorf("gRPC with two authorization values: %+v; want UNAUTHENTICATED api_key_invalid", got)
	}
}

// TestOddPathsAnswerJSON: a path with //, . or .. segments, and one outside
// every route, are answered with a JSON 404 naming the route problem, not an
// HTML redirect or a text 404.
func TestOddPathsAnswerJSON(t *testing.T) {
	srv := newServer(t)
	for _, p := range []string{"/v1//payments", "/v1/./payments", "/v1/refunds/../payments", "/nowhere", "/v1/payments//", "/v1"} {
		req, err := http.NewRequest("GET", srv.baseURL+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = p // sent as it is, not cleaned by the client
		req.Header.Set("Authorization", "Bearer "+srv.key)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if got := restError(t, resp.StatusCode, body); err != nil || resp.StatusCode != http.StatusNotFound || got.code != "route_not_found" {
			t.Errorf("GET %s: %d %v (%v); want a JSON 404 route_not_found", p, resp.StatusCode, body, err)
		}
	}
}

// TestOversizedHeadersRefusedAsJSON: a request whose headers exceed 64 KiB
// is refused with a JSON 431 header_too_large naming the limit, and
// nothing runs; one just under the limit is served.
func TestOversizedHeadersRefusedAsJSON(t *testing.T) {
	srv := newServer(t)
	code, body := srv.restRaw(t, "GET", "/v1/payments", "", http.Header{
		"Authorization": {"Bearer " + srv.key}, "X-Padding": {strings.Repeat("a", 60<<10)}})
	if code != http.StatusOK {
		t.Errorf("headers of 60 KiB: %d %v; want served", code, body)
	}
	code, body = srv.restRaw(t, "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}`, http.Header{
		"Authorization": {"Bearer " + srv.key}, "Idempotency-Key": {"big-headers"}, "Cookie": {strings.Repeat("c", 100<<10)}})
	e, _ := body["error"].(map[string]any)
	if code != http.StatusRequestHeaderFieldsTooLarge || e["code"] != "header_too_large" || !strings.Contains(fmt.Sprint(e["message"]), "65536") || e["request_id"] == "" {
		t.Errorf("headers of 100 KiB: %d %v; want 431 header_too_large naming the 65536-byte limit, with a request id", code, body)
	}
	list, err := srv.payments.ListPayments(withKey(t.Context(), srv.key), &pb.ListPaymentsRequest{})
	if err != nil || len(list.Payments) != 0 {
		t.Errorf("ListPayments = %v, %v; want no payment made by the refused request", list, err)
	}
}

// TestGatewayFailuresAnsweredInPaymentdsWords: a REST call that fails in the
// gateway's own call to the gRPC server — here a Grpc-Timeout header of one
// nanosecond, which the gateway turns into its call's deadline — is answered
// with paymentd's code and message (504 timeout, retry with the same key),
// never with the transport's status text.
func TestGatewayFailuresAnsweredInPaymentdsWords(t *testing.T) {
	srv := newServer(t)
	code, body := srv.restRaw(t, "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}`, http.Header{
		"Authorization": {"Bearer " + srv.key}, "Idempotency-Key": {"gw-timeout"}, "Grpc-Timeout": {"1n"}})
	e, _ := body["error"].(map[string]any)
	msg := fmt.Sprint(e["message"])
	if code != http.StatusGatewayTimeout || e["type"] != "api_error" || e["code"] != "timeout" ||
		!strings.Contains(msg, "same idempotency key") || strings.Contains(msg, "context deadline") {
		t.Errorf("Grpc-Timeout 1n: %d %v; want 504 api_error timeout in paymentd's words", code, body)
	}
	// A Grpc-Timeout the gateway cannot read is the header's fault, not the body's.
	code, body = srv.restRaw(t, "POST", "/v1/payments", `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}`, http.Header{
		"Authorization": {"Bearer " + srv.key}, "Idempotency-Key": {"gw-bad-timeout"}, "Grpc-Timeout": {"bogus"}})
	e, _ = body["error"].(map[string]any)
	if code != http.StatusBadRequest || e["code"] != "parameter_invalid" || e["param"] != "Grpc-Timeout" {
		t.Errorf("Grpc-Timeout bogus: %d %v; want 400 parameter_invalid naming Grpc-Timeout", code, body)
	}
}

// TestGroupCommandHelp: `paymentd keys --help` (and accounts,
// payout-methods) shows the subcommands and exits 0, like every other
// command's --help, instead of taking --help for a subcommand or opening
// the default database.
func TestGroupCommandHelp(t *testing.T) {
	for _, cmd := range []string{"keys", "accounts", "payout-methods"} {
		for _, help := range []string{"--help", "-h"} {
			var out, errOut bytes.Buffer
			err := run(t.Context(), []string{cmd, help}, noEnv, &out, &errOut)
			if err != nil || !strings.Contains(out.String(), "paymentd "+cmd) || !strings.Contains(out.String(), " list") {
				t.Errorf("paymentd %s %s: %v, stdout %q stderr %q; want exit 0 with the subcommands", cmd, help, err, out.String(), errOut.String())
			}
		}
	}
}

// TestQueryParametersRefusedWhereNoneAreTaken: a query parameter sent to a
// call that takes none (a get by id, a call whose fields are in its JSON
// body, one with no fields) is refused naming it, as an unknown parameter
// of a list is, instead of being dropped by the gateway without a word.
func TestQueryParametersRefusedWhereNoneAreTaken(t *testing.T) {
	srv := newServer(t)
	code, p, _ := srv.restDo(t, "POST", "/v1/payments", srv.key, "", `{"amount":2000,"currency":"USD","payment_method":"pm_card_visa"}`)
	if code != 200 {
		t.Fatalf("create: %d %v", code, p)
	}
	id, _ := p["id"].(string)
	for _, c := range []struct{ method, path, body, param string }{
		{"GET", "/v1/payments/" + id + "?expand=customer", "", "expand"},
		{"GET", "/v1/balance?currency=EUR", "", "currency"},
		{"GET", "/v1/payout-methods?limit=1", "", "limit"},
		{"GET", "/v1/webhook-secret?x=1", "", "x"},
		{"GET", "/v1/status?verbose=1", "", "verbose"},
		{"POST", "/v1/refunds?amount=100", `{"payment_id":"` + id + `"}`, "amount"},
		{"POST", "/v1/payments/" + id + "/capture?amount=1", `{}`, "amount"},
		{"GET", "/v1/payments/" + id + "?4111111111111111=1", "", "••••1111"},
	} {
		code, b, _ := srv.restDo(t, c.method, c.path, srv.key, "", c.body)
		got := restError(t, code, b)
		if code != 400 || got.code != "parameter_unknown" || got.param != c.param {
			t.Errorf("%s %s: %d %+v; want 400 parameter_unknown naming %s", c.method, c.path, code, got, c.param)
		}
	}
	// Lists still take their parameters, and the calls work without any.
	for _, path := range []string{"/v1/payments?page_size=1&status=succeeded", "/v1/payments/" + id, "/v1/balance", "/v1/status"} {
		if code, b, _ := srv.restDo(t, "GET", path, srv.key, "", ""); code != 200 {
			t.Errorf("GET %s: %d %v; want 200", path, code, b)
		}
	}
}
