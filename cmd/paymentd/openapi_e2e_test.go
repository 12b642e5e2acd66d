package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
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
	s := startServer(t, testDB(t))
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
	// The routes served outside the gateway are real operations, with their
	// path parameter and responses, and need no API key.
	outside := map[string]string{
		"GET /pay/{id}": "id", "POST /pay/{id}": "id",
		"POST /v1/provider-webhooks/{connection}": "connection", "GET /v1/provider-webhooks/{connection}": "connection",
	}
	for route, param := range outside {
		method, path, _ := strings.Cut(route, " ")
		var op *openapi3.Operation
		if item := doc3.Paths.Value(path); item != nil {
			op = item.GetOperation(method)
		}
		if op == nil {
			t.Errorf("%s is not in the OpenAPI document", route)
			continue
		}
		if p := op.Parameters.GetByInAndName("path", param); p == nil || !p.Required {
			t.Errorf("%s: no required path parameter %s", route, param)
		}
		if op.Responses.Len() < 3 || op.Security == nil || len(*op.Security) != 0 {
			t.Errorf("%s: %d responses, security %v; want its responses and no API key", route, op.Responses.Len(), op.Security)
		}
	}
	receipt := doc3.Paths.Value("/v1/provider-webhooks/{connection}").Post.Responses.Status(200)
	if receipt == nil || receipt.Value.Content.Get("application/json").Schema.Value.Properties["outcome"] == nil {
		t.Errorf("POST /v1/provider-webhooks/{connection}: 200 does not describe the receipt")
	}
	// Nothing in the document that is not served.
	var extra []string
	for path, item := range doc3.Paths.Map() {
		for method := range item.Operations() {
			_, gw := routes[method+" "+path]
			if _, out := outside[method+" "+path]; !gw && !out {
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
