package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// openapiWalk sends REST requests to a server and checks each request and
// its response with kin-openapi's openapi3filter against the server's own
// /openapi.json, as a client generated from that document would see them:
// the route must be documented, the request must be one the document allows
// (parameters, body, security), and the response must match the schema of
// its status.
type openapiWalk struct {
	t      *testing.T
	base   string
	router routers.Router
	client *http.Client
	calls  int
}

func newOpenAPIWalk(t *testing.T, s *testServer) *openapiWalk {
	t.Helper()
	_, doc3 := loadOpenAPI(t, s.baseURL)
	doc3.Servers = nil // match paths on any host
	router, err := legacy.NewRouter(doc3)
	if err != nil {
		t.Fatal(err)
	}
	// The hosted page is HTML: its schema is a string.
	openapi3filter.RegisterBodyDecoder("text/html", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		raw, err := io.ReadAll(r)
		return string(raw), err
	})
	return &openapiWalk{t: t, base: s.baseURL, router: router,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// bearerAuth is the document's security scheme as a client applies it: an
// operation that needs the bearer scheme is refused without an
// Authorization: Bearer header.
func bearerAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
		return errors.New("no Authorization: Bearer header")
	}
	return nil
}

// call sends one request and validates it and its response; the response
// must have status want. unauthenticated says the request deliberately
// lacks the API key its operation needs. It returns the JSON body (nil for
// other content).
func (w *openapiWalk) call(method, path string, header http.Header, contentType, body string, want int, unauthenticated bool) map[string]any {
	t := w.t
	t.Helper()
	w.calls++
	newReq := func() *http.Request {
		req, err := http.NewRequest(method, w.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body == "" {
			req.Body, req.ContentLength = http.NoBody, 0
		} else {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		return req
	}
	req := newReq()
	route, params, err := w.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in the OpenAPI document: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerAuth, MultiError: true, IncludeResponseStatus: true}}
	err = openapi3filter.ValidateRequest(context.Background(), in)
	var secErr *openapi3filter.SecurityRequirementsError
	switch {
	case unauthenticated && !errors.As(err, &secErr):
		t.Errorf("%s %s without a key: the document does not require one (request validation: %v)", method, path, err)
	case !unauthenticated && err != nil:
		t.Errorf("%s %s: the request does not match the document: %v", method, path, err)
	}

	resp, err := w.client.Do(newReq())
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %.300s; want %d", method, path, resp.StatusCode, raw, want)
	}
	var out map[string]any
	checked := raw
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d, body is not a JSON object: %.300s", method, path, resp.StatusCode, raw)
		}
		// Unset message fields are written as null (EmitUnpopulated), which
		// Swagger 2.0 cannot say of a $ref field; the check drops them.
		var generic any
		_ = json.Unmarshal(raw, &generic)
		checked, _ = json.Marshal(dropNulls(generic))
	}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: in.Options}
	rin.SetBodyBytes(checked)
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		t.Errorf("%s %s → %d does not match the document: %v\nbody: %.500s", method, path, resp.StatusCode, err, raw)
	}
	return out
}

// rest is call for the JSON API: key and idem go into the Authorization and
// Idempotency-Key headers when set.
func (w *openapiWalk) rest(method, path, key, idem, body string, want int) map[string]any {
	w.t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	if idem != "" {
		h.Set("Idempotency-Key", idem)
	}
	return w.call(method, path, h, "application/json", body, want, false)
}

