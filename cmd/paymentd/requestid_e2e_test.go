package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

var newRequestID = regexp.MustCompile(`^req_[0-9a-z]{26}$`)

// logLines parses the server's JSON log.
func logLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %.200s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// linesFor returns the log lines with the given msg and request id.
func linesFor(lines []map[string]any, msg, requestID string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg && l["request_id"] == requestID {
			out = append(out, l)
		}
	}
	return out
}

func rawDo(t *testing.T, method, url, key, requestID, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

func TestRequestIDsAndAccessLog(t *testing.T) {
	s := startServer(t, testDB(t))

	// A REST error: a new req_ id in the header, the body and the access
	// line, which leaves the query out (a get by id takes no query
	// parameter, so this one is refused, naming it but not its value).
	resp, raw := rawDo(t, "GET", s.baseURL+"/v1/payments/pay_missing?token=QUERYSECRET", s.key, "", "")
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 400 || !newRequestID.MatchString(id) {
		t.Fatalf("GET missing payment with a query: %d, X-Request-Id %q; want 400 with a req_ id", resp.StatusCode, id)
	}
	var body struct {
		Error struct {
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Error.RequestID != id {
		t.Errorf("error body %s; want request_id %q", raw, id)
	}

	// The caller's well-formed id is kept, for gateway routes and for
	// requests refused before any handler.
	cases := []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/v1/payments/pay_missing", "", 404},
		{"GET", "/v1/no-such-route", "", 404},
		{"POST", "/v1/payments", `{"amount": "twelve"`, 400},
		{"POST", "/v1/payments", `{"amount":` + strings.Repeat(" ", 1<<20+10) + `1}`, 413},
		{"GET", "/pay/inv_missing", "", 404},
		{"POST", "/v1/provider-webhooks/nobody", `{}`, 404},
		{"GET", "/openapi.json", "", 200},
		{"GET", "/healthz", "", 200},
	}
	for i, c := range cases {
		mine := "client-trace.42:" + string(rune('a'+i))
		resp, raw := rawDo(t, c.method, s.baseURL+c.path, s.key, mine, c.body)
		if resp.StatusCode != c.status || resp.Header.Get("X-Request-Id") != mine {
			t.Errorf("%s %s: %d, X-Request-Id %q; want %d and the caller's %q", c.method, c.path, resp.StatusCode, resp.Header.Get("X-Request-Id"), c.status, mine)
		}
		if c.status >= 400 && strings.HasPrefix(c.path, "/v1/") && !strings.Contains(string(raw), `"request_id":"`+mine+`"`) {
			t.Errorf("%s %s: error body %.200s; want request_id %q", c.method, c.path, raw, mine)
		}
	}
	// Ill-formed or card-number-like ids are replaced.
	for _, bad := range []string{"has spaces in it", strings.Repeat("x", 129), "4242424242424242", "a\"b"} {
		resp, _ := rawDo(t, "GET", s.baseURL+"/healthz", "", bad, "")
		if got := resp.Header.Get("X-Request-Id"); !newRequestID.MatchString(got) {
			t.Errorf("X-Request-Id %q came back as %q; want a new req_ id", bad, got)
		}
	}

	// gRPC: the caller's x-request-id comes back in the response header.
	var hdr metadata.MD
	ctx := metadata.AppendToOutgoingContext(withKey(context.Background(), s.key), "x-request-id", "grpc-caller-1")
	if _, err := s.payments.ListPayments(ctx, &pb.ListPaymentsRequest{}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get("x-request-id"); len(got) != 1 || got[0] != "grpc-caller-1" {
		t.Errorf("gRPC x-request-id response header %v; want [grpc-caller-1]", got)
	}
	hdr = nil
	if _, err := s.payments.ListPayments(withKey(context.Background(), s.key), &pb.ListPaymentsRequest{}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get("x-request-id"); len(got) != 1 || !newRequestID.MatchString(got[0]) {
		t.Errorf("gRPC x-request-id response header %v; want a new req_ id", got)
	}

	// The log: one access line per HTTP request, with the rpc line of the
	// same request carrying the same id and the peer.
	time.Sleep(50 * time.Millisecond)
	log := s.log.String()
	lines := logLines(t, log)
	access := linesFor(lines, "http", id)
	if len(access) != 1 {
		t.Fatalf("%d access lines for %s; want 1\n%s", len(access), id, log)
	}
	a := access[0]
	if a["method"] != "GET" || a["path"] != "/v1/payments/pay_missing" || a["status"] != float64(400) || a["bytes"].(float64) <= 0 ||
		a["client"] == "" || a["duration_ms"] == nil {
		t.Errorf("access line %v; want method, path without query, status, bytes, duration and client", a)
	}
	// The missing payment without a query reaches the RPC: its rpc line
	// carries the caller's id and the peer.
	if rpc := linesFor(lines, "rpc", "client-trace.42:a"); len(rpc) != 1 || rpc[0]["peer"] == "" || rpc[0]["code"] != "NotFound" {
		t.Errorf("rpc lines for client-trace.42:a: %v; want one, with the peer", rpc)
	}
	for i, c := range cases {
		mine := "client-trace.42:" + string(rune('a'+i))
		if got := linesFor(lines, "http", mine); len(got) != 1 || got[0]["status"] != float64(c.status) {
			t.Errorf("%s %s: access lines %v; want one with status %d", c.method, c.path, got, c.status)
		}
	}
	if rpc := linesFor(lines, "rpc", "grpc-caller-1"); len(rpc) != 1 {
		t.Errorf("rpc lines for grpc-caller-1: %v; want one", rpc)
	}
	for _, secret := range []string{"QUERYSECRET", s.key, "4242424242424242"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
}

// TestRateLimitedLogLines checks that a client over its rate limit gets at
// most one access line per key per second, which counts the requests.
func TestRateLimitedLogLines(t *testing.T) {
	s := startServer(t, testDB(t), "--rate-limit", "1")
	limited := 0
	start := time.Now()
	for range 40 {
		resp, _ := rawDo(t, "GET", s.baseURL+"/v1/payments", s.key, "", "")
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	took := time.Since(start)
	if limited < 30 {
		t.Fatalf("%d of 40 requests were rate limited; want most", limited)
	}
	time.Sleep(50 * time.Millisecond)
	var lines, counted int
	for _, l := range logLines(t, s.log.String()) {
		if l["msg"] == "http" && l["status"] == float64(429) {
			lines++
			counted += int(l["count"].(float64))
		}
	}
	if maxLines := int(took/time.Second) + 1; lines < 1 || lines > maxLines {
		t.Errorf("%d access lines for %d rate-limited requests in %v; want 1 to %d", lines, limited, took, maxLines)
	}
	if counted > limited || counted < 1 {
		t.Errorf("the rate-limited lines count %d requests; want between 1 and %d", counted, limited)
	}
	m := scrapeMetrics(t, s.baseURL+"/metrics")
	if got := m["paymentd_rate_limited_requests_total{}"]; got != float64(limited) {
		t.Errorf("paymentd_rate_limited_requests_total = %v; want %d", got, limited)
	}
}

// objectIDKeys are the attributes by which a background worker's line names
// the object (or the sweep) it is about, in place of a request id.
var objectIDKeys = []string{"payment", "refund", "invoice", "payout", "delivery", "event", "object", "account", "sweep"}

// processLines are the messages of lines about the process rather than one
// request or object: startup, shutdown, provider connections, and a
// background loop that could not read its work.
var processLines = map[string]bool{
	"serving": true, "invoice payment pages": true, "provider connection": true, "stopped": true,
	"background work did not stop within --shutdown-wait": true, "provider status check failed": true,
	"reconciler: reading unsettled payments": true, "reconciler: reading pending refunds": true,
	"reconciler: reading provider invoices": true, "reconciler: reading provider payouts": true,
	"reconciler: reading pending operations": true, "reconciler: reading invoice attempts": true,
	"webhooks: reading due deliveries": true, "webhooks: claiming due deliveries": true,
	"sealed webhook signing secrets stored before this server had a secrets key, replaced those that did not open": true,
	"webhook signing secrets are stored unsealed: give every replica the same --secrets-key-file":                  true,
}

// checkLogAttribution fails t for every line of a serve log that names
// neither the request it belongs to (request_id) nor, for background work,
// the object it is about, unless it is about the process itself: with
// either, an operator can find every line of one request or one object.
// Every e2e server's log goes through it when its test ends (harness_test.go,
// providers_e2e_test.go).
func checkLogAttribution(t *testing.T, log string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	bad := 0
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue // not a log record (e.g. a panic's trace)
		}
		if _, ok := m["request_id"]; ok || processLines[fmt.Sprint(m["msg"])] {
			continue
		}
		if slices.ContainsFunc(objectIDKeys, func(k string) bool { _, ok := m[k]; return ok }) {
			continue
		}
		if bad++; bad <= 5 {
			t.Errorf("log line with neither a request id nor an object id: %.300s", sc.Text())
		}
	}
	if bad > 5 {
		t.Errorf("… and %d more such lines", bad-5)
	}
}
