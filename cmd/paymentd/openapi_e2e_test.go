package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/paymentd/paymentd/gen/paymentd/v1" // registers the API's descriptors
)

// loadOpenAPI fetches /openapi.json, reads it as Swagger 2.0 with
// kin-openapi, converts it to OpenAPI 3 and validates it.
func loadOpenAPI(t *testing.T, baseURL string) (*openapi2.T, *openapi3.T) {
	t.Helper()
	resp, err := http.Get(baseURL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc2 openapi2.T
	if err := json.Unmarshal(raw, &doc2); err != nil {
		t.Fatalf("/openapi.json is not a Swagger 2.0 document: %v", err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		t.Fatalf("converting to OpenAPI 3: %v", err)
	}
	if err := doc3.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document does not validate: %v", err)
	}
	return &doc2, doc3
}

// gatewayRoutes lists every REST route the gateway serves, from the
// google.api.http options of the registered paymentd.v1 services.
func gatewayRoutes(t *testing.T) map[string]string {
	t.Helper()
	routes := map[string]string{} // "POST /v1/payments" → full method
	protoregistry.GlobalFiles.RangeFilesByPackage("paymentd.v1", func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := 0; i < svcs.Len(); i++ {
			ms := svcs.Get(i).Methods()
			for j := 0; j < ms.Len(); j++ {
				m := ms.Get(j)
				rule, ok := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				if !ok || rule == nil {
					continue
				}
				for _, r := range append([]*annotations.HttpRule{rule}, rule.AdditionalBindings...) {
					var method, path string
					switch p := r.Pattern.(type) {
					case *annotations.HttpRule_Get:
						method, path = "GET", p.Get
					case *annotations.HttpRule_Post:
						method, path = "POST", p.Post
					case *annotations.HttpRule_Delete:
						method, path = "DELETE", p.Delete
					case *annotations.HttpRule_Put:
						method, path = "PUT", p.Put
					case *annotations.HttpRule_Patch:
						method, path = "PATCH", p.Patch
					}
					routes[method+" "+path] = string(m.FullName())
				}
			}
		}
		return true
	})
	if len(routes) < 20 {
		t.Fatalf("found only %d gateway routes", len(routes))
	}
	return routes
}