// TestWalkthroughMatchesOpenAPI drives the README's walkthrough through REST
// — payments (create, get, list, capture, refund), an invoice and its hosted
// page, a payout, events, a provider webhook — and its errors (400, 401,
// 402, 403, 404, 409, 422), and checks every request and response against
// /openapi.json with openapi3filter. Amounts are sent as the document gives
// int64 fields (JSON strings), as a generated client sends them.
func TestWalkthroughMatchesOpenAPI(t *testing.T) {
	s := startServer(t, testDB(t))
	w := newOpenAPIWalk(t, s)
	key := s.key

	w.rest("GET", "/v1/status", "", "", "", 200)
	p := w.rest("POST", "/v1/payments", key, "wt-1", `{"amount":"20000","currency":"USD","payment_method":"pm_card_visa","capture_method":"manual","description":"order 1","metadata":{"order":"1"}}`, 200)
	id, _ := p["id"].(string)
	w.rest("GET", "/v1/payments/"+id, key, "", "", 200)
	w.rest("POST", "/v1/payments/"+id+"/capture", key, "wt-2", `{"amount":"15000"}`, 200)
	r := w.rest("POST", "/v1/refunds", key, "wt-3", `{"payment_id":"`+id+`","amount":"500","reason":"requested_by_customer"}`, 200)
	refundID, _ := r["id"].(string)
	w.rest("GET", "/v1/refunds/"+refundID, key, "", "", 200)
	w.rest("GET", "/v1/payments?page_size=2&status=succeeded", key, "", "", 200)
	w.rest("GET", "/v1/refunds?payment_id="+id, key, "", "", 200)
	ev := w.rest("GET", "/v1/events?page_size=5", key, "", "", 200)
	if list, _ := ev["events"].([]any); len(list) > 0 {
		first, _ := list[0].(map[string]any)
		evID, _ := first["id"].(string)
		w.rest("GET", "/v1/events/"+evID, key, "", "", 200)
	}
	w.rest("GET", "/v1/balance", key, "", "", 200)

	inv := w.rest("POST", "/v1/invoices", key, "wt-4", `{"amount":"5000","currency":"USD","transaction_reference":"order-1","callback_url":"https://shop.example/orders/1/return"}`, 200)
	invID, _ := inv["id"].(string)
	w.rest("GET", "/v1/invoices/"+invID, key, "", "", 200)
	w.rest("GET", "/v1/invoices?page_size=10", key, "", "", 200)
	w.call("GET", "/pay/"+invID, nil, "", "", 200, false)
	w.call("POST", "/pay/"+invID, nil, "application/x-www-form-urlencoded",
		url.Values{"action": {"pay"}, "payment_method": {"pm_card_visa"}}.Encode(), 303, false)
	w.call("GET", "/pay/inv_missing", nil, "", "", 404, false)

	w.rest("GET", "/v1/payout-methods", key, "", "", 200)
	po := w.rest("POST", "/v1/payouts", key, "wt-5", `{"payout_method_id":"us_bank","amount":"3000","recipient_name":"John Doe","recipient_account":"GB33BUKB20201555555555","transaction_reference":"WD-1"}`, 200)
	poID, _ := po["id"].(string)
	w.rest("GET", "/v1/payouts/"+poID, key, "", "", 200)
	w.rest("GET", "/v1/payouts?page_size=10", key, "", "", 200)

	hook := w.rest("POST", "/v1/webhook-endpoints", key, "wt-6", `{"url":"https://shop.example/hooks","event_types":["payment.succeeded"]}`, 200)
	if ep, _ := hook["webhook_endpoint"].(map[string]any); ep != nil {
		epID, _ := ep["id"].(string)
		w.rest("DELETE", "/v1/webhook-endpoints/"+epID, key, "wt-7", "", 200)
	}
	w.call("POST", "/v1/provider-webhooks/nobody", nil, "application/json", `{"id":"evt_1"}`, 404, false)

	// Errors, each with the error body the document gives its status.
	w.rest("POST", "/v1/payments", key, "wt-8", `{"amount":"-1","currency":"USD","payment_method":"pm_card_visa"}`, 400)
	w.call("GET", "/v1/payments", nil, "", "", 401, true)
	w.rest("GET", "/v1/payments", "ak_test_unknown0000000000000000", "", "", 401)
	w.rest("POST", "/v1/payments", key, "wt-9", `{"amount":"2000","currency":"USD","payment_method":"pm_card_declined"}`, 402)
	readOnly, _ := createKey(t, s.db, "test", "read", "")
	w.rest("POST", "/v1/payments", readOnly, "wt-10", `{"amount":"2000","currency":"USD","payment_method":"pm_card_visa"}`, 403)
	w.rest("GET", "/v1/payments/pay_missing", key, "", "", 404)
	w.rest("POST", "/v1/payments/"+id+"/cancel", key, "wt-11", `{}`, 409)
	w.rest("POST", "/v1/payments", key, "wt-1", `{"amount":"9999","currency":"USD","payment_method":"pm_card_visa"}`, 422)
	t.Logf("%d requests and responses checked against /openapi.json", w.calls)
	if bytes.Contains([]byte(s.log.String()), []byte(key)) {
		t.Error("the server log holds the API key")
	}
}
