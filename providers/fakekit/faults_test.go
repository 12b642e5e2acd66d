package fakekit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
	"github.com/paymentd/paymentd/providers/aslan/aslanfake"
	"github.com/paymentd/paymentd/providers/aspayds/aspaydsfake"
	"github.com/paymentd/paymentd/providers/fakekit"
)

func post(t *testing.T, ctx context.Context, url, token, body string) (int, map[string]any, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, out, nil
}

// Every fault that applies the request changes the books exactly as a
// clean call would, whatever the answer says; Refuse changes nothing.
func TestFaultsApplyOrRefuse(t *testing.T) {
	fake := aikdatafake.New("tok")
	defer fake.Close()
	for i, tc := range []struct {
		fault   fakekit.Fault
		applied bool
		check   func(code int, body map[string]any, err error) string
	}{
		{fakekit.Fault{Kind: fakekit.Refuse, Status: 429}, false, func(code int, _ map[string]any, _ error) string {
			if code != 429 {
				return "want 429"
			}
			return ""
		}},
		{fakekit.Fault{Kind: fakekit.ApplyThenFail}, true, func(code int, _ map[string]any, _ error) string {
			if code != 500 {
				return "want 500"
			}
			return ""
		}},
		{fakekit.Fault{Kind: fakekit.ApplyThenHang}, true, func(_ int, _ map[string]any, err error) string {
			if !errors.Is(err, context.DeadlineExceeded) {
				return "want the client's deadline to pass"
			}
			return ""
		}},
		{fakekit.Fault{Kind: fakekit.Malformed}, true, func(code int, _ map[string]any, err error) string {
			if code != 200 || err == nil {
				return "want 200 with a body that is not JSON"
			}
			return ""
		}},
		{fakekit.Fault{Kind: fakekit.MismatchAmount}, true, func(code int, b map[string]any, _ error) string {
			if code != 200 || b["amount"] != float64(1001) {
				return "want amount 1001"
			}
			return ""
		}},
		{fakekit.Fault{Kind: fakekit.MismatchCurrency}, true, func(code int, b map[string]any, _ error) string {
			if code != 200 || b["currency"] != "XXX" {
				return "want currency XXX"
			}
			return ""
		}},
		{fakekit.Fault{Kind: fakekit.UnknownStatus}, true, func(code int, b map[string]any, _ error) string {
			if code != 200 || b["status"] != fakekit.UnknownStatusWord {
				return "want the unknown status word"
			}
			return ""
		}},
	} {
		id := "pay_" + string(rune('a'+i))
		fake.Inject(tc.fault)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		code, body, err := post(t, ctx, fake.URL()+"/charge", "tok",
			`{"amount":1000,"currency":"USD","metadata":{"paymentd_id":"`+id+`"}}`)
		cancel()
		if msg := tc.check(code, body, err); msg != "" {
			t.Errorf("%s: %d %v %v: %s", tc.fault, code, body, err, msg)
		}
		m, ok := fake.BookFor(id)
		if ok != tc.applied || (ok && (m.Captured != 1000 || m.Currency != "USD")) {
			t.Errorf("%s: book for %s = %+v, %v; want applied=%v with 1000 USD captured", tc.fault, id, m, ok, tc.applied)
		}
	}
	if n := len(fake.Fired()); n != 7 {
		t.Errorf("%d faults fired; want 7: %v", n, fake.Fired())
	}
}

// Faults pick their call: by operation and by the Nth matching request.
func TestFaultTargetsOperationAndNth(t *testing.T) {
	fake := aslanfake.New("k")
	defer fake.Close()
	fake.Inject(fakekit.Fault{Kind: fakekit.Refuse, Op: "POST /api/v1/confirm", Nth: 2})
	ctx := context.Background()
	codes := []int{}
	for range 3 {
		_, a, err := post(t, ctx, fake.URL()+"/api/v1/authorize", "k", `{"amount":4000}`)
		if err != nil {
			t.Fatal(err)
		}
		code, _, _ := post(t, ctx, fake.URL()+"/api/v1/confirm", "k", `{"authorizationId":"`+a["id"].(string)+`"}`)
		codes = append(codes, code)
	}
	if codes[0] != 200 || codes[1] != 503 || codes[2] != 200 {
		t.Errorf("confirm answers %v; want the second one refused", codes)
	}
	var captured, held int64
	for _, m := range fake.Books() {
		captured += m.Captured
		held += m.Authorized
	}
	if captured != 8000 || held != 4000 {
		t.Errorf("books: %d captured, %d held; want 8000 and 4000 (confirm captures the whole authorization)", captured, held)
	}
}

// Aslan's books follow a confirmed authorization to its payment id, so a
// refund by the payment id lands on the same book.
func TestAslanBooksFollowConfirm(t *testing.T) {
	fake := aslanfake.New("k")
	defer fake.Close()
	ctx := context.Background()
	_, a, _ := post(t, ctx, fake.URL()+"/api/v1/authorize", "k", `{"amount":4000}`)
	_, p, _ := post(t, ctx, fake.URL()+"/api/v1/confirm", "k", `{"authorizationId":"`+a["id"].(string)+`"}`)
	_, _, _ = post(t, ctx, fake.URL()+"/api/v1/refund", "k", `{"paymentId":"`+p["id"].(string)+`","amount":1500}`)
	m, ok := fake.BookFor(p["id"].(string))
	if !ok || m.ID != a["id"] || m.Captured != 4000 || m.Refunded != 1500 || m.Authorized != 0 {
		t.Errorf("book by payment id: %+v %v; want the authorization's book, 4000 captured, 1500 refunded", m, ok)
	}
}

// Webhook faults lose, duplicate and reorder deliveries.
func TestWebhookFaults(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev struct {
			Event string `json:"event"`
			Data  struct {
				Ref string `json:"transaction_reference"`
			} `json:"data"`
		}
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		got = append(got, ev.Data.Ref)
		mu.Unlock()
	}))
	defer hook.Close()
	fake := aspaydsfake.New("k", "s")
	defer fake.Close()
	fake.DeliverWebhooks(true)
	for _, ref := range []string{"a", "b", "c", "d", "e"} {
		body := `{"amount":"10","customer_name":"C","transaction_reference":"` + ref + `","callback_url":"` + hook.URL + `"}`
		req, _ := http.NewRequest(http.MethodPost, fake.URL()+"/payment/create", bytes.NewBufferString(body))
		req.Header.Set("x-api-key", "k")
		req.Header.Set("x-api-secret", "s")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	fake.FaultWebhooks(fakekit.LoseWebhook, fakekit.DuplicateWebhook, fakekit.DelayWebhook)
	for _, ref := range []string{"a", "b", "c", "d"} {
		if err := fake.PayInvoice(ref, 10_00); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	order := strings.Join(got, "")
	mu.Unlock()
	if order != "bbdc" {
		t.Errorf("webhooks arrived as %q; want a lost, b twice, c after d", order)
	}
	if m, _ := fake.BookFor("a"); m.Received != 10_00 || m.Status != "paid" {
		t.Errorf("a lost webhook still moved the money at the provider: book %+v", m)
	}
	if tot := fake.Totals()["BDT"]; tot.Received != 40_00 {
		t.Errorf("total received %d; want 4000", tot.Received)
	}
}