func TestOpenAPIDocument(t *testing.T) {
	s := startServer(t, filepath.Join(t.TempDir(), "p.db"))
	doc2, doc3 := loadOpenAPI(t, s.baseURL)

	if doc2.Info.Title != "paymentd" || doc2.Info.Version != build().String() || len(doc2.Info.Description) < 100 {
		t.Errorf("info = %q %q %q; want title paymentd, version %s and a description", doc2.Info.Title, doc2.Info.Version, doc2.Info.Description, build())
	}
	if sec := doc2.SecurityDefinitions["bearer"]; sec == nil || sec.Type != "apiKey" || sec.In != "header" || sec.Name != "Authorization" {
		t.Errorf("securityDefinitions.bearer = %+v; want an Authorization header", sec)
	}
	if len(doc2.Security) != 1 || doc2.Security[0]["bearer"] == nil {
		t.Errorf("document security %v; want bearer on every operation", doc2.Security)
	}
	errSchema := doc3.Components.Schemas["v1ErrorResponse"]
	if errSchema == nil {
		t.Fatal("no v1ErrorResponse schema")
	}
	body := errSchema.Value.Properties["error"].Value
	for _, f := range []string{"type", "code", "message", "param", "request_id"} {
		if body.Properties[f] == nil {
			t.Errorf("the error schema has no %s", f)
		}
	}

	routes := gatewayRoutes(t)
	for route, rpc := range routes {
		method, path, _ := strings.Cut(route, " ")
		item := doc3.Paths.Find(path)
		var op *openapi3.Operation
		if item != nil {
			op = item.GetOperation(method)
		}
		if op == nil {
			t.Errorf("%s (%s) is not in the OpenAPI document", route, rpc)
			continue
		}
		for _, code := range []string{"default", "400", "401", "402", "403", "404", "409", "422", "429", "503"} {
			r := op.Responses.Value(code)
			if r == nil || r.Value.Content.Get("application/json") == nil ||
				r.Value.Content.Get("application/json").Schema.Ref != "#/components/schemas/v1ErrorResponse" {
				t.Errorf("%s: response %s does not use the error schema", route, code)
			}
		}
		public := path == "/v1/status"
		if public != (op.Security != nil && len(*op.Security) == 0) {
			t.Errorf("%s: security %v; want none only for /v1/status", route, op.Security)
		}
		idem := op.Parameters.GetByInAndName("header", "Idempotency-Key") != nil
		mutating := method != "GET" && !strings.HasSuffix(path, "/batch")
		if idem != mutating {
			t.Errorf("%s: Idempotency-Key header documented %v; want %v", route, idem, mutating)
		}
	}
	// Nothing in the document that the gateway does not serve.
	var extra []string
	for path, item := range doc3.Paths.Map() {
		for method := range item.Operations() {
			if _, ok := routes[method+" "+path]; !ok {
				extra = append(extra, method+" "+path)
			}
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("documented but not served: %v", extra)
	}
	for name, want := range map[string][]any{
		"v1Payment.status":         {"requires_capture", "processing", "succeeded", "canceled", "failed", "unknown"},
		"v1Payment.capture_method": {"automatic", "manual"},
		"v1Payout.status":          {"pending", "processing", "completed", "rejected", "cancelled"},
		"v1Invoice.status":         {"open", "partially_paid", "paid", "expired", "canceled"},
	} {
		msg, field, _ := strings.Cut(name, ".")
		sc := doc3.Components.Schemas[msg]
		if sc == nil || sc.Value.Properties[field] == nil {
			t.Errorf("no schema for %s", name)
			continue
		}
		if got := sc.Value.Properties[field].Value.Enum; len(got) != len(want) {
			t.Errorf("%s enum = %v; want %v", name, got, want)
		}
	}
}

// TestWalkthroughResponsesMatchOpenAPI records the responses of a short
// walkthrough (the README's calls and their errors) and validates each
// body against the schema the document gives for its path, method and
// status.
func TestWalkthroughResponsesMatchOpenAPI(t *testing.T) {
	s := startServer(t, filepath.Join(t.TempDir(), "p.db"))
	_, doc3 := loadOpenAPI(t, s.baseURL)

	check := func(method, path, template, key, idem, reqBody string, wantStatus int) map[string]any {
		t.Helper()
		code, out, _ := s.restDo(t, method, path, key, idem, reqBody)
		if code != wantStatus {
			t.Fatalf("%s %s: %d %v; want %d", method, path, code, out, wantStatus)
		}
		op := doc3.Paths.Find(template).GetOperation(method)
		r := op.Responses.Status(code)
		if r == nil {
			r = op.Responses.Default()
		}
		sc := r.Value.Content.Get("application/json").Schema.Value
		var generic any
		raw, _ := json.Marshal(out)
		_ = json.Unmarshal(raw, &generic)
		// Unset message fields are written as null (EmitUnpopulated), which
		// Swagger 2.0 cannot say of a $ref field; drop them before checking.
		generic = dropNulls(generic)
		if err := sc.VisitJSON(generic); err != nil {
			t.Errorf("%s %s → %d does not match the document's schema: %v\nbody: %s", method, path, code, err, raw)
		}
		return out
	}
	p := check("POST", "/v1/payments", "/v1/payments", s.key, "wt-1", `{"amount":2000,"currency":"USD","payment_method":"pm_card_visa","capture_method":"manual"}`, 200)
	id, _ := p["id"].(string)
	check("GET", "/v1/payments/"+id, "/v1/payments/{id}", s.key, "", "", 200)
	check("POST", "/v1/payments/"+id+"/capture", "/v1/payments/{id}/capture", s.key, "wt-2", `{"amount":1500}`, 200)
	check("POST", "/v1/refunds", "/v1/refunds", s.key, "wt-3", `{"payment_id":"`+id+`","amount":500}`, 200)
	check("GET", "/v1/payments?page_size=2", "/v1/payments", s.key, "", "", 200)
	check("GET", "/v1/refunds", "/v1/refunds", s.key, "", "", 200)
	check("GET", "/v1/events", "/v1/events", s.key, "", "", 200)
	check("GET", "/v1/balance", "/v1/balance", s.key, "", "", 200)
	check("GET", "/v1/status", "/v1/status", "", "", "", 200)
	check("POST", "/v1/invoices", "/v1/invoices", s.key, "wt-4", `{"amount":5000,"currency":"USD","transaction_reference":"order-1","callback_url":"https://shop.example/orders/1/return"}`, 200)
	check("GET", "/v1/invoices", "/v1/invoices", s.key, "", "", 200)
	// Errors.
	check("GET", "/v1/payments/pay_missing", "/v1/payments/{id}", s.key, "", "", 404)
	check("POST", "/v1/payments", "/v1/payments", s.key, "wt-5", `{"amount":-1,"currency":"USD","payment_method":"pm_card_visa"}`, 400)
	check("GET", "/v1/payments", "/v1/payments", "", "", "", 401)
	check("POST", "/v1/payments", "/v1/payments", s.key, "wt-6", `{"amount":2000,"currency":"USD","payment_method":"pm_card_declined"}`, 402)
	check("POST", "/v1/payments", "/v1/payments", s.key, "wt-1", `{"amount":9999,"currency":"USD","payment_method":"pm_card_visa"}`, 422)
	check("POST", "/v1/payments/"+id+"/cancel", "/v1/payments/{id}/cancel", s.key, "wt-7", `{}`, 409)
}

// dropNulls removes null members from JSON objects, recursively.
func dropNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
			} else {
				v[k] = dropNulls(e)
			}
		}
	case []any:
		for i, e := range v {
			v[i] = dropNulls(e)
		}
	}
	return v
}
